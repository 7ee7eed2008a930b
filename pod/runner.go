package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/bus"

	"edgenode/pod/image"
)

// Runner is the pod module ("edged"). New registers it on the bus; Run
// serves pods until its context ends. Containers keep running after Run
// returns: stopping edgenode never stops a pod.
type Runner struct {
	cfg    Config
	b      *bus.Bus
	log    *slog.Logger
	images *image.Store
	rt     *ociRuntime
	rtErr  error // why the runtime is unusable, if it is

	mu      sync.Mutex
	workers map[string]*worker // by pod uid
	cms     map[string]*ConfigMap
	secrets map[string]*Secret
	// deleted holds the uids of pods whose final delete the cloud
	// answered, with when. kube-apiserver first updates the pod with grace
	// 0 and then deletes it (k8s.io/apiserver registry/rest BeforeDelete);
	// that update may reach the node after the pod is gone and must not
	// start its deletion again. Kept for deletedKeep or until the cloud's
	// delete of the uid.
	deleted map[string]time.Time
	wg      sync.WaitGroup
	ctx     context.Context

	pidfdOnce sync.Once    // noPidfd's log line
	pidfdOff  bool         // tests: act as on a kernel without pidfd_open
	syncs     atomic.Int64 // worker syncs, for tests: idle must not sync
}

// New registers module edged (group edged) on b and opens the image store.
// It starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger) (*Runner, error) {
	cfg = cfg.Defaults()
	if cfg.HostIP == "" {
		cfg.HostIP = firstIPv4()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("pod: config: DataDir is required")
	}
	if err := os.MkdirAll(cfg.podsDir(), 0o700); err != nil {
		return nil, fmt.Errorf("pod: %w", err)
	}
	images, err := image.Open(image.Config{Dir: cfg.imagesDir(), Platform: cfg.Platform, Insecure: cfg.InsecureRegistries}, log)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		cfg: cfg, b: b, log: log, images: images,
		workers: map[string]*worker{}, cms: map[string]*ConfigMap{}, secrets: map[string]*Secret{},
		deleted: map[string]time.Time{},
	}
	bin, err := exec.LookPath(cfg.Runtime)
	if err != nil {
		r.rtErr = fmt.Errorf("%w: %s: %v", ErrNoRuntime, cfg.Runtime, err)
	}
	r.rt = newOCIRuntime(bin, cfg.RuntimeRoot)
	if b != nil {
		if err := b.AddModule(bus.ModulePod, bus.GroupPod); err != nil {
			return nil, fmt.Errorf("pod: %w", err)
		}
	}
	return r, nil
}

// Images returns the image store.
func (r *Runner) Images() *image.Store { return r.images }

// Run adopts the containers it finds, starts the stored and static pods,
// serves pod, configmap and secret messages, and returns when ctx ends,
// after every pod worker has stopped (their containers keep running).
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	if err := setSubreaper(); err != nil {
		r.log.Warn("not a child subreaper: exit codes of containers will be unknown", "err", err)
	}
	if r.rtErr != nil {
		r.log.Warn("OCI runtime missing: pods will wait", "err", r.rtErr)
	}
	if n := r.images.ImportDir(ctx, r.cfg.ImagesDir); n > 0 {
		r.log.Info("read-only images imported", "dir", r.cfg.ImagesDir, "images", n)
	}
	r.restore(ctx)
	r.loadStatic()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.initialList(ctx)
	}()
	gc := time.NewTicker(time.Minute)
	defer gc.Stop()
	var q bus.Inbox
	if r.b != nil {
		q = r.b.Queue(bus.ModulePod)
	}
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			for _, w := range r.workers {
				w.quit()
			}
			r.mu.Unlock()
			r.wg.Wait()
			return nil
		case <-q.Ready():
			if m, ok := q.Next(); ok {
				r.handle(m)
			}
		case <-gc.C:
			r.imageGC()
		}
	}
}

// handle applies one message from meta (docs/protocol.md 2.5, 6).
func (r *Runner) handle(m bus.Message) {
	res := m.Res
	if !res.Valid(m.Route.Operation) {
		r.log.Debug("message ignored: bad resource", "resource", m.Route.Resource)
		return
	}
	switch res.Kind {
	case bus.KindPod:
		r.handlePod(m, res)
	case bus.KindConfigMap:
		r.handleObject(m, res, r.cms, func(b []byte) (any, error) {
			var cm ConfigMap
			err := json.Unmarshal(b, &cm)
			return &cm, err
		})
	case bus.KindSecret:
		r.handleObject(m, res, r.secrets, func(b []byte) (any, error) {
			var s Secret
			err := json.Unmarshal(b, &s)
			return &s, err
		})
	default:
		r.log.Debug("message ignored", "resource", m.Route.Resource, "op", m.Route.Operation)
	}
}

func (r *Runner) handlePod(m bus.Message, res bus.Resource) {
	switch m.Route.Operation {
	case bus.OpInsert, bus.OpUpdate:
		p, err := DecodePod(m.Content)
		if p == nil {
			r.log.Warn("pod message not decodable", "resource", m.Route.Resource, "err", err)
			return
		}
		if p.Metadata.Name == "" {
			p.Metadata.Name = res.Name
		}
		// A pod with deletionTimestamp is being deleted in the API server:
		// its worker stops it and asks for the final delete (terminate.go).
		r.upsert(p, err)
	case bus.OpDelete:
		// Gone from the API server. The content is the last pod object
		// (docs/protocol.md 2.5), whose deletionGracePeriodSeconds (0 for a force
		// delete) bounds what is left of the grace; v0.3 may send only
		// the name.
		var uid string
		var g *int64
		if p, _ := DecodePod(m.Content); p != nil {
			uid, g = p.Metadata.UID, p.Metadata.DeletionGrace
		}
		r.remove(res.Namespace, res.Name, uid, g)
	}
}

// AddPod runs p (or updates the pod of the same uid). It is what a pod
// message from meta does; tests and static pods call it directly.
func (r *Runner) AddPod(p *Pod) {
	r.upsert(p, p.validate())
}

// upsert starts a worker for a new pod or hands a new spec to its worker.
// A spec that cannot run still gets a worker, which only reports Failed.
func (r *Runner) upsert(p *Pod, specErr error) {
	if p.Metadata.UID == "" || !validUID(p.Metadata.UID) {
		p.Metadata.UID = strings.ReplaceAll("nouid-"+p.Metadata.Namespace+"-"+p.Metadata.Name, ".", "-")
		if !validUID(p.Metadata.UID) {
			r.log.Warn("pod without usable uid or name ignored", "name", p.Metadata.Name)
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.workers[p.Metadata.UID]; ok {
		w.update(p, specErr)
		return
	}
	if _, ok := r.deleted[p.Metadata.UID]; ok && p.Metadata.DeletionTimestamp != nil {
		return // a late update of a pod the cloud has deleted
	}
	// A new uid for the same name replaces the old pod (delete + recreate).
	for _, w := range r.workers {
		if w.key() == p.Metadata.Namespace+"/"+p.Metadata.Name {
			w.remove(nil)
		}
	}
	w := newWorker(r, p, specErr, nil)
	r.workers[p.Metadata.UID] = w
	r.startWorker(w)
}

func (r *Runner) startWorker(w *worker) {
	if r.ctx == nil {
		return // before Run: the worker starts when Run restores
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		w.run(r.ctx)
		r.mu.Lock()
		if r.workers[w.uid] == w && w.isGone() {
			delete(r.workers, w.uid)
			if w.deletedInCloud {
				r.tombstone(w.uid)
			}
		}
		r.mu.Unlock()
	}()
}

// deletedKeep is how long a pod the cloud deleted is remembered (deleted).
const deletedKeep = 10 * time.Minute

// tombstone remembers uid as deleted in the cloud and forgets entries
// older than deletedKeep; r.mu is held.
func (r *Runner) tombstone(uid string) {
	now := time.Now()
	for u, t := range r.deleted {
		if now.Sub(t) > deletedKeep {
			delete(r.deleted, u)
		}
	}
	r.deleted[uid] = now
}

// DeletePod stops the pod ns/name within its grace period and removes
// it, as a delete from the cloud does; it does not wait.
func (r *Runner) DeletePod(ns, name string) bool { return r.remove(ns, name, "", nil) }

// remove removes the pod ns/name (of that uid, if not empty) with grace g
// seconds, nil for the pod's own.
func (r *Runner) remove(ns, name, uid string, g *int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.deleted, uid)
	found := false
	for _, w := range r.workers {
		if w.key() == ns+"/"+name && (uid == "" || uid == w.uid) {
			w.remove(g)
			found = true
		}
	}
	return found
}

// handleObject keeps configmaps and secrets in the cache (docs/protocol.md 6: insert
// adds; update and delete apply to cached objects) and refreshes the
// volumes of pods that use them.
func (r *Runner) handleObject(m bus.Message, res bus.Resource, cache any, decode func([]byte) (any, error)) {
	key := res.Namespace + "/" + res.Name
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Route.Operation {
	case bus.OpInsert, bus.OpUpdate:
		obj, err := decode(m.Content)
		if err != nil {
			r.log.Warn("object not decodable", "resource", m.Route.Resource, "err", err)
			return
		}
		switch c := cache.(type) {
		case map[string]*ConfigMap:
			c[key] = obj.(*ConfigMap)
		case map[string]*Secret:
			c[key] = obj.(*Secret)
		}
	case bus.OpDelete:
		switch c := cache.(type) {
		case map[string]*ConfigMap:
			delete(c, key)
		case map[string]*Secret:
			delete(c, key)
		}
	default:
		return
	}
	for _, w := range r.workers {
		if w.namespace() == res.Namespace {
			w.poke(true)
		}
	}
}

// Pods returns the pods the runner manages with their current status.
func (r *Runner) Pods() []Pod {
	r.mu.Lock()
	ws := make([]*worker, 0, len(r.workers))
	for _, w := range r.workers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	out := make([]Pod, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.snapshot())
	}
	return out
}

// imageGC removes unused images when the disk is fuller than
// GCHighPercent, down to GCLowPercent (docs/protocol.md 6 image-gc thresholds).
func (r *Runner) imageGC() {
	total, free, err := diskStats(r.cfg.imagesDir())
	if err != nil || total == 0 {
		return
	}
	used := 100 - free*100/total
	if used < uint64(r.cfg.GCHighPercent) {
		return
	}
	inUse := map[string]bool{}
	for _, p := range r.Pods() {
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			inUse[cs.ImageID] = true
		}
	}
	want := total * uint64(100-r.cfg.GCLowPercent) / 100
	if removed := r.images.GC(inUse, want); len(removed) > 0 {
		r.log.Info("unused images removed", "images", removed)
	}
}

// restore brings back every pod stored under the pods dir: adopted with
// its running containers, or started again after a reboot (edge autonomy).
func (r *Runner) restore(ctx context.Context) {
	var states []ociState
	if r.rtErr == nil {
		var err error
		if states, err = r.rt.list(ctx); err != nil {
			r.log.Warn("runc list failed", "err", err)
		}
	}
	byPod := map[string][]ociState{}
	for _, s := range states {
		if uid := s.Annotations[annPodUID]; uid != "" && r.owns(s) {
			byPod[uid] = append(byPod[uid], s)
		}
	}
	ents, _ := os.ReadDir(r.cfg.podsDir())
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(r.cfg.podsDir(), e.Name(), "pod.json"))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				r.log.Warn("stored pod unreadable", "uid", e.Name(), "err", err)
			}
			continue
		}
		p, err := DecodePod(b)
		if p == nil || p.Metadata.UID != e.Name() {
			r.log.Warn("stored pod unusable", "uid", e.Name(), "err", err)
			continue
		}
		w := newWorker(r, p, err, byPod[p.Metadata.UID])
		delete(byPod, p.Metadata.UID)
		r.log.Info("pod restored", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "adopted", len(w.ctrs))
		r.workers[p.Metadata.UID] = w
		r.startWorker(w)
	}
	// Containers of pods we have no record of: remove them.
	for uid, ss := range byPod {
		for _, s := range ss {
			r.log.Warn("removing container of unknown pod", "container", s.ID, "uid", uid)
			_ = r.rt.remove(ctx, s.ID)
		}
	}
}

// owns reports whether the container s was made by this runner (see
// annPodsDir).
func (r *Runner) owns(s ociState) bool {
	d, ok := s.Annotations[annPodsDir]
	return !ok || d == r.cfg.podsDir()
}

// initialList asks meta for the stored pods (docs/protocol.md 6 start-up: a local
// query of <namespace>/pod; the answer is a JSON array of JSON strings,
// each a v1.Pod). Stored pods of that namespace that meta no longer has
// were deleted while edgenode was down.
func (r *Runner) initialList(ctx context.Context) {
	if r.b == nil || !r.b.Has(bus.ModuleMeta) {
		return
	}
	q := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, r.cfg.Namespace+"/"+string(bus.KindPod), nil)
	resp, err := r.b.SendSync(ctx, bus.ModuleMeta, q, r.cfg.QueryTimeout)
	if err != nil {
		r.log.Warn("initial pod list query failed; running the pods stored on disk", "err", err)
		return
	}
	var items []json.RawMessage
	if err := json.Unmarshal(resp.Content, &items); err != nil {
		r.log.Warn("initial pod list not a JSON array", "err", err)
		return
	}
	seen := map[string]bool{}
	for _, it := range items {
		b := it
		if s, ok := bus.ContentString(it); ok {
			b = []byte(s)
		}
		p, err := DecodePod(b)
		if p == nil {
			r.log.Warn("stored pod not decodable", "err", err)
			continue
		}
		seen[p.Metadata.UID] = true
		r.upsert(p, err) // with deletionTimestamp: its deletion goes on
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for uid, w := range r.workers {
		if w.namespace() == r.cfg.Namespace && !seen[uid] && !w.static {
			r.log.Info("pod no longer stored in meta: removing", "pod", w.key())
			w.remove(nil)
		}
	}
}

// Stats counts the pods and containers the runner manages.
type Stats struct {
	Pods       int `json:"pods"`
	Containers int `json:"containers"`
	Running    int `json:"running"`
	Images     int `json:"images"`
}

// Stats returns current counts; safe for concurrent use.
func (r *Runner) Stats() Stats {
	s := Stats{Images: len(r.images.List())}
	for _, p := range r.Pods() {
		s.Pods++
		for _, cs := range p.Status.ContainerStatuses {
			s.Containers++
			if cs.State.Running != nil {
				s.Running++
			}
		}
	}
	return s
}
