package pod

import (
	"bytes"
	"time"
)

// Container logs are written in the CRI log format, the one containerd
// and CRI-O write and the kubelet and crictl read (Kubernetes v1.32
// staging/src/k8s.io/cri-client/pkg/logs/logs.go, parseCRILog): one record
// per line,
//
//	<RFC3339Nano time> <stdout|stderr> <F|P> <text>\n
//
// where P marks a piece of a line longer than maxLogLine (or cut when
// edgenode stopped), continued by the next record of the same stream,
// and F the last (or only) piece.

// maxLogLine is where a long line is split into P records: 16 KiB, as
// containerd's CRI plugin does (max_container_log_line_size).
const maxLogLine = 16 << 10

// timeFormatOut is how the kubelet writes timestamps=true prefixes
// (cri-client logs.go RFC3339NanoFixed); files use time.RFC3339Nano.
const timeFormatOut = "2006-01-02T15:04:05.000000000Z07:00"

// logStream is the stream a record came from.
type logStream uint8

const (
	stdout logStream = iota
	stderr
)

func (s logStream) String() string {
	if s == stderr {
		return "stderr"
	}
	return "stdout"
}

// logRecord is one parsed line of a log file.
type logRecord struct {
	time    time.Time // zero for a plain line (a log from before the CRI format)
	stream  logStream
	partial bool
	text    []byte // without the newline
}

// appendRecord appends one CRI record for text (no newline in it).
func appendRecord(b []byte, t time.Time, s logStream, partial bool, text []byte) []byte {
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, s.String()...)
	if partial {
		b = append(b, " P "...)
	} else {
		b = append(b, " F "...)
	}
	b = append(b, text...)
	return append(b, '\n')
}

// parseRecord parses one line of a log file (without its newline). A line
// that is not a CRI record is a plain stdout line: logs written before
// edgenode used the CRI format hold the container's raw output. Like the
// kubelet, tags after the first (F:x) are ignored.
func parseRecord(line []byte) logRecord {
	plain := logRecord{text: line}
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(ts) < len("2006-01-02T15:04:05Z") || ts[4] != '-' {
		return plain
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return plain
	}
	st, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return plain
	}
	r := logRecord{time: t}
	switch string(st) {
	case "stdout":
	case "stderr":
		r.stream = stderr
	default:
		return plain
	}
	tag, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return plain
	}
	tag, _, _ = bytes.Cut(tag, []byte{':'})
	switch string(tag) {
	case "P":
		r.partial = true
	case "F":
	default:
		return plain
	}
	r.text = text
	return r
}
