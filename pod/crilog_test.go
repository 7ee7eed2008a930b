package pod

import (
	"bytes"
	"testing"
	"time"
)

var recordTests = []struct {
	name string
	line string
	want logRecord // time as text in wantTime
	time string
}{
	{"full", "2016-10-06T00:17:09.669794202Z stdout F log content 1",
		logRecord{text: []byte("log content 1")}, "2016-10-06T00:17:09.669794202Z"},
	{"partial stderr", "2016-10-06T00:17:09.669794203Z stderr P log content 2",
		logRecord{stream: stderr, partial: true, text: []byte("log content 2")}, "2016-10-06T00:17:09.669794203Z"},
	{"empty text", "2016-10-06T00:17:09Z stdout F ", logRecord{text: []byte{}}, "2016-10-06T00:17:09Z"},
	{"offset and extra tags", "2016-10-06T02:17:09.5+02:00 stdout F:x:y a b",
		logRecord{text: []byte("a b")}, "2016-10-06T00:17:09.5Z"},
	{"plain", "hello world", logRecord{text: []byte("hello world")}, ""},
	{"plain empty", "", logRecord{text: []byte{}}, ""},
	{"bad stream", "2016-10-06T00:17:09Z stdin F x", logRecord{text: []byte("2016-10-06T00:17:09Z stdin F x")}, ""},
	{"bad tag", "2016-10-06T00:17:09Z stdout X x", logRecord{text: []byte("2016-10-06T00:17:09Z stdout X x")}, ""},
	{"no tag", "2016-10-06T00:17:09Z stdout", logRecord{text: []byte("2016-10-06T00:17:09Z stdout")}, ""},
	{"bad time", "2016-13-06T00:17:09Z stdout F x", logRecord{text: []byte("2016-13-06T00:17:09Z stdout F x")}, ""},
}

func TestParseRecord(t *testing.T) {
	for _, tt := range recordTests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseRecord([]byte(tt.line))
			var want time.Time
			if tt.time != "" {
				want, _ = time.Parse(time.RFC3339Nano, tt.time)
			}
			if !got.time.Equal(want) || got.stream != tt.want.stream || got.partial != tt.want.partial ||
				!bytes.Equal(got.text, tt.want.text) {
				t.Errorf("parseRecord(%q) = %v %v %v %q, want %v %v %v %q", tt.line,
					got.time, got.stream, got.partial, got.text, want, tt.want.stream, tt.want.partial, tt.want.text)
			}
		})
	}
}

// FuzzParseRecord: any line parses without a panic, and a record edgenode
// writes reads back as written.
func FuzzParseRecord(f *testing.F) {
	for _, tt := range recordTests {
		f.Add([]byte(tt.line), int64(0), false)
	}
	f.Add([]byte("x"), int64(1<<62), true)
	f.Fuzz(func(t *testing.T, line []byte, ns int64, partial bool) {
		parseRecord(line)
		text := bytes.ReplaceAll(line, []byte("\n"), nil)
		ts := time.Unix(0, ns)
		b := appendRecord(nil, ts, stderr, partial, text)
		if b[len(b)-1] != '\n' || bytes.Count(b, []byte("\n")) != 1 {
			t.Fatalf("appendRecord(%q) = %q, want one line", text, b)
		}
		r := parseRecord(b[:len(b)-1])
		if ts.Year() < 0 || ts.Year() > 9999 {
			return // RFC 3339 has four-digit years
		}
		if !r.time.Equal(ts) || r.stream != stderr || r.partial != partial || !bytes.Equal(r.text, text) {
			t.Fatalf("parseRecord(appendRecord(%v, %v, %q)) = %v %v %v %q", ts, partial, text, r.time, r.stream, r.partial, r.text)
		}
	})
}
