// Package twin is DeviceTwin: the device API of the edge node.
//
// It owns the devices bound to the node, their attributes and their twins
// (desired "expected" and reported "actual" values), kept in the SQLite tables
// device, device_attr and device_twin with KubeEdge's columns (docs/protocol.md
// 5.3), and an in-memory view loaded from them at start that is never ahead of
// what is committed.
//
// In: bus messages to module "twin" (group twin). From the eventbus, MQTT
// requests on the $hw/events/device/<id>/... and
// $hw/events/node/<node>/membership/get topics (source "bus", resource the
// topic and content the payload as they arrived, header type the client id;
// KubeEdge encodes them, docs/protocol.md 4.2, but both ends are in this
// process). A device id is one level (<id>, v0.3) or two (<namespace>/<name>,
// v1.17+), decided per topic. From the cloud (source devicecontroller or
// edgemgr): membership updates, membership detail, twin cloud syncs and
// attribute updates. From the hub: node/connection events.
//
// Out: MQTT publishes (op publish to module eventbus, content the payload
// bytes) of the result, delta, document, get/result, state/update/result,
// updated and membership topics (docs/protocol.md 5.2); cloud-bound edge_updated,
// state updates and the membership detail request to module websocket,
// kept until the cloud confirms them and resent when the communication
// worker has been idle for a minute (docs/protocol.md 5.6). A device has at most one
// edge_updated and one state report unconfirmed at a time: newer ones,
// and those made while the cloud is away, are merged into the one that
// goes next (the newest value and version of each twin side, the newest
// state; merge.go), so a burst of updates reaches the cloud as a few
// reports that leave it with the latest values.
//
// Goroutines: Run serves the bus queue and starts the membership, twin, device
// and communication workers under a health check that pings them every 60 s and
// marks one silent for 120 s stuck, which makes the module unhealthy (Healthy)
// instead of restarting it (docs/protocol.md 5.5). Run returns after all of
// them have exited.
//
// Durability and speed: every accepted change is committed to SQLite
// (synchronous=FULL: the WAL is fsynced at each commit) before any result
// is published, so a result an app has seen survives power loss. Updates
// queued while one is being written are committed together in one
// transaction (one fsync), a repeated twin written once, and still
// answered one by one in order. The result, document, delta and
// edge_updated payloads are encoded by hand in one pass (encode.go), and
// update requests of the usual shape decoded by hand (decode.go), with
// encoding/json as the reference for both.
//
// BenchmarkEndToEnd measures a twin update through the embedded broker
// beside a bare publish/receive round trip of the same run (make bench
// prints both; README "Bench" has the latest figures). With one request in
// flight the update is bounded by the fsync of its commit, which costs more
// than a bare round trip; with many in flight the batch shares one fsync
// and CPU is the limit. On its way to the result an update is handed on
// three times (broker client reader -> twin dispatcher -> twin worker ->
// broker client writer; the eventbus sends to twin from the reader's
// goroutine and the worker publishes through EventBus.Publish) where a
// bare round trip is handed on once, and it produces one publish (the
// result; the document and delta only when a client subscribes to them).
// The updates of one commit go to the cloud as one edge_updated report
// per device. The jobs of the workers' inboxes and the buffers payloads
// are encoded into are pooled, so that an update leaves little for the
// collector, which on one thread is time taken from the updates.
//
// Fair share: each MQTT client may have Config.ClientShare requests
// queued; the eventbus takes the share (Config.Share) and answers a
// request over it with a 503 error result, and twin answers one its
// worker's queue cannot take the same way (share.go).
//
// Config.Era picks the payload shapes of KubeEdge v0.3 or v1.23 where they
// differ (docs/protocol.md 8). Config.DevicesDir names a folder of device files
// applied at start like a membership update, for nodes with no cloud.
package twin
