package board

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CheckStatus is the verdict of one preflight check.
type CheckStatus string

// Verdicts. FAIL means edgenode cannot work as configured; WARN means a
// feature is degraded.
const (
	Pass CheckStatus = "PASS"
	Warn CheckStatus = "WARN"
	Fail CheckStatus = "FAIL"
)

// CheckResult is one line of `edgenode check`.
type CheckResult struct {
	Status CheckStatus
	Name   string
	Detail string
}

func (r CheckResult) String() string { return fmt.Sprintf("%s %s: %s", r.Status, r.Name, r.Detail) }

// PreflightConfig says what to check. Zero fields check the real host.
type PreflightConfig struct {
	FS         fs.FS     // root file system; default os.DirFS("/")
	Kernel     string    // kernel release; default from HostUname
	DataDir    string    // checked with CheckDataDir; "" skips
	Runc       string    // runc path or name; default "runc"
	BrokerAddr string    // TCP address the internal broker will listen on; "" skips
	Now        time.Time // default time.Now()
}

// Preflight runs every check and returns one result each, in a fixed order:
// kernel, cgroup, overlayfs, namespaces, runc, data dir, clock, broker port.
func Preflight(ctx context.Context, c PreflightConfig) []CheckResult {
	if c.FS == nil {
		c.FS = os.DirFS("/")
	}
	if c.Kernel == "" {
		if u, err := HostUname(); err == nil {
			c.Kernel = u.Release
		}
	}
	if c.Runc == "" {
		c.Runc = "runc"
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	out := []CheckResult{
		checkKernel(c.Kernel),
		checkCgroups(c.FS),
		checkOverlay(c.FS),
		checkNamespaces(c.FS),
		checkRunc(ctx, c.Runc),
	}
	if c.DataDir != "" {
		if err := CheckDataDir(c.DataDir); err != nil {
			out = append(out, CheckResult{Fail, "data dir", err.Error()})
		} else {
			out = append(out, CheckResult{Pass, "data dir", c.DataDir + " is writable"})
		}
	}
	// A board without an RTC boots in 1970 until NTP answers; TLS to the
	// cloud fails until then.
	if y := c.Now.Year(); y < 2024 {
		out = append(out, CheckResult{Fail, "clock", fmt.Sprintf("%s is before 2024: set the time (NTP, fake-hwclock or an RTC); TLS certificates will not verify", c.Now.UTC().Format(time.RFC3339))})
	} else {
		out = append(out, CheckResult{Pass, "clock", c.Now.UTC().Format(time.RFC3339)})
	}
	if c.BrokerAddr != "" {
		out = append(out, checkPort(c.BrokerAddr))
	}
	return out
}

// Failed reports whether any result is a FAIL.
func Failed(rs []CheckResult) bool {
	return slices.ContainsFunc(rs, func(r CheckResult) bool { return r.Status == Fail })
}

// ParseKernel returns the major and minor numbers of a kernel release
// such as "6.6.51+rpt-rpi-v6".
func ParseKernel(release string) (major, minor int, err error) {
	a, rest, ok := strings.Cut(release, ".")
	if !ok {
		return 0, 0, fmt.Errorf("board: kernel %q: %w", trunc(release), ErrSyntax)
	}
	b := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		b = rest[:i]
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return 0, 0, fmt.Errorf("board: kernel %q: %w", trunc(release), ErrSyntax)
	}
	return major, minor, nil
}

func checkKernel(release string) CheckResult {
	maj, min, err := ParseKernel(release)
	switch {
	case err != nil:
		return CheckResult{Fail, "kernel", err.Error()}
	case maj < 3 || maj == 3 && min < 10:
		return CheckResult{Fail, "kernel", release + " is older than 3.10, the oldest runc supports"}
	case maj < 4 || maj == 4 && min < 15:
		return CheckResult{Warn, "kernel", release + " is older than 4.15: no cgroup v2 controllers for pods"}
	}
	return CheckResult{Pass, "kernel", release}
}

// checkCgroups finds the memory, cpu and pids controllers in cgroup v2
// (cgroup.controllers at the root) or v1 (/proc/cgroups, enabled column).
func checkCgroups(fsys fs.FS) CheckResult {
	var have []string
	version := "v2"
	if b, err := fs.ReadFile(fsys, "sys/fs/cgroup/cgroup.controllers"); err == nil {
		have = strings.Fields(string(b))
	} else {
		version = "v1"
		b, err := fs.ReadFile(fsys, "proc/cgroups")
		if err != nil {
			return CheckResult{Fail, "cgroup", "neither /sys/fs/cgroup/cgroup.controllers nor /proc/cgroups: " + err.Error()}
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[3] == "1" {
				have = append(have, f[0])
			}
		}
	}
	var missing []string
	for _, c := range []string{"memory", "cpu", "pids"} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	switch {
	case slices.Contains(missing, "memory") || slices.Contains(missing, "pids"):
		hint := ""
		if slices.Contains(missing, "memory") {
			// Raspberry Pi OS kernels ship with the memory controller off.
			hint = "; on a Raspberry Pi add cgroup_enable=memory cgroup_memory=1 to cmdline.txt"
		}
		return CheckResult{Fail, "cgroup", fmt.Sprintf("%s: missing %s (pod memory and pid limits need them)%s", version, strings.Join(missing, ", "), hint)}
	case len(missing) > 0:
		return CheckResult{Warn, "cgroup", fmt.Sprintf("%s: missing %s: pod CPU limits are not enforced", version, strings.Join(missing, ", "))}
	}
	return CheckResult{Pass, "cgroup", version + ": memory, cpu, pids"}
}

func checkOverlay(fsys fs.FS) CheckResult {
	b, err := fs.ReadFile(fsys, "proc/filesystems")
	if err != nil {
		return CheckResult{Warn, "overlayfs", "cannot read /proc/filesystems: " + err.Error()}
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "overlay" {
			return CheckResult{Pass, "overlayfs", "overlay in /proc/filesystems"}
		}
	}
	return CheckResult{Warn, "overlayfs", "overlay not in /proc/filesystems (modprobe overlay): pods fall back to copied root file systems"}
}

func checkNamespaces(fsys fs.FS) CheckResult {
	ents, err := fs.ReadDir(fsys, "proc/self/ns")
	if err != nil {
		return CheckResult{Fail, "namespaces", "cannot read /proc/self/ns: " + err.Error()}
	}
	var have []string
	for _, e := range ents {
		have = append(have, e.Name())
	}
	var missing, optional []string
	for _, n := range []string{"mnt", "pid", "ipc", "uts", "net"} {
		if !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	for _, n := range []string{"cgroup", "user"} {
		if !slices.Contains(have, n) {
			optional = append(optional, n)
		}
	}
	switch {
	case len(missing) > 0:
		return CheckResult{Fail, "namespaces", "missing " + strings.Join(missing, ", ") + ": the kernel cannot isolate pods"}
	case len(optional) > 0:
		return CheckResult{Warn, "namespaces", "missing " + strings.Join(optional, ", ")}
	}
	return CheckResult{Pass, "namespaces", "mnt, pid, ipc, uts, net, cgroup, user"}
}

func checkRunc(ctx context.Context, runc string) CheckResult {
	v, err := RuncVersion(ctx, runc)
	if err != nil {
		return CheckResult{Fail, "runc", err.Error() + ": install runc or set its path"}
	}
	return CheckResult{Pass, "runc", "runc://" + v}
}

func checkPort(addr string) CheckResult {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		var detail string
		if errors.Is(err, errAddrInUse) {
			detail = addr + " is in use: another broker (mosquitto?) or edgenode is running; stop it or change the port"
		} else {
			detail = err.Error()
		}
		return CheckResult{Fail, "broker port", detail}
	}
	l.Close()
	return CheckResult{Pass, "broker port", addr + " is free"}
}
