package twin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/bus"
	"edgenode/db"
)

// Config configures the twin module; its tagged fields are the twin
// section of the config file. The zero value of each field gives its
// default. NodeName, Era and DataDir are set by main from the top level.
type Config struct {
	// NodeName is the node id in membership topics and the detail request.
	NodeName string `yaml:"-"`
	// Era picks the payload shapes that differ between KubeEdge releases
	// (docs/protocol.md 8): last_online vs lastOnlineTime, device/<id>/state
	// vs device/<id>/state/update, omitted vs always-present keys, the
	// state values accepted, the case of error texts.
	Era bus.Era `yaml:"-"`
	// EraOverride, the file's twin.era ("v1.23" or "v0.3"), replaces Era
	// for the device payloads when set; Defaults applies it.
	EraOverride string `yaml:"era,omitempty"`
	// DataDir is the node's data dir, home of the default DevicesDir.
	DataDir string `yaml:"-"`
	// DevicesDir holds local device files (*.json, membership update
	// shape) applied at start. Default <DataDir>/devices (none without a
	// DataDir); DevicesOff turns them off.
	DevicesDir string `yaml:"devicesDir,omitempty"`
	// QueueLen is each worker's inbox length. Default DefaultQueueLen.
	QueueLen int `yaml:"queueLen,omitempty"`
	// MaxPayload is the largest MQTT payload handled. Default 64 KiB.
	MaxPayload int `yaml:"maxPayload,omitempty"`
	// ClientShare is how many MQTT requests of one client may be queued
	// at once (the fair share of the twin path); more are answered with a
	// 503 error result. Default QueueLen/4.
	ClientShare int `yaml:"-"`
	// Share, if set, is the fair share the sender of the MQTT requests
	// (the eventbus) takes before it sends one; twin releases it. nil:
	// twin takes it itself, when the request arrives.
	Share *bus.Share `yaml:"-"`
	// Subscribed reports whether any MQTT client subscribes to topic; the
	// document and delta of a twin change are published only then. nil
	// means always (a broker that cannot tell).
	Subscribed func(topic string) bool `yaml:"-"`
	// Publish, if set, publishes payload on topic at once, on the
	// caller's goroutine (the eventbus's EventBus.Publish); nil sends a
	// publish message to the eventbus, whose loop publishes it.
	Publish func(topic string, payload []byte) error `yaml:"-"`
	// MaxPending bounds the cloud-bound messages awaiting confirmation.
	// Default 1024.
	MaxPending int `yaml:"-"`
	// HealthInterval and HealthTimeout drive the health check
	// (docs/protocol.md 5.5). Defaults 60 s and 120 s.
	HealthInterval time.Duration `yaml:"-"`
	HealthTimeout  time.Duration `yaml:"-"`
	// ResendInterval is how long the communication worker waits with no
	// input before it resends unconfirmed messages (docs/protocol.md 5.6).
	// Default 60 s.
	ResendInterval time.Duration `yaml:"-"`
	// WriteRetries and RetryDelay govern SQLite writes (docs/protocol.md
	// 5.3). Defaults 5 and 1 s.
	WriteRetries int           `yaml:"-"`
	RetryDelay   time.Duration `yaml:"-"`
}

// DevicesOff as Config.DevicesDir turns the local device files off.
const DevicesOff = "none"

// DefaultQueueLen is Config.QueueLen's default.
const DefaultQueueLen = 256

// Defaults returns c with its zero fields filled and EraOverride, when
// valid, applied to Era. DevicesDir stays as given; New resolves it.
func (c Config) Defaults() Config {
	if e, err := bus.ParseEra(c.EraOverride); c.EraOverride != "" && err == nil {
		c.Era = e
	}
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.ClientShare <= 0 {
		c.ClientShare = max(1, c.QueueLen/4)
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 64 << 10
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 1024
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 60 * time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 120 * time.Second
	}
	if c.ResendInterval <= 0 {
		c.ResendInterval = 60 * time.Second
	}
	if c.WriteRetries <= 0 {
		c.WriteRetries = 5
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
	return c
}

// Validate returns every problem of c at once, each naming its key as
// spelled in the config file under "twin.".
func (c Config) Validate() []error {
	var errs []error
	if c.EraOverride != "" {
		if _, err := bus.ParseEra(c.EraOverride); err != nil {
			errs = append(errs, fmt.Errorf("twin.era: %w", err))
		}
	}
	if c.DevicesDir != "" && c.DevicesDir != DevicesOff && !filepath.IsAbs(c.DevicesDir) {
		errs = append(errs, fmt.Errorf("twin.devicesDir: %q must be an absolute path", c.DevicesDir))
	}
	if c.QueueLen < 0 || c.MaxPayload < 0 {
		errs = append(errs, errors.New("twin.queueLen and twin.maxPayload must not be negative"))
	}
	return errs
}

// devicesDir is the folder of local device files, "" for none.
func (c Config) devicesDir() string {
	switch c.DevicesDir {
	case DevicesOff:
		return ""
	case "":
		if c.DataDir == "" {
			return ""
		}
		return filepath.Join(c.DataDir, "devices")
	}
	return c.DevicesDir
}

// Stats are the module's counters.
type Stats struct {
	Dropped      uint64 // input dropped: unreadable with no result topic, unknown, or a full worker queue
	Overloaded   uint64 // MQTT requests answered 503: over their client's share or a full worker queue
	Errors       uint64 // error results published
	CloudDropped uint64 // cloud-bound messages dropped (disconnected, full)
	Resent       uint64 // cloud-bound messages sent again
	Published    uint64 // MQTT publishes handed to the eventbus
	PublishFails uint64 // publishes the bus refused (eventbus queue full)
	Stalls       uint64 // times the health check found a worker stuck
	Commits      uint64 // transactions of twin updates committed
	Committed    uint64 // twin update requests in them (Committed/Commits: the group commit's batch)
}

type stats struct {
	dropped, errors, cloudDropped, resent, published, publishFails atomic.Uint64
	overloaded, commits, committed                                 atomic.Uint64
}

// Twin is the DeviceTwin module. Create it with New; Run serves it.
type Twin struct {
	cfg         Config
	bus         *bus.Bus
	store       *store
	log         *slog.Logger
	stats       stats
	comm        *comm
	share       *bus.Share
	senderTakes bool

	mem, twin, dev, com *worker

	// now and newID are replaced by tests for exact payload bytes.
	now   func() time.Time
	newID func() string
	// yield gives way to the other goroutines before a batch of twin
	// updates is committed (twinUpdates); tests replace it.
	yield func()
	// scratch holds *[]byte buffers publish encodes into before it copies
	// the payload out at its size.
	scratch sync.Pool
	jobs    jobPool // the jobs of the workers' inboxes
	// batchJobs and batchUps are twinUpdates' slices, kept for the next
	// batch; only the twin worker uses them.
	batchJobs []*job
	batchUps  []update

	mu      sync.Mutex
	running bool
}

// New returns the module and registers it on b as ModuleTwin in GroupTwin.
// It starts nothing and reads nothing; Run loads the device tables.
func New(cfg Config, b *bus.Bus, d *db.DB, log *slog.Logger) (*Twin, error) {
	cfg = cfg.Defaults()
	if cfg.NodeName == "" {
		return nil, errors.New("twin: new: empty node name")
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("twin: new: %w", errors.Join(errs...))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Twin{cfg: cfg, bus: b, log: log, now: time.Now, newID: func() string { return bus.NewID().String() }, yield: runtime.Gosched,
		store: &store{db: d, retries: cfg.WriteRetries, delay: cfg.RetryDelay, devices: map[string]*deviceState{}}}
	t.comm = &comm{t: t, pending: map[bus.ID]pendingMsg{}, reports: map[string]reportSlot{}, confirmed: map[string]map[string]struct{}{}}
	t.share, t.senderTakes = cfg.Share, cfg.Share != nil
	if t.share == nil {
		t.share = bus.NewShare(cfg.ClientShare)
	}
	t.mem = newWorker("membership", cfg.QueueLen, t.handleMembership)
	t.twin = newWorker("twin", cfg.QueueLen, t.handleTwin)
	t.dev = newWorker("device", cfg.QueueLen, t.handleDevice)
	t.com = newWorker("communication", cfg.QueueLen, t.comm.handle)
	for _, w := range []*worker{t.mem, t.twin, t.dev, t.com} {
		w.jobs = &t.jobs
	}
	t.com.idle, t.com.onIdle = cfg.ResendInterval, t.comm.resend
	if err := b.AddModule(bus.ModuleTwin, bus.GroupTwin); err != nil {
		return nil, fmt.Errorf("twin: new: %w", err)
	}
	return t, nil
}

// Stats returns the module's counters.
func (t *Twin) Stats() Stats {
	var r uint64
	for _, w := range []*worker{t.mem, t.twin, t.dev, t.com} {
		r += w.stalls.Load()
	}
	return Stats{Dropped: t.stats.dropped.Load(), Overloaded: t.stats.overloaded.Load(), Errors: t.stats.errors.Load(),
		CloudDropped: t.stats.cloudDropped.Load(), Resent: t.stats.resent.Load(),
		Published: t.stats.published.Load(), PublishFails: t.stats.publishFails.Load(), Stalls: r,
		Commits: t.stats.commits.Load(), Committed: t.stats.committed.Load()}
}

// Run loads the devices from SQLite, applies the local device files, then
// serves the module's bus queue with the four workers and the health check
// until ctx ends. It returns after every goroutine it started has exited.
func (t *Twin) Run(ctx context.Context) error {
	t.mu.Lock()
	if t.running {
		t.mu.Unlock()
		return errors.New("twin: run: already running")
	}
	t.running = true
	t.mu.Unlock()
	w, err := t.store.db.DeviceWriter(ctx)
	if err != nil {
		return fmt.Errorf("twin: run: %w", err)
	}
	defer w.Close()
	t.store.w = w
	if err := t.store.load(ctx); err != nil {
		return err
	}
	if err := t.applyLocal(ctx); err != nil {
		return err
	}
	sup := &supervisor{workers: []*worker{t.mem, t.twin, t.dev, t.com},
		interval: t.cfg.HealthInterval, timeout: t.cfg.HealthTimeout, log: t.log}
	var wg sync.WaitGroup
	wg.Go(func() { sup.run(ctx) })
	defer wg.Wait()
	q := t.bus.Queue(bus.ModuleTwin)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.Ready():
			if msg, ok := q.Next(); ok {
				t.dispatch(msg)
			}
		}
	}
}

// dispatch classifies a bus message and queues it for its worker
// (docs/protocol.md 5.1). It never blocks: a full worker inbox drops the
// message.
func (t *Twin) dispatch(msg bus.Message) {
	if !msg.Header.ParentID.IsZero() {
		// Parent-id quirk (docs/protocol.md 5.1): v1.23.1 treats the message
		// only as a confirmation, v0.3.0 also classifies it.
		t.queue(t.com, job{act: actConfirm, msg: msg})
		if t.cfg.Era != bus.EraV03 {
			return
		}
	}
	j, w := t.classify(msg)
	if w == nil {
		t.stats.dropped.Add(1)
		t.log.Debug("dropped message", "source", msg.Route.Source, "resource", msg.Route.Resource, "op", msg.Route.Operation)
		return
	}
	if fromMQTT(&j) {
		t.dispatchShared(w, j)
		return
	}
	t.queue(w, j)
}

func (t *Twin) queue(w *worker, j job) {
	if !t.offer(w, j) {
		t.stats.dropped.Add(1)
		t.log.Debug("worker queue full", "worker", w.name, "action", j.act)
	}
}

// offer puts j, in a job from the pool, in w's inbox unless the inbox is
// full, and reports whether it did.
func (t *Twin) offer(w *worker, j job) bool {
	p := t.jobs.get(j)
	select {
	case w.inbox <- p:
		return true
	default:
		t.jobs.put(p)
		return false
	}
}

// classify picks the action and worker of a message (docs/protocol.md 5.1).
func (t *Twin) classify(msg bus.Message) (job, *worker) {
	j := job{msg: msg}
	r := msg.Route
	switch {
	case r.Source == bus.ModuleBusSrc:
		// The topic and payload as the broker got them (mqtt.Ingress).
		j.topic = r.Resource
		j.act, j.id, j.err = classifyTopic(j.topic)
		if j.act == actNone || j.act == actStateGet {
			return j, nil
		}
		j.payload = msg.Content
	case r.Source == bus.ModuleEdgeHub && r.Resource == bus.ResNodeConnection:
		j.act = actLifeCycle
	case r.Source.IsDeviceController() || r.Source == bus.ModuleTest:
		j.payload = bus.ContentBytes(msg.Content)
		// The membership resources are matched as KubeEdge does, by what
		// they contain; a device resource comes split (bus.Resource).
		res, dev := r.Resource, msg.Res
		isDevice := dev.Kind == bus.KindDevice && dev.Namespace == ""
		switch {
		case strings.Contains(res, bus.ResMembershipDetail):
			j.act = actMemDetail
		case strings.Contains(res, bus.ResMembership):
			j.act = actMemUpdated
		case isDevice && dev.Rest == bus.ResTwinCloudUpdated:
			j.act, j.id = actTwinCloudSync, dev.Name
		case strings.Contains(res, bus.ResTwinCloudUpdated):
			return j, nil // not device/<id>/twin/cloud_updated
		case isDevice && dev.Rest == "" && strings.Contains(string(r.Operation), string(bus.OpUpdated)):
			j.act, j.id = actDeviceUpdated, dev.Name
		default:
			return j, nil
		}
	default:
		return j, nil
	}
	if j.err == nil && j.id != "" && j.act != actMemGet {
		j.err = checkID(j.id, 2)
	}
	switch j.act {
	case actMemGet, actMemUpdated, actMemDetail:
		return j, t.mem
	case actTwinUpdate, actTwinGet, actTwinCloudSync:
		return j, t.twin
	case actStateUpdate, actDeviceUpdated:
		return j, t.dev
	case actLifeCycle:
		return j, t.com
	}
	return j, nil
}

func (t *Twin) nowMS() int64 { return t.now().UnixMilli() }

// subscribed reports whether a client would receive a publish on topic.
func (t *Twin) subscribed(topic string) bool {
	return t.cfg.Subscribed == nil || t.cfg.Subscribed(topic)
}

// maxScratch bounds the encoding buffers Twin keeps (scratch): one that
// grew past it, for a large document, is dropped.
const maxScratch = 16 << 10

// publish encodes v and hands it to the eventbus for topic (docs/protocol.md
// 4.3: content is the payload bytes).
func (t *Twin) publish(topic string, v any) {
	var b []byte
	var err error
	if a, ok := v.(jsonAppender); ok {
		// Encoded into a pooled scratch buffer and copied out at its
		// size: a result is about 250 bytes, and the eventbus keeps b.
		sp, _ := t.scratch.Get().(*[]byte)
		if sp == nil {
			sp = new([]byte)
		}
		*sp = a.appendJSON((*sp)[:0])
		b = bytes.Clone(*sp)
		if cap(*sp) <= maxScratch {
			t.scratch.Put(sp)
		}
	} else if b, err = json.Marshal(v); err != nil {
		t.log.Error("encode payload", "topic", topic, "err", err)
		return
	}
	if t.cfg.Publish != nil {
		err = t.cfg.Publish(topic, b)
	} else {
		err = t.bus.Send(bus.ModuleMQTT, bus.NewMessage(bus.ModuleTwin, bus.GroupBus, bus.OpPublish, topic, b))
	}
	if err != nil {
		t.stats.publishFails.Add(1)
		t.log.Debug("publish", "topic", topic, "err", err)
		return
	}
	t.stats.published.Add(1)
}

// publishError publishes an error result (docs/protocol.md 5.2).
func (t *Twin) publishError(topic, eventID string, code int, reason string) {
	t.stats.errors.Add(1)
	t.publish(topic, result{baseMessage: baseMessage{EventID: eventID, Timestamp: t.nowMS()}, Code: code, Reason: reason})
}

// toCloud queues a message for the cloud through the communication worker.
func (t *Twin) toCloud(resource string, content []byte) {
	t.queue(t.com, job{act: actSendToCloud, msg: bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, resource, content)})
}

func (t *Twin) toHub(msg bus.Message) {
	if err := t.bus.Send(bus.ModuleHub, msg); err != nil {
		t.stats.cloudDropped.Add(1)
		t.log.Debug("send to hub", "resource", msg.Route.Resource, "err", err)
	}
}
