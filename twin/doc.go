// Package twin is DeviceTwin: the device API of the edge node.
//
// It owns the devices bound to the node, their attributes and their twins
// (desired "expected" and reported "actual" values), kept in the SQLite
// tables device, device_attr and device_twin with KubeEdge's columns
// (spec 5.3), and an in-memory view loaded from them at start that is
// never ahead of what is committed.
//
// In: bus messages to module "twin" (group twin). From the eventbus,
// MQTT requests on the $hw/events/device/<id>/... and
// $hw/events/node/<node>/membership/get topics (source "bus", resource the
// base64url of the topic, content the payload as a JSON string; spec 4.2).
// A device id is one level (<id>, v0.3) or two (<namespace>/<name>,
// v1.17+), decided per topic. From the cloud (source devicecontroller or
// edgemgr): membership updates, membership detail, twin cloud syncs and
// attribute updates. From the hub: node/connection events.
//
// Out: MQTT publishes (op publish to module eventbus, content the payload
// bytes) of the result, delta, document, get/result, state/update/result,
// updated and membership topics (spec 5.2); cloud-bound edge_updated,
// state updates and the membership detail request to module websocket,
// kept until the cloud confirms them and resent when the communication
// worker has been idle for a minute (spec 5.6).
//
// Goroutines: Run serves the bus queue and starts the membership, twin,
// device and communication workers under a health check that pings them
// every 60 s and restarts one silent for 120 s (spec 5.5). Run returns
// after all of them have exited.
//
// Config.Era picks the payload shapes of KubeEdge v0.3 or v1.23 where
// they differ (spec 8). Config.DevicesDir names a folder of device files
// applied at start like a membership update, for nodes with no cloud.
package twin
