package hub

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout returns a dialer Control that sets TCP_USER_TIMEOUT: the
// kernel drops the connection when sent data stays unacknowledged for d.
// With a keepalive written every heartbeat, a path that silently stops
// carrying packets is torn down after about two heartbeats instead of the
// 15-20 minutes of the default retransmission limit (KubeEdge issue
// #6965).
func userTimeout(d time.Duration) func(network, address string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
		})
		if err != nil {
			return err
		}
		return serr
	}
}
