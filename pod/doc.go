// Package pod is edgenode's Edged: it turns the v1.Pod objects that meta
// delivers into containers run by the OCI runtime binary (runc or crun),
// with no daemon and no resident helper process per container.
//
// In: pod, configmap and secret messages from meta on the bus (docs/protocol.md 2.5,
// 6), static pod manifests from a folder, image archives dropped in a
// folder or imported with "edgenode image import".
//
// Out: pod status to meta, as podstatus (v0.3) or podpatch (v1.23)
// messages, at most every 10 s per pod and only on change (docs/protocol.md 2.5);
// configmap, secret and serviceaccounttoken queries to meta (docs/protocol.md 9); and
// for a pod deleted in the API server (v1.23), once its containers have
// stopped, its final status and the final pod delete, retried until the
// cloud answers (terminate.go). Runner.Handler serves the kubelet paths
// /containerLogs, /exec, /attach, /metrics/resource and /stats/summary
// (serve.go, exec.go, stats.go) for main to hand to the stream module;
// exec and attach hijack the connection and speak the kubelet's SPDY
// remote command protocol (spdy.go).
//
// Persisted under the data dir: the image store (images/, package
// pod/image, which the runner and "edgenode image" share), pod bundles,
// volumes and logs (pods/<uid>/), the pod itself (pods/<uid>/pod.json,
// with its startTime and, while it is being deleted, its deletionTimestamp
// and the SIGKILL deadline in pods/<uid>/kill-at). runc keeps its own state under the
// runtime root. Containers are started detached, so they keep running when
// edgenode stops; edgenode makes itself a child subreaper to collect their
// exit codes while it runs, and adopts running containers at start (runc
// list) without restarting them.
//
// Container logs (relay.go, logread.go): a container's stdout and stderr
// are two FIFOs, pods/<uid>/io/<name>.stdout and .stderr, which the
// container holds open read-write (and a container with stdin: true reads
// pods/<uid>/io/<name>.stdin, which attach writes to). edgenode reads them, stamps each line
// and appends it in the CRI log format to pods/<uid>/logs/<name>.log,
// rotated by rename past LogMaxSize to .1 ... .LogMaxFiles; when the
// container starts again its last file becomes <name>.previous.log. While
// edgenode is down the output waits in the pipe (up to 1 MiB per stream,
// then the container blocks); the next edgenode reopens the FIFOs of the
// containers it adopts and reads on. Containers adopted from an edgenode
// that wrote plain logs keep appending to their file themselves until
// they end; such lines read as plain stdout lines.
//
// Exits (exit.go): the init process of each running container, started or
// adopted, is held by a pidfd, checked against runc's record of the
// container (pid and start time) so that a reused pid cannot pass for it.
// The pidfd becomes readable when the process exits, which wakes the pod's
// worker; the worker reaps it with Wait4 (our child: its exit code) or, for
// a container adopted from an earlier run, only sees that it ended (exit
// code unknown, 255). Without pidfds (a kernel before 5.3) exits are
// polled every 5 s.
//
// Goroutines: Run serves the bus queue (pods, configmaps, secrets) and runs
// one worker goroutine per pod, which pulls images, starts and restarts
// containers, runs probes and reports status (only when it changed). A
// worker sleeps until an event (a new spec, a configmap or secret, a
// container exit) or a time it asked for (a restart back-off, a probe's
// period, a retry), with a safety resync every SyncInterval (1 min); an
// idle pod costs nothing in between. Each running container has one
// goroutine blocked in the netpoller on its pidfd, and two relay
// goroutines while its output is open, asleep in the poller while the
// container is silent; a relay ends when the container's output closes
// (it exited) or Run's context ends. Run waits for every worker, relay and
// pidfd goroutine before it returns, and never for a grace period: nothing
// stops the containers themselves.
// An exec runs in the request's goroutine with a few copier goroutines
// and one runc exec process (in the foreground with pipes; with a tty,
// detached, handing the terminal over a console socket, after which the
// command is our child since we are the subreaper), all gone when the
// request returns; scratch files (pid file, runc log, console socket) live
// in a temporary directory under pods/<uid>/ that is removed with it.
//
// Sub-package image is the image store; podtest builds busybox test
// images and runs an in-process registry for the tests of this and other
// packages.
package pod
