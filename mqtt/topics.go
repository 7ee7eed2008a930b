package mqtt

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"edgenode/bus"
)

// Topic prefixes that route an ingress message to DeviceTwin (docs/protocol.md
// 4.2).
const (
	prefixDevice = "$hw/events/device/"
	prefixNode   = "$hw/events/node/"
	// TopicUploadRecords is the one non-device topic whose v0.3.0 resource
	// stays raw (docs/protocol.md 4.2).
	TopicUploadRecords = "SYS/dis/upload_records"
)

// StaticTopics returns the topic filters EventBus always subscribes to: the
// union of both eras' lists (docs/protocol.md 4.2), so that one-level device
// ids (v0.3.0 to v1.16) and <namespace>/<name> ids (v1.17 on) both work. No two
// of them match the same topic (the device filters differ in depth and '+' does
// not match a leading '$', MQTT 3.1.1 4.7.2), so a message is delivered once.
func StaticTopics() []string {
	return []string{
		"$hw/events/upload/#",
		"$hw/events/device/+/state/update",
		"$hw/events/device/+/+/state/update",
		"$hw/events/device/+/twin/+",
		"$hw/events/device/+/+/twin/+",
		"$hw/events/node/+/membership/get",
		TopicUploadRecords,
		"+/user/#",
	}
}

// Dest is where an ingress message goes.
type Dest uint8

// Destinations of ingress messages.
const (
	DestTwin Dest = iota + 1 // group twin (Send2Group)
	DestHub                  // module websocket, to the cloud
)

// String names the destination, for logs.
func (d Dest) String() string {
	switch d {
	case DestTwin:
		return "twin"
	case DestHub:
		return "cloud"
	}
	return "unknown"
}

// Classify says where a message published on topic goes in era e (docs/protocol.md
// 4.2): device and node topics to DeviceTwin, the rest to the cloud.
// v0.3.0 tests the prefixes without their final slash.
func Classify(topic string, e bus.Era) Dest {
	dev, node := prefixDevice, prefixNode
	if e == bus.EraV03 {
		dev, node = dev[:len(dev)-1], node[:len(node)-1]
	}
	if strings.HasPrefix(topic, dev) || strings.HasPrefix(topic, node) {
		return DestTwin
	}
	return DestHub
}

// Ingress builds the bus message for a payload published on topic by client
// (docs/protocol.md 4.2) and says where it goes. The envelope is source "bus",
// group "user".
//   - twin: operation "response", resource the topic and content the
//     payload as they arrived, header type the client id. KubeEdge
//     base64-encodes the topic and JSON-quotes the payload here
//     (edge/pkg/eventbus/mqtt/server.go, v1.23); twin is in the same
//     process, so edgenode hands them on as they are and twin decodes
//     nothing twice.
//   - cloud, v1.23.1: operation "upload", resource the raw topic.
//   - cloud, v0.3.0: operation "response", resource base64 of the topic,
//     except SYS/dis/upload_records, which stays raw.
//
// The cloud's content is the payload as a JSON string.
func Ingress(client, topic string, payload []byte, e bus.Era) (Dest, bus.Message) {
	d := Classify(topic, e)
	if d == DestTwin {
		m := bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, bus.OpResponse, topic, payload)
		m.Header.Type = client
		return d, m
	}
	op, res := bus.OpResponse, base64.URLEncoding.EncodeToString([]byte(topic))
	switch {
	case e == bus.EraV123:
		op, res = bus.OpUpload, topic
	case topic == TopicUploadRecords:
		res = topic
	}
	return d, bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, op, res, bus.JSONString(string(payload)))
}

// ValidFilter reports whether f is a valid MQTT topic filter (MQTT 3.1.1
// 4.7): 1 to 65535 bytes of UTF-8 without NUL, '+' alone in its level, '#'
// alone in the last level. Shared subscriptions ($share/..., MQTT 5 4.8.2)
// are refused: the brokers would treat them specially, KubeEdge has none.
func ValidFilter(f string) bool {
	if f == "" || len(f) > 65535 || !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 {
		return false
	}
	if first, _, _ := strings.Cut(f, "/"); strings.EqualFold(first, "$share") {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && len(l) != 1 {
			return false
		}
		if l == "#" && i != len(levels)-1 {
			return false
		}
	}
	return true
}

// ValidTopic reports whether t is a valid topic name to publish to: a valid
// filter without wildcards (MQTT 3.1.1 4.7.3).
func ValidTopic(t string) bool {
	// ValidFilter without its level checks, which a name without
	// wildcards passes, and so without allocating: every result twin
	// publishes is checked here.
	if t == "" || len(t) > 65535 || !utf8.ValidString(t) || strings.ContainsAny(t, "+#\x00") {
		return false
	}
	first, _, _ := strings.Cut(t, "/")
	return !strings.EqualFold(first, "$share")
}
