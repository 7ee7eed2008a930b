// Package mqtt is EventBus: the MQTT side of edgenode. It runs an embedded
// broker, connects to an external one, or both (docs/protocol.md 4.1),
// subscribes to the device API topics, routes what devices and apps publish to
// DeviceTwin or to the cloud, and publishes what other modules send.
//
// # Modes
//
//   - internal (default): an embedded broker (mochi-mqtt) on
//     Config.Internal.Listen, 127.0.0.1:1883 by default. edgenode publishes
//     and subscribes through the broker's inline client, with no socket.
//     Anonymous clients are accepted only when the broker listens on a
//     loopback address (127.0.0.0/8, ::1, localhost); on any other address a
//     user name and password are required (Config.Internal.Username/Password
//     or the credentials file, default <dataDir>/mqtt-users), and TLS is
//     available (certFile/keyFile, optional client CA). Credentials that are
//     configured are enforced on loopback too. Beyond loopback the broker
//     refuses to start without TLS unless Internal.AllowPlaintext is set
//     (then it warns at every start). A connection must send CONNECT
//     within Internal.ConnectTimeout; of those that have not yet, at most
//     Internal.MaxPending are kept (the oldest is closed to make room).
//     Topic ACLs (acl.go): clients publish requests and read answers, only
//     edgenode publishes answers and membership; Internal.DeviceACL limits
//     users to device id patterns. If the port is taken (say,
//     by a mosquitto still running), EventBus logs an error and retries
//     with back-off; the rest of the node, and edgenode's own publishing,
//     work meanwhile.
//   - external: two paho clients to Config.External.Server, one subscribing
//     and one publishing, as KubeEdge does (client ids
//     hub-client-sub-<ms time prefix> and hub-client-pub-..., configurable).
//     They reconnect with a capped, jittered back-off; the subscriber
//     subscribes again to every filter after each connect (clean session),
//     at QoS 1. TLS verifies the broker unless insecureSkipVerify is set.
//   - both: the two at once; the embedded broker then defaults to
//     127.0.0.1:1884. Each egress publish goes to both brokers, as in
//     KubeEdge's eventbus.go (docs/protocol.md 4.1).
//
// # What flows in (MQTT to the bus, docs/protocol.md 4.2)
//
// Subscribed filters: the union of both eras' lists (StaticTopics), so
// one-level device ids and <namespace>/<name> ids both work, plus every
// filter stored in table sub_topics. A message that matches several filters
// is routed once. Each accepted message becomes one bus message with source
// "bus" (bus.ModuleBusSrc) and group "user":
//
//   - topics under $hw/events/device/ and $hw/events/node/ go to group twin
//     (Send2Group) with operation "response", the topic as resource, the
//     payload as content, both as they arrived (KubeEdge base64-encodes
//     the one and JSON-quotes the other; twin is in the same process), and
//     the publishing client's id in the header's type, for twin's fair
//     share per client. They are sent on the broker's goroutine of the
//     publishing client, with no queue between;
//   - every other topic goes to module websocket (the cloud), the payload
//     as a JSON string in content: in the v1.23 era with operation "upload" and the raw topic as resource; in the
//     v0.3 era with operation "response" and the base64 resource, except
//     SYS/dis/upload_records, which stays raw.
//
// In internal mode edgenode's own publishes are not routed back (KubeEdge
// injects them past its hook); in external mode the broker echoes them to
// the subscriber, as it does for KubeEdge.
//
// # What flows out (bus to MQTT, docs/protocol.md 4.3)
//
// Messages sent to module "eventbus", by operation:
//
//   - publish: topic route.resource, payload the content (a JSON string is
//     unquoted, anything else is sent as is). A publish with resource
//     node/connection is the v0.3 connection event and is ignored, as is
//     operation connect.
//   - message: content {"message":{"topic":"<t>",...}}; the inner object is
//     published to <t>, JSON-encoded with sorted keys as KubeEdge does.
//   - get_result with resource auth_info: the content is published to
//     $hw/events/node/<node>/authInfo/get/result.
//   - subscribe / unsubscribe: route.resource is a topic filter; it is
//     stored in (or removed from) sub_topics first, so it survives a
//     restart, then (un)subscribed on every broker. The static filters
//     cannot be unsubscribed.
//
// No response is sent for any of them. Bad topics, filters and contents are
// logged and counted (Stats.BadRequests).
//
// # Goroutines, queues, persistence
//
// Run's own goroutines: the egress loop (Run itself), the ingress loop of
// cloud-bound messages and, in external and both modes, one reconnect
// loop per paho client; the broker and paho run theirs. Broker callbacks
// never block: they send twin-bound messages to the bus (a full queue is
// a counted drop) and put the rest into the bounded ingress queue
// (Config.QueueLen; full: a counted drop); a payload over
// Config.MaxPayload is a counted drop too, so a slow bus never stalls the
// broker. (An oversize payload on a device or node topic is cut to
// MaxPayload+1 bytes and still handed to DeviceTwin, which answers it with
// an error result; a device app gets an answer, not silence.) The embedded broker gives each client a bounded outgoing queue
// (internal.clientQueue) and drops, and counts, what a slow client cannot
// take. Run returns after the brokers, the paho clients and the ingress loop
// have stopped. The only state persisted is table sub_topics.
package mqtt
