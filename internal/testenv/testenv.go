// Package testenv tells tests what this host can do, and skips those that
// need what it lacks, naming what is missing. Tests that need root, runc,
// a static busybox or a native (not emulated) run call it instead of
// checking for themselves, so every test skips for the same reasons with
// the same words; .ci/run installs everything, so CI never skips.
//
// In: the host (euid, PATH, /bin/sh, /proc). Out: skips and facts.
// Goroutines: none. Persistence: none.
package testenv

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"edgenode/pod/podtest"
)

// Root skips t unless the process runs as root; why says what needs it,
// e.g. "mount a tmpfs".
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to %s (run as root, as CI does)", why)
	}
}

// Native skips t when this test binary runs under emulation, e.g. an ARMv6
// test binary under qemu-arm-static on an amd64 host: qemu-user emulates
// no mount namespaces, and a binary the test builds or runs is the host's.
func Native(t testing.TB) {
	t.Helper()
	if host := HostArch(); host != runtime.GOARCH {
		t.Skipf("runs natively only: this test binary is %s, emulated on a %s host", runtime.GOARCH, host)
	}
}

// HostArch is the GOARCH of the host's own programs (the ELF machine of
// /bin/sh); runtime.GOARCH when it cannot tell.
func HostArch() string {
	return elfArch("/bin/sh")
}

// Containers skips t unless containers can run here (see NoContainers).
func Containers(t testing.TB) {
	t.Helper()
	if why := NoContainers(); why != "" {
		t.Skip(why)
	}
}

// NoContainers says why containers cannot run here, or returns "" when
// they can: the process is root, runc is on PATH and runs, and the host's
// static busybox (the tests' images are made from it) is built for this
// GOARCH. Under qemu-arm-static the host's busybox and runc are amd64 and
// cannot run ARM images.
func NoContainers() string {
	if os.Geteuid() != 0 {
		return "needs root to run containers"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "runc missing: apt-get install runc"
	}
	bb, err := podtest.Busybox()
	if err != nil {
		return err.Error()
	}
	if a := elfArch(bb); a != runtime.GOARCH {
		return fmt.Sprintf("host busybox is %s, this test binary is %s: containers cannot run here", a, runtime.GOARCH)
	}
	if out, err := exec.Command("runc", "--version").CombinedOutput(); err != nil {
		return fmt.Sprintf("runc does not run here (%v): %s", err, out)
	}
	return ""
}

// elfArch is the GOARCH of the ELF binary at path; runtime.GOARCH when it
// cannot tell.
func elfArch(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_386:
		return "386"
	}
	return runtime.GOARCH
}

// Memory returns the resident set (VmRSS) and its anonymous part (RssAnon)
// of process pid, in bytes, from /proc/<pid>/status.
func Memory(pid int) (rss, anon uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(b)
}

// errNoRSS: the status file has no VmRSS line (a kernel thread, or not a
// status file).
var errNoRSS = errors.New("testenv: no VmRSS in /proc/PID/status")

// parseStatus reads VmRSS and RssAnon (kB in the file) from the text of
// /proc/<pid>/status.
func parseStatus(b []byte) (rss, anon uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		fs := bytes.Fields(v)
		if len(fs) < 1 {
			continue
		}
		n, err := strconv.ParseUint(string(fs[0]), 10, 64)
		if err != nil || n > 1<<50 {
			continue
		}
		switch string(k) {
		case "VmRSS":
			rss = n << 10
		case "RssAnon":
			anon = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, errNoRSS
	}
	return rss, anon, nil
}
