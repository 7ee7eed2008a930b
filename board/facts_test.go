package board

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestCollectBoards(t *testing.T) {
	tests := []struct {
		name  string
		uname Uname
		want  Facts
	}{
		{
			name:  "pizero",
			uname: Uname{Machine: "armv6l"},
			want: Facts{
				CPU: CPUInfo{Processors: 1, ModelName: "ARMv6-compatible processor rev 7 (v6l)", Architecture: "7",
					Hardware: "BCM2835", Revision: "9000c1", Serial: "00000000a3e1b2c4", Model: "Raspberry Pi Zero W Rev 1.1"},
				CPUs:   1,
				Memory: MemInfo{Total: 439592 << 10, Free: 301224 << 10, Available: 364780 << 10, HasAvailable: true},
				Uname:  Uname{Machine: "armv6l", Release: "6.6.51+rpt-rpi-v6"},
				Arch:   "arm", Variant: "v6",
				OSImage:   "Raspbian GNU/Linux 12 (bookworm)",
				MachineID: "0b7e2c9d4a1f4e8b9c3d5e6f7a8b9c0d",
				BootID:    "4b0a6f1e-3c2d-4e5f-8a9b-0c1d2e3f4a5b",
				Hostname:  "pizero",
				Tasks:     98, PIDMax: 32768,
			},
		},
		{
			// uname says armv7l when an ARMv7 kernel runs on an ARMv6 core
			// only in emulators; the cpuinfo suffix wins.
			name:  "pi1",
			uname: Uname{Machine: "armv7l", Release: "5.10.103+", Nodename: "pi-one"},
			want: Facts{
				CPU: CPUInfo{Processors: 1, ModelName: "ARMv6-compatible processor rev 7 (v6l)", Architecture: "7",
					Hardware: "BCM2835", Revision: "000e", Serial: "00000000f00dcafe", Model: "Raspberry Pi Model B Rev 2"},
				CPUs:   1,
				Memory: MemInfo{Total: 443740 << 10, Free: 262180 << 10, Available: 379304 << 10, HasAvailable: true},
				Uname:  Uname{Machine: "armv7l", Release: "5.10.103+", Nodename: "pi-one"},
				Arch:   "arm", Variant: "v6",
				OSImage:   "Raspbian GNU/Linux 10 (buster)",
				MachineID: "5f1e3a2b7c9d4e6f8a0b1c2d3e4f5a6b",
				BootID:    "9d3c1e0a-77b2-4c61-a0f4-5e2b8d9c1a37",
				Hostname:  "pi-one",
				Tasks:     87, PIDMax: 32768,
			},
		},
		{
			name:  "pi3",
			uname: Uname{Machine: "armv7l"},
			want: Facts{
				CPU: CPUInfo{Processors: 4, ModelName: "ARMv7 Processor rev 4 (v7l)", Architecture: "7",
					Hardware: "BCM2835", Revision: "a02082", Serial: "000000003b9f7d21", Model: "Raspberry Pi 3 Model B Rev 1.2"},
				CPUs:   4,
				Memory: MemInfo{Total: 944040 << 10, Free: 602116 << 10, Available: 781420 << 10, HasAvailable: true},
				Uname:  Uname{Machine: "armv7l", Release: "6.1.21-v7+"},
				Arch:   "arm", Variant: "v7",
				OSImage:   "Raspbian GNU/Linux 11 (bullseye)",
				MachineID: "3c4d5e6f7a8b4c9d0e1f2a3b4c5d6e7f",
				BootID:    "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7",
				Hostname:  "pi3-garage",
				Tasks:     142, PIDMax: 32768,
			},
		},
		{
			name:  "pi4",
			uname: Uname{Machine: "aarch64"},
			want: Facts{
				CPU: CPUInfo{Processors: 4, Architecture: "8",
					Revision: "c03112", Serial: "10000000c4a1f9e3", Model: "Raspberry Pi 4 Model B Rev 1.2"},
				CPUs:   4,
				Memory: MemInfo{Total: 3884084 << 10, Free: 3120456 << 10, Available: 3551208 << 10, HasAvailable: true},
				Uname:  Uname{Machine: "aarch64", Release: "6.6.51+rpt-rpi-v8"},
				Arch:   "arm64", Variant: "v8",
				OSImage:   "Debian GNU/Linux 12 (bookworm)",
				MachineID: "8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d",
				BootID:    "0f9e8d7c-6b5a-4948-b372-6150f4e3d2c1",
				Hostname:  "pi4",
				Tasks:     183, PIDMax: 4194304,
			},
		},
		{
			name:  "pc",
			uname: Uname{Machine: "x86_64", Release: "6.8.0-49-generic"},
			want: Facts{
				CPU:       CPUInfo{Processors: 4, ModelName: "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz"},
				CPUs:      4,
				Memory:    MemInfo{Total: 16262044 << 10, Free: 9817236 << 10, Available: 12903544 << 10, HasAvailable: true},
				Uname:     Uname{Machine: "x86_64", Release: "6.8.0-49-generic"},
				Arch:      "amd64",
				OSImage:   "Ubuntu 24.04.1 LTS",
				MachineID: "c0ffee00d15ea5e5deadbeef01234567",
				BootID:    "7d6c5b4a-3928-4716-a504-f3e2d1c0b9a8",
				Hostname:  "workbench",
				Tasks:     1187, PIDMax: 4194304,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Collect(os.DirFS("testdata/"+tt.name), tt.uname)
			if err != nil {
				t.Fatalf("Collect(%s) error: %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Collect(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		board, want string
	}{
		{"pizero", "Raspberry Pi Zero W Rev 1.1 (ARMv6-compatible processor rev 7 (v6l))"},
		{"pi4", "Raspberry Pi 4 Model B Rev 1.2"},
		{"pc", "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz"},
	}
	for _, tt := range tests {
		f, err := os.Open("testdata/" + tt.board + "/proc/cpuinfo")
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCPUInfo(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Describe(); got != tt.want {
			t.Errorf("Describe(%s) = %q, want %q", tt.board, got, tt.want)
		}
	}
}

func TestCollectMissing(t *testing.T) {
	fsys := fstest.MapFS{"proc/meminfo": {Data: []byte("MemTotal: 1000 kB\n")}}
	_, err := Collect(fsys, Uname{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Collect(no cpuinfo) error = %v, want fs.ErrNotExist", err)
	}
	fsys = fstest.MapFS{
		"proc/cpuinfo":   {Data: []byte("processor : 0\n")},
		"proc/meminfo":   {Data: []byte("MemTotal: 1000 kB\n")},
		"etc/os-release": {Data: []byte("NAME=\"broken\n")},
	}
	if _, err := Collect(fsys, Uname{}); !errors.Is(err, ErrSyntax) {
		t.Errorf("Collect(bad os-release) error = %v, want ErrSyntax", err)
	}
	delete(fsys, "etc/os-release")
	f, err := Collect(fsys, Uname{Machine: "armv6l"})
	if err != nil {
		t.Fatalf("Collect(minimal) error: %v", err)
	}
	if f.OSImage != "Linux" || f.MachineID != "" || f.Memory.Available != 0 {
		t.Errorf("Collect(minimal) = %+v, want OSImage Linux, no machine id, Available = MemFree+Buffers+Cached = 0", f)
	}
}

var cpuinfoTests = []struct {
	name    string
	in      string
	want    CPUInfo
	wantErr error
}{
	{"empty", "", CPUInfo{}, nil},
	{"old arm kernel", "Processor\t: ARMv6-compatible processor rev 7 (v6l)\nprocessor\t: 0\nHardware\t: BCM2708\n",
		CPUInfo{Processors: 1, ModelName: "ARMv6-compatible processor rev 7 (v6l)", Hardware: "BCM2708"}, nil},
	{"first value wins", "processor: 0\nmodel name: a\n\nprocessor: 1\nmodel name: b\n",
		CPUInfo{Processors: 2, ModelName: "a"}, nil},
	{"empty value", "power management:\n", CPUInfo{}, nil},
	{"no colon", "processor 0\n", CPUInfo{}, ErrSyntax},
	{"long line", "model name: " + strings.Repeat("x", maxLine+1), CPUInfo{}, nil /* checked below */},
}

func TestParseCPUInfo(t *testing.T) {
	for _, tt := range cpuinfoTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCPUInfo(strings.NewReader(tt.in))
			if tt.name == "long line" {
				if err == nil {
					t.Errorf("ParseCPUInfo(long line) = nil error, want one")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseCPUInfo(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("ParseCPUInfo(%q) mismatch (-want +got):\n%s", tt.in, diff)
				}
			}
		})
	}
}

func TestARMVariant(t *testing.T) {
	tests := []struct {
		c    CPUInfo
		want string
	}{
		{CPUInfo{ModelName: "ARMv6-compatible processor rev 7 (v6l)", Architecture: "7"}, "v6"},
		{CPUInfo{ModelName: "ARMv7 Processor rev 4 (v7l)", Architecture: "7"}, "v7"},
		{CPUInfo{Architecture: "8"}, "v8"},
		{CPUInfo{ModelName: "Intel(R) Core(TM) i5"}, ""},
	}
	for _, tt := range tests {
		if got := tt.c.ARMVariant(); got != tt.want {
			t.Errorf("%+v.ARMVariant() = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestArch(t *testing.T) {
	v6 := CPUInfo{ModelName: "ARMv6-compatible processor rev 7 (v6l)", Architecture: "7"}
	tests := []struct {
		machine string
		c       CPUInfo
		arch, v string
	}{
		{"armv6l", v6, "arm", "v6"},
		{"armv7l", CPUInfo{}, "arm", "v7"},
		{"armv7l", v6, "arm", "v6"},
		{"aarch64", CPUInfo{}, "arm64", "v8"},
		{"x86_64", CPUInfo{}, "amd64", ""},
		{"i686", CPUInfo{}, "386", ""},
		{"riscv64", CPUInfo{}, "riscv64", ""},
		{"", v6, "arm", "v6"},
	}
	for _, tt := range tests {
		a, v := Arch(tt.machine, tt.c)
		if a != tt.arch || v != tt.v {
			t.Errorf("Arch(%q, %+v) = %q, %q, want %q, %q", tt.machine, tt.c, a, v, tt.arch, tt.v)
		}
	}
}

var meminfoTests = []struct {
	name    string
	in      string
	want    MemInfo
	wantErr error
}{
	{"modern", "MemTotal: 2048 kB\nMemFree: 1024 kB\nMemAvailable: 1536 kB\n",
		MemInfo{Total: 2 << 20, Free: 1 << 20, Available: 1536 << 10, HasAvailable: true}, nil},
	{"before 3.14", "MemTotal: 2048 kB\nMemFree: 512 kB\nBuffers: 256 kB\nCached: 256 kB\n",
		MemInfo{Total: 2 << 20, Free: 512 << 10, Available: 1 << 20}, nil},
	{"unitless counters", "MemTotal: 4 kB\nHugePages_Total:       0\n", MemInfo{Total: 4096}, nil},
	{"available above total", "MemTotal: 1 kB\nMemAvailable: 9 kB\n", MemInfo{Total: 1024, Available: 1024, HasAvailable: true}, nil},
	{"no total", "MemFree: 1 kB\n", MemInfo{}, ErrSyntax},
	{"bad number", "MemTotal: lots kB\n", MemInfo{}, ErrSyntax},
	{"negative", "MemTotal: -1 kB\n", MemInfo{}, ErrSyntax},
	{"bad unit", "MemTotal: 1 MB\n", MemInfo{}, ErrSyntax},
	{"overflow", "MemTotal: 18446744073709551615 kB\n", MemInfo{}, ErrSyntax},
	{"no colon", "MemTotal 1 kB\n", MemInfo{}, ErrSyntax},
	{"no value", "MemTotal:\n", MemInfo{}, ErrSyntax},
}

func TestParseMemInfo(t *testing.T) {
	for _, tt := range meminfoTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMemInfo(strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseMemInfo(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseMemInfo(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

var osReleaseTests = []struct {
	name    string
	in      string
	want    OSRelease
	pretty  string
	wantErr error
}{
	{"quoted", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n",
		OSRelease{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian"}, "Debian GNU/Linux 12 (bookworm)", nil},
	{"single quotes and escapes", "NAME='Alpine Linux'\nVERSION=\"3.20 \\\"x\\\"\"\n",
		OSRelease{"NAME": "Alpine Linux", "VERSION": `3.20 "x"`}, `Alpine Linux 3.20 "x"`, nil},
	{"comments and junk", "# comment\n\n  garbage line\n1BAD=x\nID=x\n", OSRelease{"ID": "x"}, "Linux", nil},
	{"empty", "", OSRelease{}, "Linux", nil},
	{"unterminated", "NAME=\"Debian\n", nil, "", ErrSyntax},
	{"text after quote", "NAME=\"a\"b\n", nil, "", ErrSyntax},
}

func TestParseOSRelease(t *testing.T) {
	for _, tt := range osReleaseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOSRelease(strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseOSRelease(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseOSRelease(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if p := got.PrettyName(); p != tt.pretty {
				t.Errorf("PrettyName() = %q, want %q", p, tt.pretty)
			}
		})
	}
}

var idTests = []struct {
	in, want string
	wantErr  error
}{
	{"0b7e2c9d4a1f4e8b9c3d5e6f7a8b9c0d\n", "0b7e2c9d4a1f4e8b9c3d5e6f7a8b9c0d", nil},
	{"4b0a6f1e-3c2d-4e5f-8a9b-0c1d2e3f4a5b\n", "4b0a6f1e-3c2d-4e5f-8a9b-0c1d2e3f4a5b", nil},
	{"uninitialized\n", "", ErrSyntax},
	{"0b7e2c9d4a1f4e8b9c3d5e6f7a8b9c0", "", ErrSyntax},
	{"0b7e2c9d4a1f4e8b9c3d5e6f7a8b9c0z", "", ErrSyntax},
	{"0b7e2c9d-4a1f4e8b9c3d5e6f7a8b9c0d", "", ErrSyntax},
}

func TestParseID(t *testing.T) {
	for _, tt := range idTests {
		got, err := ParseID(strings.NewReader(tt.in))
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseID(%q) = %q, %v, want %q, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

var loadavgTests = []struct {
	in      string
	want    int
	wantErr error
}{
	{"0.08 0.21 0.19 1/98 1234\n", 98, nil},
	{"0.08 0.21 0.19\n", 0, ErrSyntax},
	{"0.08 0.21 0.19 1-98 1234\n", 0, ErrSyntax},
	{"0.08 0.21 0.19 1/-3 1234\n", 0, ErrSyntax},
	{"0.08\t0.21  0.19\t2/117 1234", 117, nil},
	{"0.08 0.21 0.19 1/99999999999 1234\n", 0, ErrSyntax},
	{"0.08 0.21 0.19 1/ 1234\n", 0, ErrSyntax},
	{"", 0, ErrSyntax},
}

func TestParseLoadavg(t *testing.T) {
	for _, tt := range loadavgTests {
		got, err := ParseLoadavg(strings.NewReader(tt.in))
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseLoadavg(%q) = %d, %v, want %d, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPickAddress(t *testing.T) {
	lo := IfaceAddrs{Name: "lo", Up: true, Loopback: true, Addrs: []net.IP{net.ParseIP("127.0.0.1")}}
	down := IfaceAddrs{Name: "eth0", Addrs: []net.IP{net.ParseIP("10.0.0.9")}}
	wlan := IfaceAddrs{Name: "wlan0", Up: true, Addrs: []net.IP{net.ParseIP("fe80::1"), net.ParseIP("192.168.1.23")}}
	v6 := IfaceAddrs{Name: "usb0", Up: true, Addrs: []net.IP{net.ParseIP("fe80::2"), net.ParseIP("2001:db8::5")}}
	bare := IfaceAddrs{Name: "wg0", Up: true}
	tests := []struct {
		name    string
		ifaces  []IfaceAddrs
		iface   string
		want    string
		wantErr error
	}{
		{"first non-loopback up", []IfaceAddrs{lo, down, wlan}, "", "192.168.1.23", nil},
		{"named even if down", []IfaceAddrs{lo, down, wlan}, "eth0", "10.0.0.9", nil},
		{"named loopback", []IfaceAddrs{lo, wlan}, "lo", "127.0.0.1", nil},
		{"ipv6 only", []IfaceAddrs{lo, v6}, "", "2001:db8::5", nil},
		{"skip bare", []IfaceAddrs{bare, wlan}, "", "192.168.1.23", nil},
		{"named missing", []IfaceAddrs{lo, wlan}, "eth1", "", ErrNoInterface},
		{"named bare", []IfaceAddrs{bare}, "wg0", "", ErrNoInterface},
		{"only loopback", []IfaceAddrs{lo}, "", "", ErrNoInterface},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, err := PickAddress(tt.ifaces, tt.iface)
			got := ""
			if ip != nil {
				got = ip.String()
			}
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("PickAddress(%q) = %q, %v, want %q, %v", tt.iface, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestHostFacts(t *testing.T) {
	if _, err := os.Stat("/proc/cpuinfo"); err != nil {
		t.Skip("no /proc/cpuinfo on this system")
	}
	u, err := HostUname()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Collect(os.DirFS("/"), u)
	if err != nil {
		t.Fatalf("Collect(/) error: %v", err)
	}
	if f.CPUs < 1 || f.Memory.Total == 0 || f.Uname.Release == "" || f.Arch == "" {
		t.Errorf("Collect(/) = %+v, want cpus, memory, kernel and arch", f)
	}
	d, err := StatDisk(t.TempDir())
	if err != nil || d.Total == 0 || d.Free > d.Total {
		t.Errorf("StatDisk(tmp) = %+v, %v, want total > 0 and free <= total", d, err)
	}
	ifs, err := Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if ip, err := PickAddress(ifs, "lo"); err != nil || !ip.IsLoopback() {
		t.Errorf("PickAddress(host, lo) = %v, %v, want a loopback address", ip, err)
	}
}

func TestParseRuncVersion(t *testing.T) {
	for _, tt := range runcTests {
		got, err := ParseRuncVersion(strings.NewReader(tt.in))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseRuncVersion(%q) = %q, %v, want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

var runcTests = []struct {
	in      string
	want    string
	wantErr bool
}{
	{"runc version 1.1.12\ncommit: v1.1.12-0-g51d5e946\nspec: 1.0.2-dev\ngo: go1.20.13\nlibseccomp: 2.5.4\n", "1.1.12", false},
	{"runc version 1.3.0+dfsg1\n", "1.3.0+dfsg1", false},
	{"runc version\n", "", true},
	{"crun version 1.8\n", "", true},
	{"runc version 1.1.12; rm -rf /\n", "", true},
	{"", "", true},
}

// TestRefresh: a refresh re-reads memory and tasks and leaves the facts
// that Collect read once as they were.
func TestRefresh(t *testing.T) {
	f, err := Collect(os.DirFS("testdata/pizero"), Uname{Machine: "armv6l"})
	if err != nil {
		t.Fatal(err)
	}
	before := f
	fsys := fstest.MapFS{
		"proc/meminfo": {Data: []byte("MemTotal: 439592 kB\nMemFree: 1000 kB\nMemAvailable: 2000 kB\n")},
		"proc/loadavg": {Data: []byte("0.50 0.40 0.30 2/321 999\n")},
	}
	if err := Refresh(fsys, &f); err != nil {
		t.Fatal(err)
	}
	if f.Memory.Available != 2000<<10 || f.Tasks != 321 {
		t.Errorf("after Refresh: available %d tasks %d, want %d and 321", f.Memory.Available, f.Tasks, 2000<<10)
	}
	f.Memory, f.Tasks = before.Memory, before.Tasks
	if diff := cmp.Diff(before, f); diff != "" {
		t.Errorf("Refresh changed other facts (-before +after):\n%s", diff)
	}
	if err := Refresh(fstest.MapFS{}, &f); err == nil {
		t.Error("Refresh without /proc/meminfo = nil error, want one")
	}
}

// TestInterfaceIPv4 reads the loopback interface's address with ioctls.
func TestInterfaceIPv4(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	ip, up, err := InterfaceIPv4("lo")
	if err != nil || !up || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("InterfaceIPv4(lo) = %v, %v, %v, want 127.0.0.1, up", ip, up, err)
	}
	if _, _, err := InterfaceIPv4("no-such-if0"); err == nil {
		t.Error("InterfaceIPv4(no-such-if0) = nil error")
	}
}

// TestParseFileReusesBuffer: files read one after another into the
// pooled buffer each come out whole and alone, whether longer than the
// buffer or shorter than the one before.
func TestParseFileReusesBuffer(t *testing.T) {
	long := strings.Repeat("MemTotal:  1 kB\n", 700) // 11,200 bytes
	fsys := fstest.MapFS{
		"long":  {Data: []byte(long)},
		"short": {Data: []byte("0.00 0.01 0.05 1/64 321\n")},
	}
	for _, name := range []string{"long", "short", "long", "short"} {
		var got string
		if err := parseFile(fsys, name, func(b []byte) error { got = string(b); return nil }); err != nil {
			t.Fatalf("parseFile(%s) = %v", name, err)
		}
		if want := string(fsys[name].Data); got != want {
			t.Errorf("parseFile(%s) read %d bytes, want %d", name, len(got), len(want))
		}
	}
	if err := parseOptional(fsys, "absent", func([]byte) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("parseOptional(absent) = %v, want fs.ErrNotExist", err)
	}
}
