// Package meta is MetaManager (docs/protocol.md 2.5, 3.2, 3.3; KubeEdge
// v0.3.0 docs/modules/edge/metamanager.md): the message processor between
// the pod runner (edged), the device twin and the cloud link (hub), and the
// keeper of table meta.
//
// What flows in, on the bus as module "metamanager" in group "meta":
//   - from the cloud (through the hub): insert, update and delete of pods,
//     configmaps, secrets, nodes and devices; responses to earlier
//     requests. Each is stored, handed on (pods, configmaps, secrets and
//     the like to edged; devices to twin, and v1beta1 devices and device
//     models also to dmi when it runs; node objects to nobody), and
//     acknowledged to the cloud with a "response" whose content is "OK"
//     and whose parent id is the cloud message's id (docs/protocol.md 2.5, 8 item 4,
//     9). A response from the cloud is acknowledged the same way.
//   - from edge modules (edged, board): pod and node status (podstatus and
//     nodestatus updates of v0.3, podpatch and nodepatch of v1.23), node
//     and lease inserts, queries. Statuses are stored and handed to the
//     hub, also while the cloud is away (the hub queues them); a status
//     byte-identical to the stored one is not sent again. Node and lease
//     inserts, lease updates and patches are "remote" operations: meta
//     sends them to the hub with SendSync (timeout Config.RemoteQueryTimeout),
//     stores the object of the cloud's {"Object","Err"} answer, hands the
//     answer to the asker with the asker's request id as parent, and
//     acknowledges the answer to the cloud. Without a cloud they fail with
//     "failed to process remote: not connected" (patches are still stored
//     and handed to the hub). edged's pod delete (the pod has terminated:
//     delete it in the API server, content DeleteOptions with the pod's
//     uid as precondition) is one too; when the cloud answers "OK" the
//     pod's rows of that uid are deleted.
//   - queries: answered from the store as a JSON array of JSON-encoded
//     strings (one per row; a list query "<ns>/<type>" returns every row
//     of that type in all namespaces). While connected, a query for a
//     configmap, secret, service account token, lease or the other kinds
//     of docs/protocol.md 3.3 asks the cloud first (v1.23; in v0.3 only configmaps
//     and secrets missing locally do), stores the answer and returns the
//     cloud's answer; if the cloud does not answer in time a stored row
//     is returned instead, so the node keeps working from its store.
//   - node/connection events from the hub (operation connect, or publish
//     as in v0.3): meta remembers whether the cloud is there.
//   - meta-internal-sync: send every stored podstatus to the cloud in one
//     "<ns>/podstatus" update, source metaManager (v0.3 resync, docs/protocol.md 2.5),
//     deleting the statuses of pods no longer stored. With era v0.3 a timer
//     does this every Config.PodStatusSyncInterval (at least 60 s) while
//     connected; v1.23 removed the resync, so with era v1.23 only an
//     explicit meta-internal-sync message triggers it.
//
// A cloud insert, update, delete or response of a resource type meta has
// no rules for (devicemodel, or a kind KubeEdge adds later) is stored under
// its path with the type token as type, handed on (to twin when the
// device controller sent it, else to edged) and acknowledged "OK", as
// KubeEdge's metamanager does: cloudcore resends anything not ACKed.
//
// Bad input (content that is not JSON or not the shape its resource
// needs, e.g. a configmap whose data is not an object of strings, an
// unknown resource type from an edge module or in a query, a malformed
// resource path or one with an empty, "." or ".." token or a byte outside
// printable ASCII, an unknown operation) is answered with an "error"
// message and changes nothing stored: to the hub for cloud messages, else
// to the sending module. An edge module hears answers only when it asks
// for them: a request sent with SendSync is answered (with SendResp: "OK",
// the cloud's answer or an error), an asynchronous query on the asker's
// queue, and an asynchronous report (edged's periodic pod statuses) not at
// all, errors included, since nothing would read the answer. An asker
// whose SendSync timed out before the cloud answered gets nothing (the
// answer is still stored and acknowledged).
//
// Bus rule, followed by every module: New registers the module on the bus
// (AddModule with its name and group) and starts nothing; Run receives
// from the module's queue until ctx ends, then waits for its goroutines
// and returns nil. Meta never blocks the bus: it only uses Send (errors
// are logged, rate-limited, and counted in Stats) and SendSync from its
// own goroutines.
//
// Goroutines: Run's loop, plus one per remote operation in flight (at most
// Config.MaxRemote; more are answered with an error). Persistence: table
// meta, through package db.
package meta
