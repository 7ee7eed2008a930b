package nodestatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/board"
	"edgenode/bus"
)

// Errors of node status reporting.
var (
	// ErrRejected is an "error" answer from MetaManager (e.g. "not
	// connected") or a response whose Err is not a known status.
	ErrRejected = errors.New("nodestatus: request rejected")
	// ErrNotFound and ErrAlreadyExists are Kubernetes status reasons in
	// the cloud's {"Object","Err"} answer (KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go).
	ErrNotFound      = errors.New("nodestatus: not found")
	ErrAlreadyExists = errors.New("nodestatus: already exists")
	// ErrBadResponse is a response whose content is not JSON of the
	// expected shape.
	ErrBadResponse = errors.New("nodestatus: bad response")
)

// Fixed protocol values.
const (
	// NodeStatusUID is the node UID the v0.3 edge hard-codes in every
	// nodestatus message (KubeEdge v0.3.0 edge/pkg/edged/edged.go).
	NodeStatusUID = "38796d14-1df3-11e8-8e5a-286ed488f209"
	// LeaseNamespace holds node leases.
	LeaseNamespace = "kube-node-lease"
)

// Config configures node status. Zero fields get the defaults noted.
// NodeName, Era and DataDir come from the top level of edgenode's config.
type Config struct {
	NodeName string  `yaml:"-"`
	Era      bus.Era `yaml:"-"`
	DataDir  string  `yaml:"-"`

	// Namespace is v0.3's edged.register-node-namespace, used in the
	// nodestatus resource (KubeEdge v0.3.0 edge/pkg/edged/edged.go).
	// Default "default".
	Namespace string `yaml:"namespace"`
	// Interface names the interface whose address is the InternalIP.
	// Default: the first non-loopback interface that is up (v0.3's
	// edged.interface-name, KubeEdge v0.3.0 edge/pkg/edged/edged.go).
	Interface string `yaml:"interface"`
	// MaxPods is the pods capacity. Default 110, the kubelet's.
	MaxPods int `yaml:"maxPods"`
	// ReservedCPU (millicores) and ReservedMemory (bytes) are taken off
	// capacity to give allocatable, for the system and edgenode itself.
	ReservedCPU    int    `yaml:"reservedCPU"`
	ReservedMemory uint64 `yaml:"reservedMemory"`
	// Thresholds of the pressure conditions.
	Thresholds Thresholds `yaml:"thresholds"`
	// UpdateFrequency is the status and lease period. Default 10 s
	// (edged's node-status-update-frequency, the kubelet's
	// NodeStatusUpdateFrequency).
	UpdateFrequency time.Duration `yaml:"updateFrequency"`
	// ReportFrequency is the longest gap between two v1.23 nodepatches
	// when nothing changed. Default 5 min (NodeStatusReportFrequency).
	ReportFrequency time.Duration `yaml:"reportFrequency"`
	// LeaseDuration is the lease's leaseDurationSeconds. Default 40 s,
	// the kubelet's.
	LeaseDuration time.Duration `yaml:"leaseDuration"`
	// SyncTimeout bounds each request to MetaManager. Default 10 s.
	SyncTimeout time.Duration `yaml:"syncTimeout"`
	// RuntimeCheck is how often the runc version and the facts that
	// rarely change (CPU, OS image, ids) are read again. Default 5 min.
	RuntimeCheck time.Duration `yaml:"runtimeCheck"`
	// KubeletVersion is reported in nodeInfo. The default has KubeEdge's
	// "<kubernetes>-kubeedge-<release>" shape for the era, with the
	// kubelet version that release vendors (KubeEdge v1.23.1 go.mod:
	// k8s.io/kubernetes v1.32.10).
	KubeletVersion string `yaml:"kubeletVersion"`
	// KubeletPort is daemonEndpoints.kubeletEndpoint.Port: the pod
	// module's read-only port, 10350 (v1.23, KubeEdge v1.23.1
	// common/constants/default.go ServerPort) or 10255 (v0.3).
	KubeletPort int `yaml:"kubeletPort"`
	// Labels are added to the node's labels at registration (v1.23).
	Labels map[string]string `yaml:"labels"`
}

// Defaults returns c with zero fields filled.
func (c Config) Defaults() Config {
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	c.Thresholds.defaults()
	if c.UpdateFrequency == 0 {
		c.UpdateFrequency = 10 * time.Second
	}
	if c.ReportFrequency == 0 {
		c.ReportFrequency = 5 * time.Minute
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 40 * time.Second
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 10 * time.Second
	}
	if c.RuntimeCheck == 0 {
		c.RuntimeCheck = 5 * time.Minute
	}
	if c.KubeletVersion == "" {
		c.KubeletVersion = "v1.32.10-kubeedge-v1.23.1"
		if c.Era == bus.EraV03 {
			c.KubeletVersion = "v1.10.9-kubeedge-v0.3.0"
		}
	}
	if c.KubeletPort == 0 {
		c.KubeletPort = 10350
		if c.Era == bus.EraV03 {
			c.KubeletPort = 10255
		}
	}
	return c
}

// Validate returns every problem of c (after Defaults).
func (c Config) Validate() []error {
	var errs []error
	if c.MaxPods < 0 {
		errs = append(errs, fmt.Errorf("board.maxPods: %d is negative", c.MaxPods))
	}
	if c.ReservedCPU < 0 {
		errs = append(errs, fmt.Errorf("board.reservedCPU: %d is negative", c.ReservedCPU))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"diskFreePercent", c.Thresholds.DiskFreePercent}, {"inodesFreePercent", c.Thresholds.InodesFreePercent},
		{"pidsFreePercent", c.Thresholds.PIDsFreePercent}} {
		if p.v < 0 || p.v > 100 {
			errs = append(errs, fmt.Errorf("board.thresholds.%s: %d is not 0-100", p.name, p.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"updateFrequency", c.UpdateFrequency}, {"reportFrequency", c.ReportFrequency}, {"leaseDuration", c.LeaseDuration},
		{"syncTimeout", c.SyncTimeout}, {"runtimeCheck", c.RuntimeCheck}} {
		if d.v < time.Second {
			errs = append(errs, fmt.Errorf("board.%s: %v is shorter than 1s", d.name, d.v))
		}
	}
	return errs
}

// Host is where a Node reads its facts. Zero fields read the real host.
type Host struct {
	FS         fs.FS                              // root file system; default os.DirFS("/")
	Uname      func() (board.Uname, error)        // default board.HostUname
	Interfaces func() ([]board.IfaceAddrs, error) // default board.Interfaces
	StatDisk   func(string) (board.Disk, error)   // default board.StatDisk
	// IPv4 checks one interface's address; default board.InterfaceIPv4.
	IPv4 func(name string) (net.IP, bool, error)
	// Runtime returns runc's version; default board.RuncVersion("runc").
	Runtime func(context.Context) (string, error)
	// Unhealthy lists modules that are not healthy; default none.
	Unhealthy func() []string
	// Connected reports whether the hub has a link to the cloud; default
	// always. While it says no, the periodic rounds are skipped: the
	// status and lease could not reach the cloud, and the hub's connect
	// event starts a round when the link is back.
	Connected func() bool
}

func (h Host) defaults() Host {
	if h.FS == nil {
		h.FS = os.DirFS("/")
	}
	if h.Uname == nil {
		h.Uname = board.HostUname
	}
	if h.Interfaces == nil {
		h.Interfaces = board.Interfaces
	}
	if h.StatDisk == nil {
		h.StatDisk = board.StatDisk
	}
	if h.IPv4 == nil {
		h.IPv4 = board.InterfaceIPv4
	}
	if h.Runtime == nil {
		h.Runtime = func(ctx context.Context) (string, error) { return board.RuncVersion(ctx, "runc") }
	}
	if h.Unhealthy == nil {
		h.Unhealthy = func() []string { return nil }
	}
	if h.Connected == nil {
		h.Connected = func() bool { return true }
	}
	return h
}

// Stats are the node status counters, for metrics.
type Stats struct {
	StatusSent, StatusFailed  uint64 // nodestatus / node insert / nodepatch
	LeaseRenewed, LeaseFailed uint64
	Registered                bool // v1.23: the node insert succeeded
}

// Node reports the node's status to the cloud through MetaManager. Create
// it with New; Run does the work.
type Node struct {
	cfg  Config
	b    *bus.Bus
	log  *slog.Logger
	host Host

	// Owned by Run's goroutine.
	last       *NodeStatus // last status sent (or built, in v0.3)
	lastKey    statusKey   // what last was built from
	lastSent   time.Time
	nodeUID    string
	created    bool // this run created the node, so it has no lease yet
	gone       bool // the cloud said NotFound to a patch: insert again
	lease      *Lease
	leaseRes   string // the lease's resource, made once
	runtime    string
	runtimeAt  time.Time
	facts      board.Facts // collected at factsAt, refreshed every round
	factsAt    time.Time
	ifName     string // the interface that holds ip, the InternalIP
	ip         net.IP
	warnedOnce map[string]bool

	sent, failed, leaseOK, leaseFailed atomic.Uint64
	registered                         atomic.Bool
	internalIP                         atomic.Pointer[string] // as last picked
	known                              chan struct{}          // closed once the cloud has the node
	knownOnce                          sync.Once
}

// New registers the node status module on b; it starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger, host Host) (*Node, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.Defaults()
	if err := errors.Join(cfg.Validate()...); err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		return nil, errors.New("nodestatus: node name is empty")
	}
	if err := b.AddModule(bus.ModuleNodeStatus, ""); err != nil {
		return nil, fmt.Errorf("nodestatus: %w", err)
	}
	return &Node{cfg: cfg, b: b, log: log, host: host.defaults(), warnedOnce: map[string]bool{}, known: make(chan struct{}),
		leaseRes: bus.ResourcePath(LeaseNamespace, bus.KindLease, cfg.NodeName)}, nil
}

// Known is closed once the cloud has the node with this run's first
// status: the node inserted with it or patched with it (v1.23), or the
// first status delivered (v0.3). Whatever must find the node object in
// the cloud waits for it: cloudstream writes its port into the node when
// the stream tunnel connects, and finds nothing to write to before. It
// also waits for the patch: cloudstream reads the node and writes it back
// whole (KubeEdge v1.23.1 cloud/pkg/cloudstream/tunnelserver.go,
// updateNodeKubeletEndpoint), and a patch of ours that lands in between
// makes that write fail with a conflict, which it tries again only 20 s
// later; until then it serves no kubectl logs or exec for the node.
// Checked against a real cloudcore, whose log showed the conflict at
// every start of a node registered before. A patch refused because the
// hub is not connected yet does not count: the round that the connection
// starts sends it again, and that one lands.
func (n *Node) Known() <-chan struct{} { return n.known }

// InternalIP returns the InternalIP the node reported last, "" before the
// first status or while it has none. The stream tunnel sends it at every
// dial; asking the board there instead cost a netlink dump of every link
// and address a dial.
func (n *Node) InternalIP() string {
	if p := n.internalIP.Load(); p != nil {
		return *p
	}
	return ""
}

func (n *Node) setRegistered() { n.registered.Store(true) }

func (n *Node) setKnown() { n.knownOnce.Do(func() { close(n.known) }) }

// Stats returns the counters. It is safe to call while Run runs.
func (n *Node) Stats() Stats {
	return Stats{StatusSent: n.sent.Load(), StatusFailed: n.failed.Load(),
		LeaseRenewed: n.leaseOK.Load(), LeaseFailed: n.leaseFailed.Load(), Registered: n.registered.Load()}
}

// offlineCheck is how often Run looks whether the cloud is back when the
// hub's connect event did not come.
const offlineCheck = time.Minute

// Run sends the node status every UpdateFrequency, starting at once, until
// ctx ends. When the hub reports a new link to the cloud a round runs at
// once and the period starts again; other messages that reach its queue are
// discarded. While the cloud is away (Host.Connected), or when none is
// configured, there are no periodic rounds: they would only fail, and cost
// a board's slow CPU a store read and a status build every period. It
// then checks the link once a minute.
func (n *Node) Run(ctx context.Context) error {
	t := time.NewTicker(n.cfg.UpdateFrequency)
	defer t.Stop()
	q := n.b.Queue(bus.ModuleNodeStatus)
	n.round(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.Ready():
			m, ok := q.Next()
			if !ok {
				continue
			}
			if s, _ := bus.ContentString(m.Content); m.Route.Resource == bus.ResNodeConnection && s == bus.CloudConnected {
				n.lease = nil // the cloud may have restarted: read the lease again
				n.round(ctx)
				t.Reset(n.cfg.UpdateFrequency)
				continue
			}
			n.log.Debug("ignoring message", "op", m.Route.Operation, "resource", m.Route.Resource)
		case <-t.C:
			if n.host.Connected() {
				n.round(ctx)
				t.Reset(n.cfg.UpdateFrequency)
				continue
			}
			// Offline: look again only now and then (a timer that fires is
			// a wake-up of the whole runtime on a board); the connect
			// event comes first anyway.
			t.Reset(max(n.cfg.UpdateFrequency, offlineCheck))
		}
	}
}

// round builds the status once and sends it in the era's shape. In v1.23
// a round whose status would be the one the cloud has, within
// ReportFrequency, builds none: it only renews the lease.
func (n *Node) round(ctx context.Context) {
	now := time.Now()
	in := n.inputs(ctx, now)
	if n.cfg.Era == bus.EraV03 {
		st := BuildStatus(n.cfg, in, n.last, now)
		n.sendV03(ctx, &st)
		return
	}
	key := keyOf(n.cfg, in)
	if !n.registered.Load() || n.last == nil || key != n.lastKey || now.Sub(n.lastSent) >= n.cfg.ReportFrequency {
		st := BuildStatus(n.cfg, in, n.last, now)
		if n.sendV123(ctx, &st, now) {
			n.lastKey = key
		}
	}
	n.renewLease(ctx, now)
}

// inputs gathers this round's facts. Failures degrade the status (no
// address, no disk) and are logged once per kind.
func (n *Node) inputs(ctx context.Context, now time.Time) Inputs {
	var in Inputs
	var err error
	full := n.factsAt.IsZero() || now.Sub(n.factsAt) >= n.cfg.RuntimeCheck
	if full {
		// All facts now and then; memory and tasks every round.
		var u board.Uname
		u, err = n.host.Uname()
		n.warn("uname", err)
		n.facts, err = board.Collect(n.host.FS, u)
		if err == nil {
			n.factsAt = now // after a failure, all are read again next round
		}
	} else {
		err = board.Refresh(n.host.FS, &n.facts)
	}
	n.warn("facts", err)
	in.Facts = n.facts
	if n.cfg.DataDir != "" {
		in.Facts.Disk, err = n.host.StatDisk(n.cfg.DataDir)
		n.warn("disk", err)
	}
	in.IP = n.address(full)
	if n.runtime == "" || now.Sub(n.runtimeAt) >= n.cfg.RuntimeCheck {
		n.runtime, err = n.host.Runtime(ctx)
		n.runtimeAt = now
		n.warn("runtime", err)
	}
	in.Runtime = n.runtime
	in.Unhealthy = n.host.Unhealthy()
	return in
}

// address returns the node's InternalIP. The interfaces are listed in full
// (a netlink dump of every address) with the other facts, or when the
// picked interface is down or no longer has the picked IPv4 address; in
// between, two ioctls on that interface confirm it.
func (n *Node) address(full bool) net.IP {
	if !full && n.ifName != "" && n.ip.To4() != nil {
		if ip, up, err := n.host.IPv4(n.ifName); err == nil && up && ip.Equal(n.ip) {
			return n.ip
		}
	}
	n.ifName, n.ip = "", nil
	ifs, err := n.host.Interfaces()
	if err == nil {
		n.ip, err = board.PickAddress(ifs, n.cfg.Interface)
	}
	n.warn("address", err)
	for _, ifc := range ifs {
		if slices.ContainsFunc(ifc.Addrs, n.ip.Equal) {
			n.ifName = ifc.Name
			break
		}
	}
	s := ""
	if n.ip != nil {
		s = n.ip.String()
	}
	if p := n.internalIP.Load(); p == nil || *p != s {
		n.internalIP.Store(&s)
	}
	return n.ip
}

// warn logs err the first time a kind of failure happens, and again after
// it has cleared once.
func (n *Node) warn(kind string, err error) {
	if err == nil {
		delete(n.warnedOnce, kind)
		return
	}
	if !n.warnedOnce[kind] {
		n.warnedOnce[kind] = true
		n.log.Warn("node fact unavailable (logged once until it recovers)", "fact", kind, "err", err)
	}
}

// sendV03 sends the v0.3 nodestatus update (KubeEdge v0.3.0 edge/pkg/edged/edged_status.go). It goes out every
// round whether or not it changed: in v0.3 it is the node's only heartbeat,
// and its first delivery is the registration. The edge treats errors as
// success, so only the counter moves.
func (n *Node) sendV03(ctx context.Context, st *NodeStatus) {
	n.last = st
	content, err := json.Marshal(struct {
		UID             string
		Status          *NodeStatus
		ExtendResources any
	}{NodeStatusUID, st, nil})
	if err != nil {
		panic("nodestatus: marshal node status: " + err.Error()) // only plain types: a programmer error
	}
	res := bus.ResourcePath(n.cfg.Namespace, bus.KindNodeStatus, n.cfg.NodeName)
	if _, err := n.request(ctx, bus.OpUpdate, res, content); err != nil {
		n.failed.Add(1)
		n.log.Debug("nodestatus not delivered", "err", err)
		return
	}
	n.sent.Add(1)
	n.setKnown()
}
