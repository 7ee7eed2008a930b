// Package hub is EdgeHub: the websocket link between the node and a
// KubeEdge CloudHub (docs/protocol.md section 2; KubeEdge v0.3.0
// docs/modules/edge/edgehub.md).
//
// What it owns: the URL and identity of the link, TLS and the node
// certificate (bootstrap with a join token, renewal), the keepalive, the
// detection of a dead link, reconnects, the rate limit of cloud-bound
// traffic, the offline queue, and routing in both directions.
//
// # Identity
//
// The link always goes to wss://<server>/<projectID>/<nodeName>/events and
// carries the headers node_id, project_id and ConnectionUse: msg, so one
// setting works with a v0.3 cloud (identity from the path) and a v1.23 cloud
// (identity from the headers) (docs/protocol.md 2.1, 2.4, 8 item 2). With a
// placement URL, the base URL is asked from it first.
//
// # Certificates
//
// The cloud is verified against the CA file unless insecureSkipVerify is set
// (logged at every connect). Without a valid node certificate (CN
// system:node:<nodeName>) and with a token, the client bootstraps
// (docs/protocol.md 2.4): GET /ca.crt, refuses a CA whose sha256 differs from
// the token's first part (ErrCAHashMismatch), makes an ECDSA P-256 key and CSR,
// has /edge.crt sign it with the token's JWT, and writes ca.crt, edge.key and
// edge.crt under <dataDir>/certs, each temp + fsync + rename. At a random point
// between 70 % and 90 % of the certificate's lifetime it renews with the
// current certificate and reconnects. When a dial fails because either side
// does not trust the other's certificate (a reinstalled cloud with a new CA)
// and a token is set, the node joins again with the token.
//
// # Dead links
//
// A KubeEdge cloud does not answer keepalives, so "nothing received for a
// while" alone cannot tell a quiet cloud from a dead one. The client uses
// three mechanisms:
//
//   - Probe (v1.23, Config.Probe "ping", the default there): with every
//     keepalive the client writes a viaduct ping, which the cloud's
//     viaduct layer answers with "ack" without passing it up (docs/protocol.md 2.4,
//     "Viaduct control messages"). A healthy cloud thus sends a frame at
//     least once a heartbeat, and a read deadline of two heartbeats,
//     set before every read, is safe: when it expires the link is
//     half-open (or the cloud hung) and the client reconnects
//     (ErrSilentLink, Stats.SilentLinks). KubeEdge issue #6965 reports
//     nodes NotReady for 15-20 minutes after such a flap.
//   - Write deadline: every frame, keepalives included, must be written
//     within writeDeadline.
//   - TCP_USER_TIMEOUT (Linux) of two heartbeats on the socket: when the
//     path loses packets, the unacknowledged keepalive makes the kernel
//     drop the connection after two heartbeats instead of the default
//     retransmission limit of 15-20 minutes.
//
// A v0.3 cloud answers nothing, not even pings, so with era v0.3 the
// probe defaults to "none": there is no read deadline, and only the
// write deadline and TCP_USER_TIMEOUT detect a dead link.
//
// # Routing
//
// Cloud -> edge (docs/protocol.md 2.1, 2.4): groups resource and func go to the
// SendSync waiter whose request the message answers (bus.IsWaiting of the
// parent id) or else to group meta; twin to group twin; user to the
// waiter or else group bus; other groups are dropped and counted. Viaduct
// control messages (ping, pong, config) are answered with "ack". A
// message may come as text or binary, in one frame or fragmented (CloudHub
// writes through a 4 KiB buffer, so longer messages always are); messages
// over maxFrameBytes and messages that are not valid are dropped and
// counted, and the link stays up.
//
// Edge -> cloud: every message sent to module "websocket" goes to the
// cloud as one text frame in the configured era, through a token bucket
// (messageQPS, messageBurst) that keepalives bypass. The reply to a sync
// request reaches the waiter through the bus; the bus's SendSync timeout
// bounds the wait. In v1.23 the sync flag is cleared on the wire, as the
// v1.23 websocket layer does (docs/protocol.md 1.3).
//
// Offline (beyond KubeEdge): while the link is down, statuses
// (podstatus, nodestatus, podpatch, nodepatch, lease updates) wait in a
// queue bounded by offlineQueue with one entry per resource: a newer
// status replaces the queued one and keeps its place. Twin edge_updated
// and device state reports wait in the same queue without coalescing:
// twin confirms each by its msg_id and resends unconfirmed ones (docs/protocol.md
// 5.6), so replacing one would bring the older back after the newer. On reconnect they go out at the rate limit, so an
// outage does not end in a flood of stale statuses (KubeEdge issue
// #3567). A sync request made while the link is down is answered at once
// with an error message; other messages are dropped and counted, since
// the cloud resends unacknowledged objects itself.
//
// Connection events: on connect and disconnect the groups meta, twin and
// bus, and then the board module, get node/connection with
// cloud_connected or cloud_disconnected (source edgehub, operation
// connect).
//
// # Goroutines and persistence
//
// New registers module "websocket" in group hub and starts nothing. Run
// runs the connect loop in its own goroutine plus, per link, a reader
// and a keepalive goroutine (and one for each dial); all have exited when
// Run returns. Reconnects wait a capped, jittered exponential backoff
// (backoffMin to backoffMax) that starts again from backoffMin after
// a link that stayed up for two heartbeats. Only the certificate files
// are persisted.
package hub
