//go:build !linux

package tune

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child with its parent.
func dieWithParent(cmd *exec.Cmd) {}
