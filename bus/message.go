package bus

import (
	"math/rand/v2"
	"time"
)

// ID is a message id. New ids are UUID v4 strings (docs/protocol.md 1.1); ids
// read from the wire may be any string of at most 36 bytes. An ID is a value:
// making, copying and comparing one does not allocate. The zero ID is "no id".
type ID struct {
	n uint8
	b [36]byte
}

// NewID returns a random UUID v4. It does not allocate: the bits come from
// the runtime's per-thread ChaCha8 generator (math/rand/v2), which is seeded
// from the system's entropy source and safe for concurrent use.
func NewID() ID {
	const hex = "0123456789abcdef"
	var raw [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		raw[i] = byte(hi >> (8 * i))
		raw[8+i] = byte(lo >> (8 * i))
	}
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	var id ID
	id.n = 36
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			id.b[j] = '-'
			j++
		}
		id.b[j] = hex[c>>4]
		id.b[j+1] = hex[c&0x0f]
		j += 2
	}
	return id
}

// ParseID turns s into an ID. It fails for strings longer than 36 bytes.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) > len(id.b) {
		return ID{}, ErrBadID
	}
	id.n = uint8(copy(id.b[:], s))
	return id, nil
}

// MustID is ParseID for constants in tests and code; it panics on a bad id.
func MustID(s string) ID {
	id, err := ParseID(s)
	if err != nil {
		panic("bus: MustID(" + s + "): " + err.Error())
	}
	return id
}

// IsZero reports whether id is the empty id.
func (id ID) IsZero() bool { return id.n == 0 }

// String returns the id as a string. It allocates; hot paths use AppendTo.
func (id ID) String() string { return string(id.b[:id.n]) }

// AppendTo appends the id's bytes to dst.
func (id ID) AppendTo(dst []byte) []byte { return append(dst, id.b[:id.n]...) }

// Header is the header of a Message (docs/protocol.md 1.1, 1.2).
type Header struct {
	ID       ID
	ParentID ID
	// Timestamp is Unix time in milliseconds.
	Timestamp int64
	Sync      bool
	// ResourceVersion is the Kubernetes resourceVersion of the content
	// (v1.23.1 only; empty otherwise).
	ResourceVersion string
	// Type is beehive's context type (v1.23.1); normally empty.
	Type string
}

// Route says where a Message comes from and what it does (docs/protocol.md 1.1,
// 1.2).
type Route struct {
	Source      Module
	Destination string
	Group       Group
	Operation   Op
	// Resource is an edge-side resource path such as default/pod/nginx
	// (docs/protocol.md 1.7), a device resource, or an MQTT topic.
	Resource string
}

// Message is the unit that travels on the bus and on the cloud link. It is
// a value; Content is raw JSON and is never modified after the message is
// sent, so copies may share it.
type Message struct {
	Header Header
	Route  Route
	// Res is Route.Resource split into its parts (see Resource), filled by
	// NewMessage and Decode. Code that sets Route.Resource or
	// Route.Source otherwise calls SetResource.
	Res     Resource
	Content []byte
}

// SetResource sets Route.Resource to res and Res to its parts. It does not
// allocate.
func (m *Message) SetResource(res string) {
	m.Route.Resource = res
	m.Res = resourceOf(m.Route.Source, res)
}

// NewMessage returns a message with a fresh id and the current time. It does not
// allocate.
func NewMessage(source Module, group Group, op Op, resource string, content []byte) Message {
	return Message{
		Header:  Header{ID: NewID(), Timestamp: time.Now().UnixMilli()},
		Route:   Route{Source: source, Group: group, Operation: op, Resource: resource},
		Res:     resourceOf(source, resource),
		Content: content,
	}
}

// Resp returns a response to req (docs/protocol.md 1.3): a new id, parent id =
// the request's id, source, group, resource and type copied from the request,
// operation "response".
func (req Message) Resp(content []byte) Message {
	m := NewMessage(req.Route.Source, req.Route.Group, OpResponse, req.Route.Resource, content)
	m.Header.ParentID = req.Header.ID
	m.Header.Type = req.Header.Type
	return m
}

// ErrorResp returns an error message for req (docs/protocol.md 1.3, v1.23.1
// form): operation "error", parent id = the request's id, content a JSON string
// holding reason, with source set to the answering module.
func (req Message) ErrorResp(from Module, reason string) Message {
	m := NewMessage(from, req.Route.Group, OpError, req.Route.Resource, JSONString(reason))
	m.Header.ParentID = req.Header.ID
	return m
}

// OKContent is the content of MetaManager's acknowledgement (docs/protocol.md
// 2.5).
var OKContent = []byte(`"OK"`)

// IsOK reports whether content is the JSON string "OK".
func IsOK(content []byte) bool { return string(content) == `"OK"` }
