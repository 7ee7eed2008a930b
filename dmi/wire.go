package dmi

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrWire is returned for request bytes that are not the DMI message they
// should be.
var ErrWire = errors.New("dmi: bad message")

// Hand-written protowire encoding of the DMI v1beta1 messages the edge
// reads and writes (field numbers: proto of KubeEdge v1.23.1,
// staging/src/github.com/kubeedge/api/apis/dmi/v1beta1/api.proto). The
// generated Go types and the protobuf runtime would cost about 1.5 MiB of
// binary; these few functions cost kilobytes.

// mapperInfo is MapperInfo; its JSON is how a registration is stored, with
// the field names of the generated type (address as base64, as edgecore
// stores it).
type mapperInfo struct {
	Name       string `json:"name,omitempty"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
	Address    []byte `json:"address,omitempty"`
	State      string `json:"state,omitempty"`
}

// value is one field read by walk: v for bytes, x for varints.
type value struct {
	num protowire.Number
	typ protowire.Type
	v   []byte
	x   uint64
}

// walk calls fn for each field of message b. Unknown fields are skipped
// by fn returning nil; fn checks the wire type of the fields it knows.
func walk(b []byte, fn func(value) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrWire, protowire.ParseError(n))
		}
		b = b[n:]
		f := value{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrWire, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks a known field's wire type.
func (f value) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("%w: field %d has wire type %d, want %d", ErrWire, f.num, f.typ, t)
	}
	return nil
}

// str reads a string field into *s.
func (f value) str(s *string) error {
	if err := f.want(protowire.BytesType); err != nil {
		return err
	}
	*s = string(f.v)
	return nil
}

// decodeRegister reads MapperRegisterRequest{bool withData = 1;
// MapperInfo mapper = 2}.
func decodeRegister(b []byte) (withData bool, mi mapperInfo, err error) {
	err = walk(b, func(f value) error {
		switch f.num {
		case 1:
			withData = f.x != 0
			return f.want(protowire.VarintType)
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			return walk(f.v, func(g value) error {
				switch g.num {
				case 1:
					return g.str(&mi.Name)
				case 2:
					return g.str(&mi.Version)
				case 3:
					return g.str(&mi.APIVersion)
				case 4:
					return g.str(&mi.Protocol)
				case 5:
					mi.Address = append([]byte(nil), g.v...)
					return g.want(protowire.BytesType)
				case 6:
					return g.str(&mi.State)
				}
				return nil
			})
		}
		return nil
	})
	return withData, mi, err
}

// reportTwin is one Twin of a status report; a nil value was absent.
type reportTwin struct {
	property          string
	desired, reported *string
}

// decodeStatus reads ReportDeviceStatusRequest{string deviceName = 1;
// DeviceStatus reportedDevice = 2; string deviceNamespace = 3} with
// DeviceStatus{repeated Twin twins = 1; ...} and Twin{string propertyName
// = 1; TwinProperty observedDesired = 2; TwinProperty reported = 3}.
func decodeStatus(b []byte) (ns, name string, twins []reportTwin, err error) {
	err = walk(b, func(f value) error {
		switch f.num {
		case 1:
			return f.str(&name)
		case 3:
			return f.str(&ns)
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			return walk(f.v, func(g value) error {
				if g.num != 1 {
					return nil
				}
				if err := g.want(protowire.BytesType); err != nil {
					return err
				}
				t, err := decodeTwin(g.v)
				twins = append(twins, t)
				return err
			})
		}
		return nil
	})
	return ns, name, twins, err
}

func decodeTwin(b []byte) (reportTwin, error) {
	var t reportTwin
	err := walk(b, func(f value) error {
		switch f.num {
		case 1:
			return f.str(&t.property)
		case 2, 3:
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			// TwinProperty{string value = 1; map<string,string> metadata = 2}
			v := ""
			if err := walk(f.v, func(g value) error {
				if g.num == 1 {
					return g.str(&v)
				}
				return nil
			}); err != nil {
				return err
			}
			if f.num == 2 {
				t.desired = &v
			} else {
				t.reported = &v
			}
		}
		return nil
	})
	return t, err
}

// decodeStates reads ReportDeviceStatesRequest{string deviceName = 1;
// string deviceNamespace = 2; string state = 3}.
func decodeStates(b []byte) (ns, name, state string, err error) {
	err = walk(b, func(f value) error {
		switch f.num {
		case 1:
			return f.str(&name)
		case 2:
			return f.str(&ns)
		case 3:
			return f.str(&state)
		}
		return nil
	})
	return ns, name, state, err
}

// appendBytesField appends a length-delimited field, also when empty.
func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendStringField appends a string field unless it is empty (proto3).
func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// registerResponse encodes MapperRegisterResponse{repeated DeviceModel
// modelList = 1; repeated Device deviceList = 2}.
func registerResponse(models, devices [][]byte) []byte {
	var b []byte
	for _, m := range models {
		b = appendBytesField(b, 1, m)
	}
	for _, d := range devices {
		b = appendBytesField(b, 2, d)
	}
	return b
}

// nameRequest encodes the requests that name an object: RemoveDevice
// {deviceName = 1; deviceNamespace = 2} and RemoveDeviceModel {modelName
// = 1; modelNamespace = 2}.
func nameRequest(ns, name string) []byte {
	return appendStringField(appendStringField(nil, 1, name), 2, ns)
}

// objectRequest encodes the requests that carry one object in field 1:
// RegisterDevice, UpdateDevice {Device device = 1}, CreateDeviceModel,
// UpdateDeviceModel {DeviceModel model = 1}.
func objectRequest(msg []byte) []byte { return appendBytesField(nil, 1, msg) }
