//go:build !linux

package hub

import (
	"syscall"
	"time"
)

// userTimeout is a no-op where TCP_USER_TIMEOUT does not exist; the read
// deadline and the write deadline still detect a dead link.
func userTimeout(time.Duration) func(network, address string, rc syscall.RawConn) error {
	return nil
}
