package mqtt

import (
	"path"
	"strings"
)

// Topic ACLs of the embedded broker. Device apps publish requests and read
// answers; only edgenode publishes answers (docs/protocol.md 5.1): a client
// that could publish .../twin/update/result or membership/updated would forge
// the node's own replies to other apps.

// requestSuffixes are the device topics a client may publish to: the requests
// DeviceTwin serves (docs/protocol.md 5.1). .../twin/cloud_updated is left out:
// it stands for the cloud, although KubeEdge's "twin/+" filter lets any app
// send it.
var requestSuffixes = []string{"/twin/update", "/twin/get", "/state/update"}

// deviceSuffixes are every device topic of docs/protocol.md 5.1, longest first,
// so the device id of a topic is what lies between prefixDevice and its suffix.
var deviceSuffixes = []string{
	"/twin/update/document", "/twin/update/result", "/twin/update/delta",
	"/state/update/result", "/twin/cloud_updated", "/twin/get/result",
	"/state/update", "/twin/update", "/twin/get", "/updated",
}

// deviceID splits a device topic $hw/events/device/<id><suffix> into its id and
// suffix. ok is false for any other topic. The id is one level or
// <namespace>/<name> (docs/protocol.md 5.1); one of more levels is still split
// here, so that DeviceTwin can answer a request on it with an error result, and
// no device id pattern matches it.
func deviceID(topic string) (id, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(topic, prefixDevice)
	if !ok {
		return "", "", false
	}
	for _, s := range deviceSuffixes {
		if id, ok := strings.CutSuffix(rest, s); ok && id != "" {
			return id, s, true
		}
	}
	return "", "", false
}

// acl is who may use which topic. Its zero value lets every client use
// every device.
type acl struct {
	devices map[string][]string // user -> device id patterns; absent user: all
}

// canPublish reports whether a client logged in as user may publish topic.
func (a acl) canPublish(user []byte, topic string) bool {
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(topic, "$hw/") {
		return false // $SYS and other broker topics
	}
	if !strings.HasPrefix(topic, "$hw/") {
		return true // upload records, user topics, apps' own topics
	}
	if topic == "$hw/events/upload" || strings.HasPrefix(topic, "$hw/events/upload/") {
		return true
	}
	if id, suffix, ok := deviceID(topic); ok {
		for _, s := range requestSuffixes {
			if s == suffix {
				return a.device(user, id)
			}
		}
		return false
	}
	if node, ok := strings.CutPrefix(topic, prefixNode); ok {
		n, ok := strings.CutSuffix(node, "/membership/get")
		return ok && n != "" && !strings.Contains(n, "/") && a.all(user)
	}
	return false
}

// canRead reports whether a client logged in as user may subscribe to
// filter or receive a message on topic: the broker asks with the filter at
// SUBSCRIBE and with the topic of each message it delivers. A filter with
// wildcards is allowed; each message it matches is checked when delivered.
func (a acl) canRead(user []byte, topic string) bool {
	if a.all(user) || !strings.HasPrefix(topic, "$hw/") || strings.ContainsAny(topic, "+#") {
		return true
	}
	if topic == "$hw/events/upload" || strings.HasPrefix(topic, "$hw/events/upload/") {
		return true
	}
	id, _, ok := deviceID(topic)
	return ok && a.device(user, id)
}

// all reports whether user may use every device.
func (a acl) all(user []byte) bool {
	if len(a.devices) == 0 {
		return true
	}
	_, limited := a.devices[string(user)]
	return !limited
}

// device reports whether user may use device id.
func (a acl) device(user []byte, id string) bool {
	pats, limited := a.devices[string(user)]
	if !limited {
		return true
	}
	for _, p := range pats {
		if ok, _ := path.Match(p, id); ok {
			return true
		}
	}
	return false
}
