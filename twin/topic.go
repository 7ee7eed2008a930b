package twin

import (
	"errors"
	"strings"
)

// action is what an incoming message asks of the twin module
// (docs/protocol.md 5.1, classification table).
type action uint8

const (
	actNone          action = iota
	actMemGet               // $hw/events/node/<node>/membership/get
	actMemUpdated           // membership update from the cloud
	actMemDetail            // membership detail result from the cloud
	actTwinUpdate           // $hw/events/device/<id>/twin/update
	actTwinCloudSync        // .../twin/cloud_updated, or the cloud's device/<id>/twin/cloud_updated
	actTwinGet              // .../twin/get
	actStateUpdate          // .../state/update
	actStateGet             // .../state/get: mapped in KubeEdge, no handler
	actDeviceUpdated        // .../updated, or the cloud's updated on device/<id>
	actLifeCycle            // node/connection
	actConfirm              // a cloud reply to a message we sent
	actSendToCloud          // internal: a message for the cloud
)

var actionNames = [...]string{"none", "membership/get", "membership/updated", "membership/detail",
	"twin/update", "twin/cloud_updated", "twin/get", "state/update", "state/get", "updated",
	"lifecycle", "confirm", "sendtocloud"}

func (a action) String() string { return actionNames[a] }

// Topic parts (docs/protocol.md 5.1).
const (
	devicePrefix = "$hw/events/device/"
	nodePrefix   = "$hw/events/node/"

	sufTwinUpdate       = "/twin/update"
	sufTwinCloudUpdated = "/twin/cloud_updated"
	sufTwinGet          = "/twin/get"
	sufStateUpdate      = "/state/update"
	sufStateGet         = "/state/get"
	sufUpdated          = "/updated"
	sufResult           = "/result"
	sufDelta            = "/twin/update/delta"
	sufDocument         = "/twin/update/document"

	sufMemGet          = "/membership/get"
	sufMemUpdated      = "/membership/updated"
	sufMemDetailResult = "/membership/detail/result"
)

// Topic errors.
var (
	ErrUnknownTopic = errors.New("twin: topic is not a device API topic")
	ErrBadTopic     = errors.New("twin: device or node id in topic must have one or two non-empty levels")
)

// deviceSuffixes in match order: a suffix that ends another comes after it.
var deviceSuffixes = []struct {
	suf string
	act action
}{
	{sufTwinCloudUpdated, actTwinCloudSync},
	{sufTwinUpdate, actTwinUpdate},
	{sufTwinGet, actTwinGet},
	{sufStateUpdate, actStateUpdate},
	{sufStateGet, actStateGet},
	{sufUpdated, actDeviceUpdated},
}

var nodeSuffixes = []struct {
	suf string
	act action
}{
	{sufMemGet, actMemGet},
	{sufMemUpdated, actMemUpdated},
	{sufMemDetailResult, actMemDetail},
}

// classifyTopic maps an MQTT topic to an action and the device or node id
// (docs/protocol.md 5.1). Whether a device id has one level (v0.3: <id>) or two
// (v1.17+: <namespace>/<name>) is decided per topic by the suffix: what is
// left between the prefix and a known suffix is the id. A known suffix
// with a bad id returns the action with ErrBadTopic, so the caller can
// answer on the result topic.
func classifyTopic(topic string) (action, string, error) {
	if rest, ok := strings.CutPrefix(topic, devicePrefix); ok {
		for _, s := range deviceSuffixes {
			if id, ok := strings.CutSuffix(rest, s.suf); ok {
				return s.act, id, checkID(id, 2)
			}
		}
		return actNone, "", ErrUnknownTopic
	}
	if rest, ok := strings.CutPrefix(topic, nodePrefix); ok {
		for _, s := range nodeSuffixes {
			if id, ok := strings.CutSuffix(rest, s.suf); ok {
				return s.act, id, checkID(id, 1)
			}
		}
	}
	return actNone, "", ErrUnknownTopic
}

// checkID accepts 1..max non-empty levels with no MQTT wildcard.
func checkID(id string, max int) error {
	if id == "" || strings.ContainsAny(id, "+#\x00") {
		return ErrBadTopic
	}
	if strings.Count(id, "/") >= max || id[0] == '/' || id[len(id)-1] == '/' || strings.Contains(id, "//") {
		return ErrBadTopic // too many levels, or an empty one
	}
	return nil
}

func deviceTopic(id, suffix string) string { return devicePrefix + id + suffix }

func nodeTopic(node, suffix string) string { return nodePrefix + node + suffix }
