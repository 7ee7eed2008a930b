package board

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// seedFixtures adds every fixture file called name under testdata/*/.
func seedFixtures(f *testing.F, name string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", name))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseCPUInfo(f *testing.F) {
	for _, tt := range cpuinfoTests {
		f.Add([]byte(tt.in))
	}
	seedFixtures(f, "proc/cpuinfo")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCPUInfo(bytes.NewReader(b))
		if err != nil {
			return
		}
		_ = c.ARMVariant()
		_ = c.Describe()
		if c.Processors < 0 {
			t.Fatalf("Processors = %d", c.Processors)
		}
	})
}

func FuzzParseMemInfo(f *testing.F) {
	for _, tt := range meminfoTests {
		f.Add([]byte(tt.in))
	}
	seedFixtures(f, "proc/meminfo")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMemInfo(bytes.NewReader(b))
		if err != nil {
			return
		}
		if m.Total == 0 || m.Available > m.Total {
			t.Fatalf("ParseMemInfo = %+v: want Total > 0 and Available <= Total", m)
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	for _, tt := range osReleaseTests {
		f.Add([]byte(tt.in))
	}
	seedFixtures(f, "etc/os-release")
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOSRelease(bytes.NewReader(b))
		if err != nil {
			return
		}
		if o.PrettyName() == "" {
			t.Fatal("PrettyName() is empty")
		}
	})
}

func FuzzParseID(f *testing.F) {
	for _, tt := range idTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseID(bytes.NewReader(b))
		if err == nil && len(id) != 32 && len(id) != 36 {
			t.Fatalf("ParseID = %q", id)
		}
	})
}

func FuzzParseLoadavg(f *testing.F) {
	for _, tt := range loadavgTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseLoadavg(bytes.NewReader(b))
		if err == nil && n < 0 {
			t.Fatalf("ParseLoadavg = %d", n)
		}
	})
}

func FuzzParseRuncVersion(f *testing.F) {
	for _, tt := range runcTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseRuncVersion(bytes.NewReader(b))
		if err == nil && !validVersion(v) {
			t.Fatalf("ParseRuncVersion = %q", v)
		}
	})
}

func FuzzPreflightFiles(f *testing.F) {
	f.Add([]byte("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t1\t1\npids\t4\t1\t1\n"), "6.6.51+rpt-rpi-v6")
	f.Add([]byte("cpuset cpu io memory pids\n"), "4.19-rc1")
	f.Add([]byte("nodev\toverlay\n"), "x")
	f.Fuzz(func(t *testing.T, b []byte, kernel string) {
		for _, fsys := range []fstest.MapFS{
			{"proc/cgroups": {Data: b}, "proc/filesystems": {Data: b}},
			{"sys/fs/cgroup/cgroup.controllers": {Data: b}},
		} {
			for _, r := range []CheckResult{checkCgroups(fsys), checkOverlay(fsys), checkKernel(kernel)} {
				if r.Status != Pass && r.Status != Warn && r.Status != Fail || r.Name == "" {
					t.Fatalf("check result %+v", r)
				}
			}
		}
	})
}
