package dmi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrConvert is returned for a device or model whose JSON does not fit the
// DMI message it is converted to.
var ErrConvert = errors.New("dmi: convert")

// edgecore converts a stored v1beta1 Device or DeviceModel to its DMI
// message by a JSON round trip into the generated Go type, so a JSON key
// matches a proto field by its JSON name, case-insensitively (encoding/json
// rules), and keys with no field are ignored (KubeEdge v1.23.1
// edge/pkg/devicetwin/dtcommon/util.go, ConvertDevice, ConvertDeviceModel).
// A schema lists the fields of one message for that conversion.
type schema []field

type kind uint8

const (
	kString kind = iota
	kBytes
	kInt64
	kInt32
	kBool
	kMsg
	kStringMap // map<string, string>
	kAnyMap    // map<string, google.protobuf.Any>, values wrapped by wrap
)

type field struct {
	json string
	num  protowire.Number
	kind kind
	rep  bool
	msg  *schema
}

// The DMI v1beta1 messages (proto of KubeEdge v1.23.1,
// staging/src/github.com/kubeedge/api/apis/dmi/v1beta1/api.proto), as far
// as the edge sends them.
var (
	twinPropertyS = schema{{json: "value", num: 1}, {json: "metadata", num: 2, kind: kStringMap}}
	customizedS   = schema{{json: "data", num: 1, kind: kAnyMap}}
	visitorS      = schema{{json: "protocolName", num: 1}, {json: "configData", num: 2, kind: kMsg, msg: &customizedS}}
	pushHTTPS     = schema{{json: "hostname", num: 1}, {json: "port", num: 2, kind: kInt64},
		{json: "requestpath", num: 3}, {json: "timeout", num: 4, kind: kInt64}}
	pushMQTTS = schema{{json: "address", num: 1}, {json: "topic", num: 2},
		{json: "qos", num: 3, kind: kInt32}, {json: "retained", num: 4, kind: kBool}}
	pushOTELS    = schema{{json: "endpointURL", num: 1}}
	influxClient = schema{{json: "url", num: 1}, {json: "org", num: 2}, {json: "bucket", num: 3}}
	influxData   = schema{{json: "measurement", num: 1}, {json: "tag", num: 2, kind: kStringMap}, {json: "fieldKey", num: 3}}
	influxS      = schema{{json: "influxdb2ClientConfig", num: 1, kind: kMsg, msg: &influxClient},
		{json: "influxdb2DataConfig", num: 2, kind: kMsg, msg: &influxData}}
	redisClient = schema{{json: "addr", num: 1}, {json: "db", num: 2, kind: kInt32},
		{json: "poolsize", num: 3, kind: kInt32}, {json: "minIdleConns", num: 4, kind: kInt32}}
	redisS      = schema{{json: "redisClientConfig", num: 1, kind: kMsg, msg: &redisClient}}
	tdClient    = schema{{json: "addr", num: 1}, {json: "dbname", num: 2}}
	tdS         = schema{{json: "tdEngineClientConfig", num: 1, kind: kMsg, msg: &tdClient}}
	mysqlClient = schema{{json: "addr", num: 1}, {json: "database", num: 2}, {json: "userName", num: 3}}
	mysqlS      = schema{{json: "mysqlClientConfig", num: 1, kind: kMsg, msg: &mysqlClient}}
	dbMethodS   = schema{{json: "influxdb2", num: 1, kind: kMsg, msg: &influxS}, {json: "redis", num: 2, kind: kMsg, msg: &redisS},
		{json: "tdengine", num: 3, kind: kMsg, msg: &tdS}, {json: "mysql", num: 4, kind: kMsg, msg: &mysqlS}}
	pushMethodS = schema{{json: "http", num: 1, kind: kMsg, msg: &pushHTTPS}, {json: "mqtt", num: 2, kind: kMsg, msg: &pushMQTTS},
		{json: "dbMethod", num: 3, kind: kMsg, msg: &dbMethodS}, {json: "otel", num: 4, kind: kMsg, msg: &pushOTELS},
		{json: "anomalyDetection", num: 5, kind: kMsg, msg: &customizedS}}
	devicePropertyS = schema{{json: "name", num: 1}, {json: "desired", num: 2, kind: kMsg, msg: &twinPropertyS},
		{json: "visitors", num: 3, kind: kMsg, msg: &visitorS}, {json: "reportCycle", num: 4, kind: kInt64},
		{json: "collectCycle", num: 5, kind: kInt64}, {json: "reportToCloud", num: 6, kind: kBool},
		{json: "pushMethod", num: 7, kind: kMsg, msg: &pushMethodS}}
	deviceMethodS = schema{{json: "name", num: 1}, {json: "description", num: 2}, {json: "propertyNames", num: 3, rep: true}}
	protocolS     = schema{{json: "protocolName", num: 1}, {json: "configData", num: 2, kind: kMsg, msg: &customizedS}}
	deviceSpecS   = schema{{json: "deviceModelReference", num: 1}, {json: "protocol", num: 2, kind: kMsg, msg: &protocolS},
		{json: "properties", num: 3, kind: kMsg, rep: true, msg: &devicePropertyS},
		{json: "methods", num: 4, kind: kMsg, rep: true, msg: &deviceMethodS}}
	twinS         = schema{{json: "propertyName", num: 1}, {json: "observedDesired", num: 2, kind: kMsg, msg: &twinPropertyS}, {json: "reported", num: 3, kind: kMsg, msg: &twinPropertyS}}
	deviceStatusS = schema{{json: "twins", num: 1, kind: kMsg, rep: true, msg: &twinS},
		{json: "reportToCloud", num: 2, kind: kBool}, {json: "reportCycle", num: 3, kind: kInt64}}
	deviceS = schema{{json: "name", num: 1}, {json: "spec", num: 2, kind: kMsg, msg: &deviceSpecS},
		{json: "status", num: 3, kind: kMsg, msg: &deviceStatusS}, {json: "namespace", num: 4}}
	modelPropertyS = schema{{json: "name", num: 1}, {json: "description", num: 2}, {json: "type", num: 3},
		{json: "accessMode", num: 4}, {json: "minimum", num: 5}, {json: "maximum", num: 6}, {json: "unit", num: 7}}
	deviceCommandS = schema{{json: "name", num: 1}, {json: "url", num: 2}, {json: "method", num: 3},
		{json: "status_code", num: 4, rep: true}, {json: "parameters", num: 5, rep: true}, {json: "response", num: 6, kind: kBytes}}
	modelSpecS = schema{{json: "properties", num: 1, kind: kMsg, rep: true, msg: &modelPropertyS},
		{json: "commands", num: 2, kind: kMsg, rep: true, msg: &deviceCommandS}}
	modelS = schema{{json: "name", num: 1}, {json: "spec", num: 2, kind: kMsg, msg: &modelSpecS}, {json: "namespace", num: 3}}
)

// obj is a decoded JSON object.
type obj = map[string]any

// decodeJSON decodes a JSON object, numbers as json.Number.
func decodeJSON(b []byte) (obj, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var o obj
	if err := d.Decode(&o); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConvert, err)
	}
	if o == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrConvert)
	}
	return o, nil
}

// lookup finds key in o as encoding/json would: exact match first, then
// any key equal under Unicode case folding.
func lookup(o obj, key string) (any, bool) {
	if v, ok := o[key]; ok {
		return v, true
	}
	for k, v := range o {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// encode appends the message of schema s built from o. null and absent
// values are skipped, like zero values in proto3.
func (s schema) encode(b []byte, o obj) ([]byte, error) {
	for _, f := range s {
		v, ok := lookup(o, f.json)
		if !ok || v == nil {
			continue
		}
		var err error
		if f.rep {
			list, isList := v.([]any)
			if !isList {
				return nil, fmt.Errorf("%w: %s: want a list", ErrConvert, f.json)
			}
			for _, e := range list {
				if e == nil && f.kind == kMsg {
					b = protowire.AppendTag(b, f.num, protowire.BytesType)
					b = protowire.AppendBytes(b, nil)
					continue
				}
				if b, err = f.encodeOne(b, e, true); err != nil {
					return nil, err
				}
			}
			continue
		}
		if b, err = f.encodeOne(b, v, false); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// encodeOne appends one value of field f. Scalars equal to their zero
// value are left out unless they are list elements (proto3).
func (f field) encodeOne(b []byte, v any, elem bool) ([]byte, error) {
	bad := func() ([]byte, error) {
		return nil, fmt.Errorf("%w: %s: unexpected value %T", ErrConvert, f.json, v)
	}
	switch f.kind {
	case kString, kBytes:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if s != "" || elem {
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
	case kInt64, kInt32:
		n, ok := v.(json.Number)
		if !ok {
			return bad()
		}
		i, err := n.Int64()
		if err != nil || (f.kind == kInt32 && (i < math.MinInt32 || i > math.MaxInt32)) {
			return bad()
		}
		if i != 0 || elem {
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(i))
		}
	case kBool:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		if x || elem {
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeBool(x))
		}
	case kMsg:
		o, ok := v.(obj)
		if !ok {
			return bad()
		}
		inner, err := f.msg.encode(nil, o)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		b = protowire.AppendBytes(b, inner)
	case kStringMap, kAnyMap:
		o, ok := v.(obj)
		if !ok {
			return bad()
		}
		for _, k := range sortedKeys(o) {
			var val []byte
			if f.kind == kStringMap {
				s, ok := o[k].(string)
				if !ok {
					return bad()
				}
				val = []byte(s)
			} else {
				a, err := wrap(o[k])
				if err != nil {
					return nil, fmt.Errorf("%w: %s[%s]: %v", ErrConvert, f.json, k, err)
				}
				val = a
			}
			entry := protowire.AppendTag(nil, 1, protowire.BytesType)
			entry = protowire.AppendString(entry, k)
			entry = protowire.AppendTag(entry, 2, protowire.BytesType)
			entry = protowire.AppendBytes(entry, val)
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, entry)
		}
	}
	return b, nil
}

// Type URLs of the well-known wrappers a configData value travels in.
const (
	typeString = "type.googleapis.com/google.protobuf.StringValue"
	typeFloat  = "type.googleapis.com/google.protobuf.FloatValue"
	typeBool   = "type.googleapis.com/google.protobuf.BoolValue"
)

// wrap encodes a configData value as a google.protobuf.Any holding a
// wrapper, as edgecore does (dtcommon/util.go, dataToAny): a string as
// StringValue, a bool as BoolValue, and a number, which a JSON decode into
// interface{} makes a float64, as FloatValue (float32). Objects, lists and
// null have no wrapper; edgecore fails the conversion for them, and so do
// we. The mapper-framework reads the value by the type URL's suffix
// (mapper-framework/pkg/common/dataconverter.go, DecodeAnyValue).
func wrap(v any) ([]byte, error) {
	var url string
	var val []byte
	switch x := v.(type) {
	case string:
		url = typeString
		if x != "" {
			val = protowire.AppendTag(val, 1, protowire.BytesType)
			val = protowire.AppendString(val, x)
		}
	case bool:
		url = typeBool
		if x {
			val = protowire.AppendTag(val, 1, protowire.VarintType)
			val = protowire.AppendVarint(val, 1)
		}
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		url = typeFloat
		if f32 := float32(f); f32 != 0 || math.Signbit(float64(f32)) {
			val = protowire.AppendTag(val, 1, protowire.Fixed32Type)
			val = protowire.AppendFixed32(val, math.Float32bits(f32))
		}
	default:
		return nil, fmt.Errorf("a %T has no protobuf wrapper", v)
	}
	a := protowire.AppendTag(nil, 1, protowire.BytesType)
	a = protowire.AppendString(a, url)
	if len(val) > 0 {
		a = protowire.AppendTag(a, 2, protowire.BytesType)
		a = protowire.AppendBytes(a, val)
	}
	return a, nil
}

// sortedKeys returns o's keys in order, so that equal maps encode to equal
// bytes.
func sortedKeys(o obj) []string {
	return slices.Sorted(maps.Keys(o))
}
