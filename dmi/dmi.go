package dmi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/rpc"
)

// DefaultSocket is where mappers look for the edge's DMI server: edgecore's
// default (modules.deviceTwin.dmiSockPath, /etc/kubeedge/ plus dmi.sock,
// KubeEdge v1.23.1 edge/pkg/devicetwin/dmiserver/server.go,
// StartDMIServer) and the mapper-framework's common.edgecore_sock.
const DefaultSocket = "/etc/kubeedge/dmi.sock"

// Config configures the module. Zero fields take their defaults.
type Config struct {
	// Socket is the unix socket the DMI server listens on. Default
	// DefaultSocket.
	Socket string `yaml:"socket,omitempty"`
	// CallTimeout bounds one call to a mapper. Default 10 s (edgecore's
	// DMI client, edge/pkg/devicetwin/dmiclient/client.go).
	CallTimeout time.Duration `yaml:"callTimeout,omitempty"`
	// RetryMin and RetryMax bound the back-off between attempts to reach
	// a mapper that is away. Defaults 1 s and 1 min.
	RetryMin time.Duration `yaml:"retryMin,omitempty"`
	RetryMax time.Duration `yaml:"retryMax,omitempty"`
	// MaxPending bounds the calls queued for one mapper; beyond it the
	// oldest is dropped (the mapper gets everything again when it
	// registers). Default 1024.
	MaxPending int `yaml:"maxPending,omitempty"`
	// MaxMappers bounds the registered mappers (one per protocol).
	// Default 64.
	MaxMappers int `yaml:"maxMappers,omitempty"`
	// MaxMessage bounds a message from a mapper. Default 4 MiB.
	MaxMessage int `yaml:"maxMessage,omitempty"`
	// Rate (calls per second) and Burst are the token bucket shared by
	// the three DMI server methods. Defaults 1 and 100, edgecore's
	// rate.NewLimiter(rate.Every(1000ms), 100) (dmiserver/server.go).
	Rate  float64 `yaml:"rate,omitempty"`
	Burst int     `yaml:"burst,omitempty"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 1024
	}
	if c.MaxMappers <= 0 {
		c.MaxMappers = 64
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = rpc.DefaultMaxMessage
	}
	if c.Rate <= 0 {
		c.Rate = 1
	}
	if c.Burst <= 0 {
		c.Burst = 100
	}
	return c
}

// Validate returns every problem of c (after Defaults) at once, each naming
// its key as spelled in the config file under "dmi.".
func (c Config) Validate() []error {
	var errs []error
	if !filepath.IsAbs(c.Socket) {
		errs = append(errs, fmt.Errorf("dmi.socket: %q must be an absolute path", c.Socket))
	}
	if len(c.Socket) > 107 {
		errs = append(errs, fmt.Errorf("dmi.socket: %q is longer than a unix socket path may be (107 bytes)", c.Socket))
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("dmi.retryMax: %v is less than retryMin (%v)", c.RetryMax, c.RetryMin))
	}
	return errs
}

// Stats are the module's counters.
type Stats struct {
	Registrations uint64 // MapperRegister calls answered
	Reports       uint64 // status and state reports handed to twin
	Rejected      uint64 // server calls refused: bad request, rate limit
	Calls         uint64 // calls to mappers answered OK
	CallErrors    uint64 // calls to mappers answered with an error (not retried)
	Retries       uint64 // calls to mappers retried after the mapper was away
	Dropped       uint64 // bus messages ignored, calls for no mapper or over MaxPending
}

type stats struct {
	registrations, reports, rejected, calls, callErrors, retries, dropped atomic.Uint64
}

// DMI is the module. Create it with New; Run serves it.
type DMI struct {
	cfg   Config
	bus   *bus.Bus
	db    *db.DB
	log   *slog.Logger
	srv   *rpc.Server
	lim   *limiter
	stats stats
	ready chan struct{}

	mu      sync.Mutex
	ctx     context.Context // Run's, for mapper goroutines started later
	wg      sync.WaitGroup  // mapper goroutines
	devices map[string]device
	models  map[string]model
	mappers map[string]*mapper // by protocol
	running bool
}

// New returns the module and registers it on b as ModuleDMI. It starts
// nothing and reads nothing; Run loads the store and listens.
func New(cfg Config, b *bus.Bus, d *db.DB, log *slog.Logger) (*DMI, error) {
	cfg = cfg.Defaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("dmi: new: %w", errors.Join(errs...))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &DMI{cfg: cfg, bus: b, db: d, log: log, ready: make(chan struct{}),
		lim:     newLimiter(cfg.Rate, cfg.Burst, time.Now),
		devices: map[string]device{}, models: map[string]model{}, mappers: map[string]*mapper{}}
	m.srv = rpc.NewServer(rpc.ServerConfig{MaxMessage: cfg.MaxMessage}, log)
	m.srv.Handle(methodRegister, m.mapperRegister)
	m.srv.Handle(methodStatus, m.reportStatus)
	m.srv.Handle(methodStates, m.reportStates)
	if err := b.AddModule(bus.ModuleDMI, ""); err != nil {
		return nil, fmt.Errorf("dmi: new: %w", err)
	}
	return m, nil
}

// Ready is closed once Run has loaded the store and tried to listen.
func (m *DMI) Ready() <-chan struct{} { return m.ready }

// Stats returns the module's counters.
func (m *DMI) Stats() Stats {
	s := &m.stats
	return Stats{Registrations: s.registrations.Load(), Reports: s.reports.Load(), Rejected: s.rejected.Load(),
		Calls: s.calls.Load(), CallErrors: s.callErrors.Load(), Retries: s.retries.Load(), Dropped: s.dropped.Load()}
}

// Run loads devices, models and mapper registrations from the store,
// serves DMI on the socket and follows meta's device and model messages
// until ctx ends. It returns after all its goroutines have exited. A
// socket that cannot be created (a read-only /etc) is logged and the
// module runs on without a server.
func (m *DMI) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("dmi: run: already running")
	}
	m.running, m.ctx = true, ctx
	m.mu.Unlock()
	defer m.wg.Wait()
	if err := m.load(ctx); err != nil {
		close(m.ready)
		return err
	}
	ln, err := listen(m.cfg.Socket)
	if err != nil {
		m.log.Warn("no DMI server: mappers cannot register (set dmi.socket to a writable place, e.g. under /run, and the same path in the mappers' common.edgecore_sock)", "err", err)
	} else {
		m.wg.Go(func() {
			if err := m.srv.Serve(ctx, ln); err != nil {
				m.log.Error("serve", "err", err)
			}
			os.Remove(m.cfg.Socket)
		})
		m.log.Info("serving", "socket", m.cfg.Socket)
	}
	close(m.ready)
	q := m.bus.Queue(bus.ModuleDMI)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.Ready():
			if msg, ok := q.Next(); ok {
				m.handle(ctx, msg)
			}
		}
	}
}

// listen creates the socket's folder if needed, removes a stale socket
// (as edgecore's listener does) and listens. A socket that another
// process answers on (edgecore beside us) is left alone: taking it over
// would cut that process's mappers off.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("dmi: listen: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		if served(path) {
			return nil, fmt.Errorf("dmi: listen: %s is served already (a running edgenode or edgecore)", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("dmi: listen: %w", err)
	}
	return ln, nil
}

// load fills the caches from table meta: the devices and models meta
// stored from the cloud, and the registrations stored by mapperRegister.
func (m *DMI) load(ctx context.Context) error {
	for _, k := range []bus.Kind{bus.KindDevice, bus.KindDeviceModel, bus.KindDeviceMapper} {
		rows, err := m.db.MetaByType(ctx, string(k))
		if err != nil {
			return fmt.Errorf("dmi: load %s: %w", k, err)
		}
		for _, row := range rows {
			// A stored row is what the device controller sent: read its key
			// as that message's resource.
			var stored bus.Message
			stored.Route.Source = bus.SourceDeviceController
			stored.SetResource(row.Key)
			if !stored.Res.Valid(bus.OpInsert) {
				continue
			}
			if err := m.apply(stored.Res, bus.ContentBytes([]byte(row.Value))); err != nil {
				m.log.Warn("skip stored object", "key", row.Key, "err", err)
			}
		}
	}
	return nil
}

// apply puts one stored object in the caches, calling nobody.
func (m *DMI) apply(r bus.Resource, raw []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch r.Kind {
	case bus.KindDevice:
		d, err := parseDevice(r.Namespace, r.Name, raw)
		if err != nil {
			return err
		}
		m.devices[key(r.Namespace, r.Name)] = d
	case bus.KindDeviceModel:
		md, err := parseModel(r.Namespace, r.Name, raw)
		if err != nil {
			return err
		}
		m.models[key(r.Namespace, r.Name)] = md
	case bus.KindDeviceMapper:
		var mi mapperInfo
		if err := json.Unmarshal(raw, &mi); err != nil {
			return err
		}
		if mi.Protocol != "" && len(mi.Address) > 0 {
			m.addMapperLocked(mi)
		}
	}
	return nil
}

// handle follows one message from meta: a device or model the cloud
// inserted, updated or deleted (resource <ns>/device/<name> or
// <ns>/devicemodel/<name>, KubeEdge v1.23.1
// edge/pkg/devicetwin/dtmanager/dmiworker.go, dealMetaDeviceOperation).
func (m *DMI) handle(ctx context.Context, msg bus.Message) {
	op := msg.Route.Operation
	r := msg.Res
	if !r.Valid(op) || r.Name == "" || (r.Kind != bus.KindDevice && r.Kind != bus.KindDeviceModel) ||
		(op != bus.OpInsert && op != bus.OpUpdate && op != bus.OpDelete) {
		m.stats.dropped.Add(1)
		m.log.Debug("ignored message", "resource", msg.Route.Resource, "op", op)
		return
	}
	if op == bus.OpDelete {
		m.remove(r)
		return
	}
	if err := m.put(r, bus.ContentBytes(msg.Content)); err != nil {
		m.stats.dropped.Add(1)
		m.log.Warn("bad object from the cloud", "resource", msg.Route.Resource, "err", err)
	}
}

// put caches an inserted or updated device or model and queues the call
// that tells its mapper: Register or Create when new, Update when its spec
// changed (a new desired value is a spec change), nothing otherwise. A
// device that moved to another protocol is removed from the old mapper.
func (m *DMI) put(r bus.Resource, raw []byte) error {
	k := key(r.Namespace, r.Name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Kind == bus.KindDevice {
		d, err := parseDevice(r.Namespace, r.Name, raw)
		if err != nil {
			return err
		}
		old, had := m.devices[k]
		m.devices[k] = d
		switch {
		case !had:
			m.queueLocked(d.protocol, call{method: methodRegisterDevice, ns: d.ns, name: d.name})
		case old.protocol != d.protocol:
			m.queueLocked(old.protocol, call{method: methodRemoveDevice, ns: d.ns, name: d.name})
			m.queueLocked(d.protocol, call{method: methodRegisterDevice, ns: d.ns, name: d.name})
		case old.spec != d.spec:
			m.queueLocked(d.protocol, call{method: methodUpdateDevice, ns: d.ns, name: d.name})
		}
		return nil
	}
	md, err := parseModel(r.Namespace, r.Name, raw)
	if err != nil {
		return err
	}
	old, had := m.models[k]
	m.models[k] = md
	switch {
	case !had:
		m.queueLocked(md.protocol, call{method: methodCreateModel, ns: md.ns, name: md.name})
	case old.protocol != md.protocol:
		m.queueLocked(old.protocol, call{method: methodRemoveModel, ns: md.ns, name: md.name})
		m.queueLocked(md.protocol, call{method: methodCreateModel, ns: md.ns, name: md.name})
	case string(old.raw) != string(md.raw):
		m.queueLocked(md.protocol, call{method: methodUpdateModel, ns: md.ns, name: md.name})
	}
	return nil
}

// remove uncaches a deleted device or model and queues its Remove call.
func (m *DMI) remove(r bus.Resource) {
	k := key(r.Namespace, r.Name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Kind == bus.KindDevice {
		if d, ok := m.devices[k]; ok {
			delete(m.devices, k)
			m.queueLocked(d.protocol, call{method: methodRemoveDevice, ns: d.ns, name: d.name})
		}
		return
	}
	if md, ok := m.models[k]; ok {
		delete(m.models, k)
		m.queueLocked(md.protocol, call{method: methodRemoveModel, ns: md.ns, name: md.name})
	}
}

// queueLocked queues c for the mapper of protocol. With no mapper
// registered for it the call is dropped: a mapper that registers later
// gets the device or model in its MapperRegister answer.
func (m *DMI) queueLocked(protocol string, c call) {
	mp := m.mappers[protocol]
	if mp == nil {
		m.stats.dropped.Add(1)
		m.log.Debug("no mapper for protocol", "protocol", protocol, "call", c.method, "object", key(c.ns, c.name))
		return
	}
	if mp.push(c, m.cfg.MaxPending) {
		m.stats.dropped.Add(1)
		m.log.Warn("mapper queue full, dropped the oldest call", "protocol", protocol)
	}
}

// addMapperLocked registers or updates the mapper of mi.Protocol and
// starts its goroutine if Run is running. It reports false when
// MaxMappers are registered already.
func (m *DMI) addMapperLocked(mi mapperInfo) (*mapper, bool) {
	mp := m.mappers[mi.Protocol]
	if mp == nil {
		if len(m.mappers) >= m.cfg.MaxMappers {
			return nil, false
		}
		mp = newMapper(mi, m.cfg.MaxMessage)
		m.mappers[mi.Protocol] = mp
		ctx := m.ctx
		m.wg.Go(func() { m.sender(ctx, mp) })
		return mp, true
	}
	mp.update(mi)
	return mp, true
}

// registration returns the answer to a MapperRegister with data: every
// device of protocol with its model's defaults merged, and their models,
// each once, in key order. An object that cannot be converted is logged
// and left out.
func (m *DMI) registration(protocol string) (models, devices [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.devices))
	for k, d := range m.devices {
		if d.protocol == protocol {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	seen := map[string]bool{}
	for _, k := range keys {
		d := m.devices[k]
		md, ok := m.models[key(d.ns, d.model)]
		var mp *model
		if ok {
			mp = &md
		}
		b, err := deviceMessage(d, mp)
		if err != nil {
			m.log.Warn("device left out of a registration", "device", k, "err", err)
			continue
		}
		devices = append(devices, b)
		if ok && !seen[key(md.ns, md.name)] {
			seen[key(md.ns, md.name)] = true
			if b, err := modelMessage(md); err == nil {
				models = append(models, b)
			} else {
				m.log.Warn("model left out of a registration", "model", key(md.ns, md.name), "err", err)
			}
		}
	}
	return models, devices
}

// request builds the request of c from the caches. ok is false when the
// object is gone (a later Remove is queued) or cannot be converted.
func (m *DMI) request(c call) (req []byte, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var msg []byte
	var err error
	switch c.method {
	case methodRemoveDevice, methodRemoveModel:
		return nameRequest(c.ns, c.name), true
	case methodRegisterDevice, methodUpdateDevice:
		d, found := m.devices[key(c.ns, c.name)]
		if !found {
			return nil, false
		}
		var mp *model
		if md, found := m.models[key(d.ns, d.model)]; found {
			mp = &md
		}
		msg, err = deviceMessage(d, mp)
	default:
		md, found := m.models[key(c.ns, c.name)]
		if !found {
			return nil, false
		}
		msg, err = modelMessage(md)
	}
	if err != nil {
		m.log.Warn("cannot convert for the mapper", "call", c.method, "object", key(c.ns, c.name), "err", err)
		return nil, false
	}
	return objectRequest(msg), true
}

// mapperKey is the table meta key of a registration: one per protocol, as
// edgecore keeps one client per protocol (dmiclient/client.go).
func mapperKey(protocol string) string {
	return bus.ResourcePath(bus.NullNamespace, bus.KindDeviceMapper, protocol)
}

// socketPath is the unix socket path in a MapperInfo address.
func socketPath(addr []byte) string {
	return strings.TrimPrefix(string(addr), "unix://")
}

// served reports whether a process accepts connections on socket.
func served(socket string) bool {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Check reports whether the server could listen on socket: nobody serves
// it, and a socket can be created in its folder, or the folder can be
// made. It leaves nothing behind; `edgenode check` calls it.
func Check(socket string) error {
	if served(socket) {
		return fmt.Errorf("dmi: %s is served already (a running edgenode or edgecore)", socket)
	}
	dir := filepath.Dir(socket)
	if _, err := os.Stat(dir); err != nil {
		// Find the nearest folder that exists and try to make one in it.
		parent := dir
		for {
			up := filepath.Dir(parent)
			if _, err := os.Stat(up); err == nil || up == parent {
				parent = up
				break
			}
			parent = up
		}
		tmp, err := os.MkdirTemp(parent, ".edgenode-check-")
		if err != nil {
			return fmt.Errorf("dmi: cannot create the socket's folder %s: %w", dir, err)
		}
		os.Remove(tmp)
		return nil
	}
	probe := socket + ".check"
	ln, err := net.Listen("unix", probe)
	if err != nil {
		return fmt.Errorf("dmi: cannot create a socket beside %s: %w", socket, err)
	}
	ln.Close()
	os.Remove(probe)
	return nil
}
