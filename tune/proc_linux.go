package tune

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the trial's program when the worker
// that started it dies, so that a killed worker leaves no trial writing to
// the run's files while its task runs again elsewhere.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
