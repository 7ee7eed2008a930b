package twin

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"edgenode/bus"
)

// Hand-written encoders of the twin payloads sent on every update: the result,
// document and delta (docs/protocol.md 5.2) and edge_updated (docs/protocol.md
// 5.6). encoding/json reaches a msgTwin through its MarshalJSON method, which
// encodes the twin once and then has the outer encoder parse and compact the
// bytes again, all by reflection; these append once to one buffer. They write
// exactly the bytes encoding/json writes for the same values (keys sorted, HTML
// characters escaped, omitempty as tagged), which TestAppendJSON and
// FuzzAppendString check against encoding/json.

// jsonAppender is a payload that encodes itself.
type jsonAppender interface {
	appendJSON(dst []byte) []byte
}

// appendString appends s as a JSON string as encoding/json writes it:
// <, > and & escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendHead appends `{"event_id":...,"timestamp":...`, with no closing
// brace. (Not appendJSON: every payload embeds baseMessage, and the
// method would make them all jsonAppenders.)
func (m baseMessage) appendHead(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = appendString(dst, m.EventID)
	dst = append(dst, `,"timestamp":`...)
	return strconv.AppendInt(dst, m.Timestamp, 10)
}

// appendKeys appends the keys of m to keys, sorted.
func appendKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendMap appends m as a JSON object with sorted keys, or null for a
// nil map, each value written by val.
func appendMap[V any](dst []byte, m map[string]V, val func([]byte, V) []byte) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	var buf [8]string
	dst = append(dst, '{')
	for i, k := range appendKeys(buf[:0], m) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = val(dst, m[k])
	}
	return append(dst, '}')
}

func appendTwin(dst []byte, t *msgTwin) []byte {
	if t == nil {
		return append(dst, "null"...)
	}
	return t.appendJSON(dst)
}

// appendJSON writes the twin in the form of its era (see MarshalJSON).
func (t *msgTwin) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	n := len(dst)
	field := func(name string) {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	for _, s := range []struct {
		name string
		v    *twinValue
	}{{"expected", t.Expected}, {"actual", t.Actual}} {
		if s.v == nil {
			continue
		}
		field(s.name)
		dst = s.v.appendJSON(dst, t.era)
	}
	if t.Optional != nil {
		field("optional")
		dst = strconv.AppendBool(dst, *t.Optional)
	}
	if t.Metadata != nil {
		field("metadata")
		dst = append(dst, '{')
		if t.Metadata.Type != "" {
			dst = append(dst, `"type":`...)
			dst = appendString(dst, t.Metadata.Type)
		}
		dst = append(dst, '}')
	}
	for _, s := range []struct {
		name string
		v    *twinVersion
	}{{"expected_version", t.ExpectedVersion}, {"actual_version", t.ActualVersion}} {
		if s.v == nil {
			continue
		}
		field(s.name)
		dst = append(dst, `{"cloud":`...)
		dst = strconv.AppendInt(dst, s.v.Cloud, 10)
		dst = append(dst, `,"edge":`...)
		dst = strconv.AppendInt(dst, s.v.Edge, 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendJSON writes one side of a twin. v0.3.0 always writes the value and the
// timestamp (docs/protocol.md 8 item 10); later releases omit them when empty.
func (v *twinValue) appendJSON(dst []byte, era bus.Era) []byte {
	dst = append(dst, '{')
	v03 := era == bus.EraV03
	switch {
	case v.Value != nil:
		dst = append(dst, `"value":`...)
		dst = appendString(dst, *v.Value)
	case v03:
		dst = append(dst, `"value":null`...)
	}
	if v.Metadata != nil {
		if v.Value != nil || v03 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"metadata":{`...)
		if v.Metadata.Timestamp != 0 || v03 {
			dst = append(dst, `"timestamp":`...)
			dst = strconv.AppendInt(dst, v.Metadata.Timestamp, 10)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func (m twinMessage) appendJSON(dst []byte) []byte {
	dst = m.appendHead(dst)
	dst = append(dst, `,"twin":`...)
	dst = appendMap(dst, m.Twin, appendTwin)
	return append(dst, '}')
}

func (m twinDocument) appendJSON(dst []byte) []byte {
	dst = m.appendHead(dst)
	dst = append(dst, `,"twin":`...)
	dst = appendMap(dst, m.Twin, func(dst []byte, d *twinDoc) []byte {
		if d == nil {
			return append(dst, "null"...)
		}
		dst = append(dst, `{"last":`...)
		dst = appendTwin(dst, d.Last)
		dst = append(dst, `,"current":`...)
		dst = appendTwin(dst, d.Current)
		return append(dst, '}')
	})
	return append(dst, '}')
}

func (m *twinDelta) appendJSON(dst []byte) []byte {
	dst = m.appendHead(dst)
	dst = append(dst, `,"twin":`...)
	dst = appendMap(dst, m.Twin, appendTwin)
	dst = append(dst, `,"delta":`...)
	dst = appendMap(dst, m.Delta, appendString)
	return append(dst, '}')
}
