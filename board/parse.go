package board

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Errors of the parsers and fact readers.
var (
	ErrSyntax      = errors.New("board: syntax error")
	ErrNoInterface = errors.New("board: no usable network interface")
	ErrDataDir     = errors.New("board: data dir is not usable")
)

// maxLine bounds one line of a /proc or /etc file; longer lines are an
// error rather than an unbounded allocation.
const maxLine = 64 << 10

// CPUInfo is what /proc/cpuinfo says about the processors.
type CPUInfo struct {
	// Processors is the number of "processor" entries.
	Processors int
	// ModelName is the first "model name" (x86, 32-bit ARM), e.g.
	// "ARMv6-compatible processor rev 7 (v6l)".
	ModelName string
	// Architecture is the first "CPU architecture" value. BCM2835 (ARM1176)
	// reports 7 although the core is ARMv6; see ARMVariant.
	Architecture string
	// Hardware, Revision, Serial and Model are the board lines Raspberry Pi
	// kernels append after the processors.
	Hardware, Revision, Serial, Model string
}

// ARMVariant returns the ARM architecture variant ("v6", "v7", "v8") or ""
// for other CPUs. The "model name" suffix "(v6l)" is trusted first because
// ARM1176 cores report "CPU architecture: 7" (their CPUID scheme is v7's).
func (c CPUInfo) ARMVariant() string {
	if i := strings.LastIndex(c.ModelName, "(v"); i >= 0 && strings.HasSuffix(c.ModelName, "l)") {
		return c.ModelName[i+1 : len(c.ModelName)-2]
	}
	switch c.Architecture {
	case "6TEJ", "6":
		return "v6"
	case "7":
		return "v7"
	case "8", "AArch64":
		return "v8"
	}
	return ""
}

// Describe returns a one-line description: the board model when the kernel
// names it, else the CPU model name.
func (c CPUInfo) Describe() string {
	switch {
	case c.Model != "" && c.ModelName != "":
		return c.Model + " (" + c.ModelName + ")"
	case c.Model != "":
		return c.Model
	case c.ModelName != "":
		return c.ModelName
	}
	return c.Hardware
}

// ParseCPUInfo reads /proc/cpuinfo. Lines are "key<tabs>: value"; blank
// lines separate processors. A non-blank line without a colon is an error.
func ParseCPUInfo(r io.Reader) (CPUInfo, error) {
	var c CPUInfo
	err := eachLine(r, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("board: cpuinfo line %d: no colon: %w", n, ErrSyntax)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			c.Processors++
		case "model name", "Processor": // "Processor" on pre-3.8 ARM kernels
			setOnce(&c.ModelName, v)
		case "CPU architecture":
			setOnce(&c.Architecture, v)
		case "Hardware":
			setOnce(&c.Hardware, v)
		case "Revision":
			setOnce(&c.Revision, v)
		case "Serial":
			setOnce(&c.Serial, v)
		case "Model":
			setOnce(&c.Model, v)
		}
		return nil
	})
	return c, err
}

func setOnce(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// MemInfo is what /proc/meminfo says, in bytes.
type MemInfo struct {
	Total, Free, Available uint64
	// HasAvailable is false on kernels before 3.14, which lack MemAvailable;
	// Available is then estimated as MemFree + Buffers + Cached.
	HasAvailable bool
}

// ParseMemInfo reads /proc/meminfo ("Key:   123 kB" lines). A value that is
// not a number, or a unit other than kB, is an error.
func ParseMemInfo(r io.Reader) (MemInfo, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return MemInfo{}, fmt.Errorf("board: read meminfo: %w", err)
	}
	return parseMemInfo(b)
}

// parseMemInfo is ParseMemInfo on the file's bytes. It allocates only for
// an error: it runs at every status round.
func parseMemInfo(b []byte) (MemInfo, error) {
	var m MemInfo
	var buffers, cached uint64
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > maxLine {
			return MemInfo{}, fmt.Errorf("board: meminfo line %d: longer than %d bytes: %w", n, maxLine, ErrSyntax)
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return MemInfo{}, fmt.Errorf("board: meminfo line %d: no colon: %w", n, ErrSyntax)
		}
		num, rest := field(v)
		unit, rest := field(rest)
		if len(num) == 0 || len(rest) > 0 || len(unit) > 0 && string(unit) != "kB" {
			return MemInfo{}, fmt.Errorf("board: meminfo line %d: bad value %q: %w", n, v, ErrSyntax)
		}
		x, ok := parseDecimal(num)
		if !ok {
			return MemInfo{}, fmt.Errorf("board: meminfo line %d: %q is not a number: %w", n, num, ErrSyntax)
		}
		if len(unit) > 0 {
			if x > 1<<53 {
				return MemInfo{}, fmt.Errorf("board: meminfo line %d: %d kB is too big: %w", n, x, ErrSyntax)
			}
			x *= 1024
		}
		switch string(k) {
		case "MemTotal":
			m.Total = x
		case "MemFree":
			m.Free = x
		case "MemAvailable":
			m.Available, m.HasAvailable = x, true
		case "Buffers":
			buffers = x
		case "Cached":
			cached = x
		}
	}
	if m.Total == 0 {
		return MemInfo{}, fmt.Errorf("board: meminfo: no MemTotal: %w", ErrSyntax)
	}
	if !m.HasAvailable {
		m.Available = m.Free + buffers + cached
	}
	m.Available = min(m.Available, m.Total)
	return m, nil
}

// field splits the first field (separated by spaces or tabs) off b and
// returns it and the rest.
func field(b []byte) (f, rest []byte) { return fieldSep(b, " \t") }

// asciiSpace is ASCII's white space, the separators of /proc/loadavg's
// fields.
const asciiSpace = " \t\n\r\v\f"

// fieldSep is field with the separators in seps.
func fieldSep(b []byte, seps string) (f, rest []byte) {
	b = bytes.TrimLeft(b, seps)
	if i := bytes.IndexAny(b, seps); i >= 0 {
		return b[:i], bytes.TrimLeft(b[i:], seps)
	}
	return b, nil
}

// parseDecimal parses an unsigned decimal number that fits in 64 bits.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if x > (1<<64-1-d)/10 {
			return 0, false
		}
		x = x*10 + d
	}
	return x, true
}

// OSRelease is /etc/os-release (os-release(5)).
type OSRelease map[string]string

// PrettyName returns PRETTY_NAME, falling back to NAME VERSION and then to
// "Linux" as os-release(5) says.
func (o OSRelease) PrettyName() string {
	if v := o["PRETTY_NAME"]; v != "" {
		return v
	}
	if n := o["NAME"]; n != "" {
		return strings.TrimSpace(n + " " + o["VERSION"])
	}
	return "Linux"
}

// ParseOSRelease reads an os-release file: KEY=value lines, values maybe
// in single or double quotes with backslash escapes in double quotes,
// '#' comments. Lines that are not assignments are skipped, as os-release(5)
// asks; an unterminated quote is an error.
func ParseOSRelease(r io.Reader) (OSRelease, error) {
	o := OSRelease{}
	err := eachLine(r, func(n int, line string) error {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			return nil
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			return nil
		}
		val, err := unquote(v)
		if err != nil {
			return fmt.Errorf("board: os-release line %d: %w", n, err)
		}
		o[k] = val
		return nil
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func unquote(v string) (string, error) {
	if v == "" || (v[0] != '"' && v[0] != '\'') {
		return v, nil
	}
	q := v[0]
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == q:
			if i != len(v)-1 {
				return "", fmt.Errorf("text after closing quote: %w", ErrSyntax)
			}
			return b.String(), nil
		case c == '\\' && q == '"' && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unterminated quote: %w", ErrSyntax)
}

// ParseID reads a one-line id file (/etc/machine-id, boot_id): it trims
// white space and accepts 32 hex digits, optionally as a dashed UUID. It
// returns the id as written (trimmed).
func ParseID(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 128))
	if err != nil {
		return "", fmt.Errorf("board: read id: %w", err)
	}
	s := strings.TrimSpace(string(b))
	hex := strings.ReplaceAll(s, "-", "")
	if len(hex) != 32 || (len(s) != 32 && len(s) != 36) {
		return "", fmt.Errorf("board: id %q: want 32 hex digits: %w", trunc(s), ErrSyntax)
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("board: id %q: want 32 hex digits: %w", trunc(s), ErrSyntax)
		}
	}
	return s, nil
}

// ParseLoadavg reads /proc/loadavg and returns the number of tasks
// (threads) that exist, the denominator of its fourth field "running/total".
func ParseLoadavg(r io.Reader) (int, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxLoadavg))
	if err != nil {
		return 0, fmt.Errorf("board: read loadavg: %w", err)
	}
	return parseLoadavg(b)
}

// maxLoadavg is as much of /proc/loadavg as is read: five short fields.
const maxLoadavg = 256

// parseLoadavg is ParseLoadavg on the file's bytes. The node status calls
// it every round, and it allocates nothing unless the file is bad.
func parseLoadavg(b []byte) (int, error) {
	b = b[:min(len(b), maxLoadavg)]
	var f []byte
	rest := b
	for range 4 {
		f, rest = fieldSep(rest, asciiSpace)
	}
	if len(f) == 0 {
		return 0, fmt.Errorf("board: loadavg %q: %w", trunc(string(b)), ErrSyntax)
	}
	_, total, ok := bytes.Cut(f, []byte{'/'})
	n, okN := parseDecimal(total)
	if !ok || !okN || n > math.MaxInt32 {
		return 0, fmt.Errorf("board: loadavg %q: %w", trunc(string(f)), ErrSyntax)
	}
	return int(n), nil
}

// parseInt reads a file holding one decimal integer (/proc/sys/kernel/pid_max).
func parseInt(r io.Reader) (int, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	return n, nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// eachLine calls fn for each line of r, numbered from 1.
func eachLine(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Text()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("board: line %d: %w", n+1, err)
	}
	return nil
}
