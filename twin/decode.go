package twin

// A hand-written decoder of the twin update request (docs/protocol.md 5.2),
// the payload of every MQTT twin/update and so the hottest input of the
// node, which may have one slow core. encoding/json decodes it by
// reflection; this decoder reads the shape apps send (twinMessage with its
// field names, any whitespace, null where encoding/json takes one) straight
// into the structs and allocates only what the result holds: for the
// request of BenchmarkDecodeTwinUpdate, 6 allocations instead of 17 and
// about a quarter of the time.
//
// encoding/json stays the reference. The fast path declines whatever it
// is not certain to decode exactly as json.Unmarshal would: a key that is
// not one of the field names as tagged (encoding/json also matches them
// without case and skips unknown keys), a repeated key (encoding/json
// decodes the second value over the first), a string with an escape or a
// byte below 0x20 or above 0x7f, a number that is not a plain integer of at
// most 18 digits, a value of the wrong type, truncated input or anything
// after the object. decodeTwinUpdate then decodes with encoding/json,
// which also words the errors. FuzzDecodeTwinUpdateFast checks every input
// the fast path takes against json.Unmarshal.

// decodeTwinUpdateFast decodes b as json.Unmarshal into a twinMessage
// would, or returns ok false if b is not of the plain shape it reads (see
// above); then m is the zero value.
func decodeTwinUpdateFast(b []byte) (m twinMessage, ok bool) {
	d := decoder{b: b}
	ok = d.fields(func(key []byte) bool {
		switch string(key) {
		case "event_id":
			return d.str(&m.EventID)
		case "timestamp":
			return d.int(&m.Timestamp)
		case "twin":
			return d.twins(&m.Twin)
		}
		return false
	})
	if d.space(); !ok || d.i != len(d.b) {
		return twinMessage{}, false
	}
	return m, true
}

// decoder reads JSON from b at i. Each method skips the whitespace before
// what it reads and returns false to decline.
type decoder struct {
	b []byte
	i int
}

// space skips JSON whitespace (RFC 8259 section 2).
func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next reads w if it comes next.
func (d *decoder) next(w string) bool {
	d.space()
	if len(d.b)-d.i >= len(w) && string(d.b[d.i:d.i+len(w)]) == w {
		d.i += len(w)
		return true
	}
	return false
}

// null reads null if it comes next. A null leaves a string or number field
// as it was (zero: repeated keys are declined) and makes a pointer or map
// nil, as encoding/json does.
func (d *decoder) null() bool { return d.next("null") }

// object reads an object, calling member with each key with d at its
// value. member reads the value or returns false.
func (d *decoder) object(member func(key []byte) bool) bool {
	if !d.next("{") {
		return false
	}
	if d.next("}") {
		return true
	}
	for {
		key, ok := d.text()
		if !ok || !d.next(":") || !member(key) {
			return false
		}
		if d.next("}") {
			return true
		}
		if !d.next(",") {
			return false
		}
	}
}

// fields reads an object of a struct, calling field with each key. An
// unknown key (field returns false) declines, and so does a repeated one:
// encoding/json would decode its value over the first.
func (d *decoder) fields(field func(key []byte) bool) bool {
	var seen [6][]byte // no struct here has more fields
	n := 0
	return d.object(func(key []byte) bool {
		for _, k := range seen[:n] {
			if string(k) == string(key) {
				return false
			}
		}
		if n == len(seen) || !field(key) {
			return false
		}
		seen[n] = key
		n++
		return true
	})
}

// alloc sets *p to a new T and returns it.
func alloc[T any](p **T) *T {
	*p = new(T)
	return *p
}

// text reads a string of bytes 0x20 to 0x7f without escapes and returns
// them, still in b. encoding/json would undo escapes and replace invalid
// UTF-8; such strings are left to it.
func (d *decoder) text() ([]byte, bool) {
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

func (d *decoder) str(p *string) bool {
	if d.null() {
		return true
	}
	s, ok := d.text()
	*p = string(s)
	return ok
}

func (d *decoder) strPtr(p **string) bool { return d.null() || d.str(alloc(p)) }

// int reads an integer of at most 18 digits, which fits an int64. A
// fraction or an exponent, which encoding/json refuses for an int64, or a
// leading zero, which JSON does not allow, declines.
func (d *decoder) int(p *int64) bool {
	if d.null() {
		return true
	}
	neg := d.next("-")
	start := d.i
	var n int64
	for ; d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9'; d.i++ {
		n = n*10 + int64(d.b[d.i]-'0')
	}
	digits := d.i - start
	if digits == 0 || digits > 18 || digits > 1 && d.b[start] == '0' {
		return false
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return false
	}
	if neg {
		n = -n
	}
	*p = n
	return true
}

func (d *decoder) boolPtr(p **bool) bool {
	switch {
	case d.null():
	case d.next("true"):
		*p = new(true)
	case d.next("false"):
		*p = new(false)
	default:
		return false
	}
	return true
}

// twins reads the twin map. A key repeated in it declines, as in a
// struct.
func (d *decoder) twins(p *map[string]*msgTwin) bool {
	if d.null() {
		return true
	}
	m := map[string]*msgTwin{}
	*p = m
	return d.object(func(key []byte) bool {
		if _, dup := m[string(key)]; dup {
			return false
		}
		var t *msgTwin
		if !d.null() && !d.twin(alloc(&t)) {
			return false
		}
		m[string(key)] = t
		return true
	})
}

func (d *decoder) twin(t *msgTwin) bool {
	return d.fields(func(key []byte) bool {
		switch string(key) {
		case "expected":
			return d.null() || d.value(alloc(&t.Expected))
		case "actual":
			return d.null() || d.value(alloc(&t.Actual))
		case "optional":
			return d.boolPtr(&t.Optional)
		case "metadata":
			return d.null() || d.typeMetadata(alloc(&t.Metadata))
		case "expected_version":
			return d.null() || d.version(alloc(&t.ExpectedVersion))
		case "actual_version":
			return d.null() || d.version(alloc(&t.ActualVersion))
		}
		return false
	})
}

func (d *decoder) value(v *twinValue) bool {
	return d.fields(func(key []byte) bool {
		switch string(key) {
		case "value":
			return d.strPtr(&v.Value)
		case "metadata":
			return d.null() || d.valueMetadata(alloc(&v.Metadata))
		}
		return false
	})
}

func (d *decoder) valueMetadata(m *valueMetadata) bool {
	return d.fields(func(key []byte) bool { return string(key) == "timestamp" && d.int(&m.Timestamp) })
}

func (d *decoder) typeMetadata(m *typeMetadata) bool {
	return d.fields(func(key []byte) bool { return string(key) == "type" && d.str(&m.Type) })
}

func (d *decoder) version(v *twinVersion) bool {
	return d.fields(func(key []byte) bool {
		switch string(key) {
		case "cloud":
			return d.int(&v.Cloud)
		case "edge":
			return d.int(&v.Edge)
		}
		return false
	})
}
