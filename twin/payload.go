package twin

import (
	"encoding/json"
	"errors"
	"fmt"

	"edgenode/bus"
)

// The MQTT payloads of the device API (docs/protocol.md 5.2). Field order and
// tags follow KubeEdge's dttype structs, so encoding/json writes the same
// bytes: embedded baseMessage first, map keys sorted. Types used for output
// carry the era where the v0.3 tag quirk changes the bytes.

// baseMessage is the envelope of every payload (docs/protocol.md 5.2).
type baseMessage struct {
	EventID   string `json:"event_id"`
	Timestamp int64  `json:"timestamp"`
}

// twinValue is the expected or actual side of a twin.
type twinValue struct {
	Value    *string        `json:"value,omitempty"`
	Metadata *valueMetadata `json:"metadata,omitempty"`
}

type valueMetadata struct {
	Timestamp int64 `json:"timestamp,omitempty"`
}

type typeMetadata struct {
	Type string `json:"type,omitempty"`
}

// twinVersion is the version of one side of a twin (docs/protocol.md 5.4).
type twinVersion struct {
	Cloud int64 `json:"cloud"`
	Edge  int64 `json:"edge"`
}

// msgTwin is one twin as it travels (KubeEdge's MsgTwin).
type msgTwin struct {
	Expected        *twinValue    `json:"expected,omitempty"`
	Actual          *twinValue    `json:"actual,omitempty"`
	Optional        *bool         `json:"optional,omitempty"`
	Metadata        *typeMetadata `json:"metadata,omitempty"`
	ExpectedVersion *twinVersion  `json:"expected_version,omitempty"`
	ActualVersion   *twinVersion  `json:"actual_version,omitempty"`

	era bus.Era // output form; set by the code that builds the payload
}

// MarshalJSON writes the twin in the form of its era: v0.3.0's tags have
// a space before omitempty, so its value and timestamp are always written
// (docs/protocol.md 8 item 10). See appendJSON.
func (t msgTwin) MarshalJSON() ([]byte, error) {
	return t.appendJSON(nil), nil
}

// msgAttr is a device attribute (KubeEdge's MsgAttr).
type msgAttr struct {
	Value    string        `json:"value"`
	Optional *bool         `json:"optional,omitempty"`
	Metadata *typeMetadata `json:"metadata,omitempty"`
}

// wireDevice is a device in membership payloads (KubeEdge's Device).
type wireDevice struct {
	ID          string              `json:"id,omitempty"`
	Name        string              `json:"name,omitempty"`
	Description string              `json:"description,omitempty"`
	State       string              `json:"state,omitempty"`
	LastOnline  string              `json:"last_online,omitempty"`
	Attributes  map[string]*msgAttr `json:"attributes,omitempty"`
	Twin        map[string]*msgTwin `json:"twin,omitempty"`
}

// result is an error result (docs/protocol.md 5.2): code and reason are
// omitempty.
type result struct {
	baseMessage
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// twinMessage is a twin update request, update/get result, cloud sync and
// edge_updated payload.
type twinMessage struct {
	baseMessage
	Twin map[string]*msgTwin `json:"twin"`
}

type twinDelta struct {
	baseMessage
	Twin  map[string]*msgTwin `json:"twin"`
	Delta map[string]string   `json:"delta"`
}

type twinDoc struct {
	Last    *msgTwin `json:"last"`
	Current *msgTwin `json:"current"`
}

type twinDocument struct {
	baseMessage
	Twin map[string]*twinDoc `json:"twin"`
}

type membershipUpdate struct {
	baseMessage
	Added   []wireDevice `json:"added_devices"`
	Removed []wireDevice `json:"removed_devices"`
}

// membershipList is the membership detail from the cloud and the
// membership/get result.
type membershipList struct {
	baseMessage
	Devices []wireDevice `json:"devices"`
}

// deviceUpdate is a state update request and a device attribute update.
type deviceUpdate struct {
	baseMessage
	State      string              `json:"state,omitempty"`
	Attributes map[string]*msgAttr `json:"attributes"`
}

type attrUpdated struct {
	baseMessage
	Attributes map[string]*msgAttr `json:"attributes"`
}

type stateResult struct {
	baseMessage
	Device any `json:"device"`
}

type stateDeviceV03 struct {
	Name       string `json:"name,omitempty"`
	State      string `json:"state,omitempty"`
	LastOnline string `json:"last_online,omitempty"`
}

type stateDeviceV123 struct {
	Name           string `json:"name,omitempty"`
	State          string `json:"state,omitempty"`
	LastOnlineTime string `json:"lastOnlineTime,omitempty"`
}

// detailRequest asks the cloud for the node's device list (docs/protocol.md
// 5.6).
type detailRequest struct {
	EventType string `json:"event_type,omitempty"`
	EventID   string `json:"event_id,omitempty"`
	GroupID   string `json:"group_id,omitempty"`
	Operation string `json:"operation,omitempty"`
	Timestamp int64  `json:"timestamp"`
}

// Result codes (docs/protocol.md 5.2).
const (
	codeOK         = 200
	codeBadRequest = 400
	codeNotFound   = 404
	codeConflict   = 409
	codeInternal   = 500
)

// Payload errors. Their text is the reason of the error result.
var (
	ErrBadJSON  = errors.New("twin: payload is not a valid JSON object of the expected shape")
	ErrNoTwin   = errors.New("twin: update request has no twin key")
	ErrBadKey   = errors.New("twin: twin key must be 1-128 characters of a-z A-Z 0-9 - _ . , : / @ #")
	ErrBadValue = errors.New("twin: twin value must be 1-512 characters of a-z A-Z 0-9 - _ . , : / @ #")
	ErrBadType  = errors.New("twin: twin value does not match its type")
	ErrTooLarge = errors.New("twin: payload too large")
)

// Keys and values of twins (docs/protocol.md 5.2): KubeEdge checks them
// with ^[a-zA-Z0-9-_.,:/@#]{1,128}$ and {1,512}. A loop over the bytes
// does the same; the two regexps, compiled at start, held about 170 KiB
// of heap for the life of the process ({1,512} is 512 instructions).
const (
	maxKeyLen   = 128
	maxValueLen = 512
)

// twinChars marks the bytes allowed in a twin key or value.
var twinChars = func() (t [256]bool) {
	for _, r := range []string{"az", "AZ", "09"} {
		for c := r[0]; c <= r[1]; c++ {
			t[c] = true
		}
	}
	for _, c := range []byte("-_.,:/@#") {
		t[c] = true
	}
	return t
}()

// validTwinText reports whether s is 1 to max bytes, each allowed.
func validTwinText(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !twinChars[s[i]] {
			return false
		}
	}
	return true
}

// decode unmarshals a JSON object payload into v.
func decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	return nil
}

// decodeTwinUpdate reads a twin update request and checks its keys and
// values (docs/protocol.md 5.2). v1.23.1 allows an empty value. The
// request goes through decodeTwinUpdateFast, and through encoding/json
// when that declines it.
func decodeTwinUpdate(b []byte, era bus.Era) (twinMessage, error) {
	m, ok := decodeTwinUpdateFast(b)
	if !ok {
		// Apart from m: what decode is given goes to the heap.
		var j twinMessage
		if err := decode(b, &j); err != nil {
			return j, err
		}
		m = j
	}
	if m.Twin == nil {
		return m, ErrNoTwin
	}
	for k, t := range m.Twin {
		if !validTwinText(k, maxKeyLen) {
			return m, fmt.Errorf("%w: %q", ErrBadKey, k)
		}
		if t == nil {
			continue
		}
		for _, v := range []*twinValue{t.Expected, t.Actual} {
			if v == nil || v.Value == nil {
				continue
			}
			if *v.Value == "" && era != bus.EraV03 {
				continue
			}
			if !validTwinText(*v.Value, maxValueLen) {
				return m, fmt.Errorf("%w: key %q", ErrBadValue, k)
			}
		}
	}
	return m, nil
}
