// Package stream is edgenode's EdgeStream: the client end of KubeEdge's
// stream tunnel, which carries kubectl logs, exec and attach and the
// kubelet's metrics paths (kubectl top, metrics-server) from cloudstream
// to the node (KubeEdge v1.23.1 edge/pkg/edgestream and pkg/stream).
//
// What it owns: the websocket to wss://<server>/v1/kubeedge/connect with
// the node certificate and the session headers SessionHostNameOverride
// (node name) and SessionInternalIP (node IP), the frame format, the
// keepalive pings, redials, and one request per connect message.
//
// In: frames from the cloud. LogsConnect and MetricConnect carry the
// request the API server or metrics-server made (Connect); the request is
// served by an http.Handler that main passes in (pod's kubelet paths), in
// process: no port is listened on. ExecConnect and AttachConnect are
// served the same way, but the handler's ResponseWriter is an
// http.Hijacker whose connection carries the raw bytes of the upgraded
// HTTP connection both ways (KubeEdge v1.23.1
// cloud/pkg/cloudstream/containerexec_connection.go): the cloud's Data is
// what the connection reads (at most 256 KiB queued per connection; the
// reader waits while it is full and drops a connection that stays full
// for 30 s), and what the handler writes goes out as Data. A response
// written without hijacking goes out as raw HTTP/1.1, since the API
// server reads HTTP there. RemoveConnect cancels a request (for exec and
// attach: the connection reads EOF); CloseConnect drops the tunnel.
//
// Out: the handler's response body (or, for exec and attach, the bytes
// of the connection) as Data frames, then RemoveConnect, always, also
// after errors, so no request is left hanging. The HTTP status is not
// carried by the tunnel for logs and metrics, so errors reach the user as
// body text. A connect message that cannot be served and a frame of an
// unknown type get RemoveConnect; Data and RemoveConnect for an id that
// is not served (any more) are dropped, as edgecore drops them: each
// request sends one RemoveConnect, when it ends.
//
// Goroutines: Run dials and reads in the caller's goroutine; per tunnel
// it starts a pinger and one goroutine per request (at most MaxConns),
// exec and attach included. All have exited when Run returns. Redials
// wait a capped, jittered backoff that starts again after a tunnel that
// stayed up; a cloud without cloudStream costs one log line, not one per
// dial. main starts Run only once the cloud has the node and this run's
// first status (cloudstream writes its port into the node object when the
// tunnel connects, and a status patch landing meanwhile makes that write
// fail for 20 s; nodestatus Node.Known).
//
// Persistence: none. Sub-package streamtest is an in-process cloudstream
// tunnel server for tests.
package stream
