//go:build !linux

package trainjob

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child with its parent.
func dieWithParent(cmd *exec.Cmd) {}
