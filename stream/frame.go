package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// Type is a tunnel message type (KubeEdge v1.23.1 pkg/stream/constants.go).
type Type uint64

// The tunnel message types (KubeEdge v1.23.1 pkg/stream/constants.go).
const (
	TypeLogs    Type = 0 // LogsConnect: serve /containerLogs
	TypeExec    Type = 1 // ExecConnect: raw upgraded HTTP bytes follow
	TypeMetrics Type = 2 // MetricConnect: serve /stats, /metrics
	TypeData    Type = 3 // Data: bytes of one connection
	TypeRemove  Type = 4 // RemoveConnect: the connection ends
	TypeClose   Type = 5 // CloseConnect: cloud to edge, drop the tunnel
	TypeAttach  Type = 6 // AttachConnect: like exec
)

// MaxData is the most Data one message carries: the reader of KubeEdge
// v1.23.1 (pkg/stream/message.go, constants.MaxRespBodyLength) keeps 1 MiB
// and drops the rest, so Decode does the same and writers stay below it.
const MaxData = 1 << 20

// ErrShortFrame: a frame that ends inside its header.
var ErrShortFrame = errors.New("stream: frame too short")

// Frame is one tunnel message: one websocket Text message laid out as
// uvarint(ID) ‖ uvarint(Type) ‖ Data (KubeEdge v1.23.1
// pkg/stream/message.go, Bytes and ReadMessageFromTunnel).
type Frame struct {
	ID   uint64 // ConnectID, chosen by the cloud
	Type Type
	Data []byte
}

// Decode parses one frame. Data aliases b and is cut at MaxData.
func Decode(b []byte) (Frame, error) {
	id, n := binary.Uvarint(b)
	if n <= 0 {
		return Frame{}, ErrShortFrame
	}
	t, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return Frame{}, ErrShortFrame
	}
	data := b[n+m:]
	if len(data) > MaxData {
		data = data[:MaxData]
	}
	return Frame{ID: id, Type: Type(t), Data: data}, nil
}

// Append appends the wire form of f to dst.
func (f Frame) Append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, f.ID)
	dst = binary.AppendUvarint(dst, uint64(f.Type))
	return append(dst, f.Data...)
}

func (t Type) String() string {
	switch t {
	case TypeLogs:
		return "LOGS_CONNECT"
	case TypeExec:
		return "EXEC_CONNECT"
	case TypeMetrics:
		return "METRIC_CONNECT"
	case TypeData:
		return "DATA"
	case TypeRemove:
		return "REMOVE_CONNECT"
	case TypeClose:
		return "CLOSE_CONNECT"
	case TypeAttach:
		return "ATTACH_CONNECT"
	}
	return fmt.Sprintf("TYPE_%d", uint64(t))
}

// Connect is the Data of a connect message: the JSON of KubeEdge's
// Edged*Connection structs (v1.23.1 pkg/stream/edgedlogconnection.go,
// edgedmetricsconnection.go, edgedexecconnection.go). URL is a Go url.URL
// marshalled with its exported field names ("Scheme", "Host", "Path",
// "RawQuery", ...); Header is the whole header the cloud received.
type Connect struct {
	MessID uint64
	URL    url.URL     `json:"url"`
	Header http.Header `json:"header"`
	Method string      `json:"method,omitempty"` // exec and attach only
}
