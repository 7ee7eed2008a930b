package hub

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUserTimeoutSet(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := net.Dialer{Control: userTimeout(30 * time.Second)}
	conn, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	defer conn.Close()
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	rc.Control(func(fd uintptr) {
		got, gerr = unix.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	})
	if gerr != nil || got != 30000 {
		t.Errorf("TCP_USER_TIMEOUT = %d, %v, want 30000 ms", got, gerr)
	}
}
