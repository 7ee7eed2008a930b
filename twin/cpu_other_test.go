//go:build !linux

package twin

import "testing"

// oneCPU leaves the process's CPUs as they are where threads cannot be
// bound to one (see cpu_linux_test.go).
func oneCPU(*testing.B) {}
