package board

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"runtime"
	"strings"
	"sync"
)

// Uname is what uname(2) says about the running kernel.
type Uname struct {
	Machine  string // e.g. armv6l, armv7l, aarch64, x86_64
	Release  string // kernel release, e.g. 6.6.31+rpt-rpi-v6
	Nodename string // host name
}

// Facts are what the node knows about its host. They are collected once per
// status round; Memory and Disk change between rounds, the rest rarely.
type Facts struct {
	CPU       CPUInfo
	CPUs      int // processors, at least 1
	Memory    MemInfo
	Uname     Uname
	Arch      string // Kubernetes (GOARCH) spelling: arm, arm64, amd64, 386
	Variant   string // ARM variant (v6, v7, v8), empty elsewhere
	OSImage   string // PRETTY_NAME of os-release
	MachineID string
	BootID    string
	Hostname  string
	// Tasks and PIDMax give the PIDPressure condition; zero when unknown.
	Tasks, PIDMax int
	Disk          Disk
}

// Disk is the space of the file system holding the data dir.
type Disk struct {
	Total, Free        uint64 // bytes available to unprivileged users
	Inodes, InodesFree uint64
}

// Collect reads the facts from fsys, which is the root file system (or a
// fixture tree shaped like it), and u. Missing optional files leave their
// fields empty; a file that exists but cannot be parsed is an error, as is
// a missing /proc/cpuinfo or /proc/meminfo. Disk is not filled (see
// StatDisk).
func Collect(fsys fs.FS, u Uname) (Facts, error) {
	f := Facts{Uname: u}
	var errs []error
	if err := parseFile(fsys, "proc/cpuinfo", func(b []byte) (err error) {
		f.CPU, err = ParseCPUInfo(strings.NewReader(string(b)))
		return err
	}); err != nil {
		errs = append(errs, err)
	}
	if err := parseFile(fsys, "proc/meminfo", func(b []byte) (err error) {
		f.Memory, err = parseMemInfo(b)
		return err
	}); err != nil {
		errs = append(errs, err)
	}
	f.CPUs = max(f.CPU.Processors, 1)
	f.Arch, f.Variant = Arch(u.Machine, f.CPU)
	if u.Release == "" {
		f.Uname.Release = readTrim(fsys, "proc/sys/kernel/osrelease")
	}
	f.Hostname = u.Nodename
	if f.Hostname == "" {
		f.Hostname = readTrim(fsys, "proc/sys/kernel/hostname")
	}
	// os-release(5): /etc/os-release, falling back to /usr/lib/os-release.
	f.OSImage = "Linux"
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		err := parseOptional(fsys, p, func(b []byte) error {
			o, err := ParseOSRelease(strings.NewReader(string(b)))
			f.OSImage = o.PrettyName()
			return err
		})
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			break
		}
	}
	// machine-id(5): a read-only image may carry an empty file; D-Bus's copy
	// is the traditional fallback.
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		if err := parseOptional(fsys, p, func(b []byte) (err error) {
			f.MachineID, err = ParseID(strings.NewReader(string(b)))
			return err
		}); err == nil {
			break
		}
	}
	if err := parseOptional(fsys, "proc/sys/kernel/random/boot_id", func(b []byte) (err error) {
		f.BootID, err = ParseID(strings.NewReader(string(b)))
		return err
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	_ = parseOptional(fsys, "proc/loadavg", func(b []byte) (err error) {
		f.Tasks, err = parseLoadavg(b)
		return err
	})
	_ = parseOptional(fsys, "proc/sys/kernel/pid_max", func(b []byte) (err error) {
		f.PIDMax, err = parseInt(strings.NewReader(string(b)))
		return err
	})
	return f, errors.Join(errs...)
}

// Refresh re-reads into f the facts that change while the host runs:
// memory and the task count. The others (CPU, OS image, ids) stay as
// Collect read them, so a status round costs two small reads.
func Refresh(fsys fs.FS, f *Facts) error {
	err := parseFile(fsys, "proc/meminfo", func(b []byte) (err error) {
		f.Memory, err = parseMemInfo(b)
		return err
	})
	_ = parseOptional(fsys, "proc/loadavg", func(b []byte) (err error) {
		f.Tasks, err = parseLoadavg(b)
		return err
	})
	return err
}

// Arch maps uname's machine to the Kubernetes architecture and the ARM
// variant. When machine is empty it falls back to cpuinfo and then to the
// architecture this binary was built for.
func Arch(machine string, c CPUInfo) (arch, variant string) {
	switch {
	case machine == "x86_64" || machine == "amd64":
		return "amd64", ""
	case machine == "aarch64" || machine == "arm64":
		return "arm64", "v8"
	case strings.HasPrefix(machine, "armv"):
		// armv6l, armv7l, armv8l (a 32-bit userland on a 64-bit core).
		v := strings.TrimRight(strings.TrimPrefix(machine, "arm"), "lb")
		if cv := c.ARMVariant(); cv != "" && cv < v {
			v = cv
		}
		return "arm", v
	case len(machine) == 4 && machine[0] == 'i' && strings.HasSuffix(machine, "86"):
		return "386", ""
	case machine != "":
		return machine, ""
	}
	if v := c.ARMVariant(); v != "" {
		if v == "v8" && c.ModelName == "" {
			return "arm64", v
		}
		return "arm", v
	}
	return runtime.GOARCH, ""
}

// parseFile reads name and parses it. parse must not keep the bytes: they
// are in a buffer kept for the next read (readPooled).
func parseFile(fsys fs.FS, name string, parse func([]byte) error) error {
	bp, b, err := readPooled(fsys, name)
	defer readBufs.Put(bp)
	if err != nil {
		return fmt.Errorf("board: read /%s: %w", name, err)
	}
	if err := parse(b); err != nil {
		return fmt.Errorf("board: /%s: %w", name, err)
	}
	return nil
}

// parseOptional is parseFile that returns fs.ErrNotExist unwrapped-able for
// a missing or empty file.
func parseOptional(fsys fs.FS, name string, parse func([]byte) error) error {
	bp, b, err := readPooled(fsys, name)
	defer readBufs.Put(bp)
	if err != nil {
		return fmt.Errorf("board: read /%s: %w", name, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("board: /%s is empty: %w", name, fs.ErrNotExist)
	}
	if err := parse(b); err != nil {
		return fmt.Errorf("board: /%s: %w", name, err)
	}
	return nil
}

// readBufs holds the buffers parseFile reads into. The node status reads
// /proc/meminfo and /proc/loadavg every round (Refresh); fs.ReadFile
// grew a new buffer for each (their size is 0 to stat), about 9 KiB a
// round and most of an idle node's garbage after the stream tunnel's.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readPooled reads name into a buffer from readBufs; the caller puts bp
// back once done with b.
func readPooled(fsys fs.FS, name string) (bp *[]byte, b []byte, err error) {
	bp = readBufs.Get().(*[]byte)
	f, err := fsys.Open(name)
	if err != nil {
		return bp, nil, err
	}
	defer f.Close()
	b = (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = b
			return bp, nil, err
		}
	}
	*bp = b
	return bp, b, nil
}

func readTrim(fsys fs.FS, name string) string {
	b, err := fs.ReadFile(fsys, name)
	if err != nil || len(b) > 4096 {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// IfaceAddrs is one network interface and its addresses, the input of
// PickAddress.
type IfaceAddrs struct {
	Name     string
	Up       bool
	Loopback bool
	Addrs    []net.IP
}

// PickAddress chooses the node's InternalIP: the first IPv4 address (else
// the first global IPv6 one) of the interface named name, or, when name is
// empty, of the first interface that is up and not loopback (v0.3's
// edged.interface-name, KubeEdge v0.3.0 edge/pkg/edged/edged.go). It returns
// ErrNoInterface when nothing fits.
func PickAddress(ifaces []IfaceAddrs, name string) (net.IP, error) {
	for _, ifc := range ifaces {
		if name != "" && ifc.Name != name {
			continue
		}
		if name == "" && (!ifc.Up || ifc.Loopback) {
			continue
		}
		if ip := pickIP(ifc.Addrs); ip != nil {
			return ip, nil
		}
		if name != "" {
			return nil, fmt.Errorf("board: interface %s has no address: %w", name, ErrNoInterface)
		}
	}
	if name != "" {
		return nil, fmt.Errorf("board: interface %s not found: %w", name, ErrNoInterface)
	}
	return nil, ErrNoInterface
}

func pickIP(addrs []net.IP) net.IP {
	for _, ip := range addrs {
		if ip4 := ip.To4(); ip4 != nil {
			return ip4
		}
	}
	for _, ip := range addrs {
		if ip.IsGlobalUnicast() || ip.IsLoopback() {
			return ip
		}
	}
	return nil
}

// Interfaces lists the host's interfaces for PickAddress.
func Interfaces() ([]IfaceAddrs, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("board: list interfaces: %w", err)
	}
	out := make([]IfaceAddrs, 0, len(ifs))
	for _, ifc := range ifs {
		ia := IfaceAddrs{Name: ifc.Name, Up: ifc.Flags&net.FlagUp != 0, Loopback: ifc.Flags&net.FlagLoopback != 0}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ia.Addrs = append(ia.Addrs, n.IP)
			}
		}
		out = append(out, ia)
	}
	return out, nil
}
