package trainjob

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the rank's program when the worker
// that started it dies, so that a lost worker's rank stops too (and the
// ring breaks for the others, which the driver then restarts).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
