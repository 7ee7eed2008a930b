// Package stream is edgenode's EdgeStream: the client end of KubeEdge's
// stream tunnel, which carries kubectl logs and the kubelet's metrics
// paths (kubectl top, metrics-server) from cloudstream to the node
// (spec kubeedge-stream sections 2 and 3; KubeEdge v1.23.1
// edge/pkg/edgestream and pkg/stream).
//
// What it owns: the websocket to wss://<server>/v1/kubeedge/connect with
// the node certificate and the session headers SessionHostNameOverride
// (node name) and SessionInternalIP (node IP), the frame format, the
// keepalive pings, redials, and one request per connect message.
//
// In: frames from the cloud. LogsConnect and MetricConnect carry the
// request the API server or metrics-server made (Connect); the request is
// served by an http.Handler that main passes in (pod's kubelet paths), in
// process: no port is listened on. Exec and attach are answered with an
// HTTP 501 response and RemoveConnect (not supported yet). RemoveConnect
// cancels a request; CloseConnect drops the tunnel.
//
// Out: the handler's response body as Data frames, then RemoveConnect,
// always, also after errors, so no request is left hanging. The HTTP
// status is not carried by the tunnel, so errors reach the user as body
// text (spec section 3). An unknown connection id gets RemoveConnect;
// Data for an unknown id is dropped; each RemoveConnect is answered.
//
// Goroutines: Run dials and reads in the caller's goroutine; per tunnel
// it starts a pinger and one goroutine per request (at most MaxConns). All have exited when Run returns. Redials wait a capped,
// jittered backoff that starts again after a tunnel that stayed up; a
// cloud without cloudStream costs one log line, not one per dial.
//
// Persistence: none. Sub-package streamtest is an in-process cloudstream
// tunnel server for tests.
package stream
