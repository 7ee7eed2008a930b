package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Era picks the wire form of a KubeEdge release.
type Era uint8

// The eras edgenode speaks (docs/protocol.md 0, 8).
const (
	// EraV123 is KubeEdge v1.23.1 (and the v1.2+ JSON form): every key but
	// msg_id and timestamp is omitted when empty (docs/protocol.md 1.2).
	EraV123 Era = iota
	// EraV03 is KubeEdge v0.3.0: route.group, header.parent_msg_id and
	// header.sync are always written, the others omitted when empty
	// (docs/protocol.md 1.1, the tag-space quirk).
	EraV03
)

// String returns "v1.23" or "v0.3".
func (e Era) String() string {
	if e == EraV03 {
		return "v0.3"
	}
	return "v1.23"
}

// ParseEra reads "v1.23" or "v0.3" (also "current" and "seed").
func ParseEra(s string) (Era, error) {
	switch s {
	case "", "v1.23", "current":
		return EraV123, nil
	case "v0.3", "seed":
		return EraV03, nil
	}
	return 0, fmt.Errorf("bus: unknown era %q (want v1.23 or v0.3)", s)
}

// Codec errors.
var (
	ErrBadFrame   = errors.New("bus: malformed message")
	ErrBadContent = errors.New("bus: content is not valid JSON")
)

// Encode appends the KubeEdge JSON form of msg in era e to dst. It fails only
// when msg.Content is not valid JSON. It does not allocate when dst has room.
func Encode(dst []byte, msg Message, e Era) ([]byte, error) {
	content := msg.Content
	if len(content) == 0 {
		content = nullJSON
	} else if !json.Valid(content) {
		return dst, ErrBadContent
	}
	h, r := &msg.Header, &msg.Route
	dst = append(dst, `{"header":{"msg_id":"`...)
	dst = appendEscaped(dst, h.ID.b[:h.ID.n])
	dst = append(dst, '"')
	if e == EraV03 || !h.ParentID.IsZero() {
		dst = append(dst, `,"parent_msg_id":"`...)
		dst = appendEscaped(dst, h.ParentID.b[:h.ParentID.n])
		dst = append(dst, '"')
	}
	dst = append(dst, `,"timestamp":`...)
	dst = appendInt(dst, h.Timestamp)
	if e == EraV123 && h.ResourceVersion != "" {
		dst = appendField(dst, "resourceversion", h.ResourceVersion)
	}
	if e == EraV03 || h.Sync {
		if h.Sync {
			dst = append(dst, `,"sync":true`...)
		} else {
			dst = append(dst, `,"sync":false`...)
		}
	}
	if e == EraV123 && h.Type != "" {
		dst = appendField(dst, "type", h.Type)
	}
	dst = append(dst, `},"route":{`...)
	n := len(dst)
	src := string(r.Source)
	if e == EraV03 && r.Source == ModuleMeta {
		src = string(SourceMetaManagerV03)
	}
	dst = appendOpt(dst, n, "source", src)
	if e == EraV123 {
		dst = appendOpt(dst, n, "destination", r.Destination)
		dst = appendOpt(dst, n, "group", string(r.Group))
	} else {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, `"group":"`...)
		dst = appendEscaped(dst, []byte(r.Group))
		dst = append(dst, '"')
	}
	dst = appendOpt(dst, n, "operation", string(r.Operation))
	dst = appendOpt(dst, n, "resource", r.Resource)
	dst = append(dst, `},"content":`...)
	dst = append(dst, content...)
	return append(dst, '}'), nil
}

var nullJSON = []byte("null")

func appendField(dst []byte, key, val string) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":"`...)
	dst = appendEscaped(dst, []byte(val))
	return append(dst, '"')
}

// appendOpt appends "key":"val" when val is not empty, with a comma unless
// it is the first key after position start.
func appendOpt(dst []byte, start int, key, val string) []byte {
	if val == "" {
		return dst
	}
	if len(dst) > start {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, `":"`...)
	dst = appendEscaped(dst, []byte(val))
	return append(dst, '"')
}

func appendInt(dst []byte, v int64) []byte {
	if v < 0 {
		dst = append(dst, '-')
		// -MinInt64 overflows; print via uint64.
		return appendUint(dst, uint64(-(v+1))+1)
	}
	return appendUint(dst, uint64(v))
}

func appendUint(dst []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

// appendEscaped appends s escaped for the inside of a JSON string. Invalid
// UTF-8 becomes U+FFFD, as encoding/json does.
func appendEscaped(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// JSONString returns s encoded as a JSON string value, for message content
// that is a string ("ping", "OK", an error text, a patch).
func JSONString(s string) []byte {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = appendEscaped(b, []byte(s))
	return append(b, '"')
}

// ContentString decodes content that is a JSON string. It reports false if
// the content is not a string.
func ContentString(content []byte) (string, bool) {
	if len(content) == 0 || content[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(content, &s); err != nil {
		return "", false
	}
	return s, true
}

// ContentBytes returns the payload carried by content: the decoded string when
// content is a JSON string, else content itself. KubeEdge puts MQTT payloads,
// patches and nested messages in content as strings (docs/protocol.md 2.5, 4.2,
// 5.2).
func ContentBytes(content []byte) []byte {
	if s, ok := ContentString(content); ok {
		return []byte(s)
	}
	return content
}

type wireMessage struct {
	Header struct {
		ID              string `json:"msg_id"`
		ParentID        string `json:"parent_msg_id"`
		Timestamp       int64  `json:"timestamp"`
		ResourceVersion string `json:"resourceversion"`
		Sync            bool   `json:"sync"`
		Type            string `json:"type"`
	} `json:"header"`
	Route struct {
		Source      string `json:"source"`
		Destination string `json:"destination"`
		Group       string `json:"group"`
		Operation   string `json:"operation"`
		Resource    string `json:"resource"`
	} `json:"route"`
	Content json.RawMessage `json:"content"`
}

// Decode reads one message in the JSON form of either era (every key of v0.3.0
// is also a key of v1.23.1, docs/protocol.md 1.2). Unknown keys are ignored; a
// frame that is not a JSON object, has keys of the wrong type, or an id longer
// than 36 bytes is ErrBadFrame. A missing or null content is nil.
func Decode(data []byte) (Message, error) {
	var w wireMessage
	if len(data) == 0 || data[0] != '{' {
		if i := firstNonSpace(data); i < 0 || data[i] != '{' {
			return Message{}, fmt.Errorf("%w: not a JSON object", ErrBadFrame)
		}
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	id, err := ParseID(w.Header.ID)
	if err != nil {
		return Message{}, fmt.Errorf("%w: msg_id: %v", ErrBadFrame, err)
	}
	parent, err := ParseID(w.Header.ParentID)
	if err != nil {
		return Message{}, fmt.Errorf("%w: parent_msg_id: %v", ErrBadFrame, err)
	}
	m := Message{
		Header: Header{ID: id, ParentID: parent, Timestamp: w.Header.Timestamp, Sync: w.Header.Sync,
			ResourceVersion: w.Header.ResourceVersion, Type: w.Header.Type},
		Route: Route{Source: Module(w.Route.Source), Destination: w.Route.Destination,
			Group: Group(w.Route.Group), Operation: Op(w.Route.Operation), Resource: w.Route.Resource},
	}
	if len(w.Content) > 0 && string(w.Content) != "null" {
		m.Content = []byte(w.Content)
	}
	if m.Route.Source == SourceMetaManagerV03 {
		m.Route.Source = ModuleMeta
	}
	m.Res = resourceOf(m.Route.Source, m.Route.Resource)
	return m, nil
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return i
		}
	}
	return -1
}
