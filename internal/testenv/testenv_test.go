package testenv

import (
	"errors"
	"os"
	"runtime"
	"testing"
)

var statusTests = []struct {
	name      string
	in        string
	rss, anon uint64
	err       error
}{
	{"status", "Name:\tedgenode\nVmRSS:\t   18072 kB\nRssAnon:\t    5196 kB\nRssFile:\t   12876 kB\n", 18072 << 10, 5196 << 10, nil},
	{"no anon", "VmRSS:\t 4 kB\n", 4 << 10, 0, nil},
	{"kernel thread", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, 0, errNoRSS},
	{"garbage", "VmRSS: lots\nRssAnon:\n", 0, 0, errNoRSS},
	{"empty", "", 0, 0, errNoRSS},
}

func TestParseStatus(t *testing.T) {
	for _, tt := range statusTests {
		t.Run(tt.name, func(t *testing.T) {
			rss, anon, err := parseStatus([]byte(tt.in))
			if rss != tt.rss || anon != tt.anon || !errors.Is(err, tt.err) {
				t.Errorf("parseStatus(%q) = %d, %d, %v, want %d, %d, %v", tt.in, rss, anon, err, tt.rss, tt.anon, tt.err)
			}
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, tt := range statusTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rss, _, err := parseStatus(b)
		if (err == nil) != (rss > 0) {
			t.Errorf("parseStatus(%q) = rss %d, %v: want an error exactly when rss is 0", b, rss, err)
		}
	})
}

func TestMemorySelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	rss, anon, err := Memory(os.Getpid())
	if err != nil || anon == 0 || anon > rss {
		t.Errorf("Memory(self) = %d, %d, %v, want 0 < RssAnon <= VmRSS", rss, anon, err)
	}
}

func TestHostArch(t *testing.T) {
	if got := elfArch("/nonexistent"); got != runtime.GOARCH {
		t.Errorf("elfArch(missing) = %s, want %s", got, runtime.GOARCH)
	}
	if got := elfArch(os.Args[0]); got != runtime.GOARCH {
		t.Errorf("elfArch(this test binary) = %s, want %s", got, runtime.GOARCH)
	}
}
