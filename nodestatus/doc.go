// Package nodestatus reports the board as a Kubernetes node: the status and
// the lease edged keeps in KubeEdge (v1.23.1 edge/pkg/edged: the node
// status loop of the kubelet it embeds).
//
// What it owns: a v1.NodeStatus with capacity, allocatable, conditions and
// nodeInfo, built from board's facts each round, and sent through
// MetaManager in the shape of the configured era:
//   - v0.3: a nodestatus update every UpdateFrequency (10 s), the node's
//     registration and heartbeat in that era;
//   - v1.23: a node insert until the cloud accepts it (never again for a
//     node meta kept from an earlier run), then a nodepatch when the status
//     changed or at least every ReportFrequency, and the lease
//     kube-node-lease/lease/<node> renewed every UpdateFrequency.
//
// What flows in: answers from MetaManager to the module's sync requests,
// and the hub's connection events on its bus queue (bus.ModuleNodeStatus):
// a new link starts a round at once, so the node is registered (or found
// registered) and Ready within a round trip of the link coming up.
// What flows out: nodestatus / node / nodepatch / lease messages with source
// edged and group meta, sent to bus.ModuleMeta.
//
// Goroutines: Node.Run runs one loop on the caller's goroutine and starts no
// others. Nothing is persisted here: meta keeps the node object the cloud
// returned, and the rest is rebuilt from /proc and the cloud on every start.
package nodestatus
