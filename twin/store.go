package twin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"edgenode/db"
)

// store is the in-memory view of the device tables. It is never ahead of
// SQLite: a change is computed on clones, committed in one transaction,
// and only then are the clones published. Readers take no lock beyond the
// map lookup; writers are serialised by writeMu.
type store struct {
	db      *db.DB
	w       *db.DeviceWriter // prepared statements while Run runs; nil: unprepared
	retries int
	delay   time.Duration

	writeMu sync.Mutex // held by the one change being computed and committed

	mu      sync.RWMutex
	devices map[string]*deviceState
}

// load replaces the view with the tables' contents (docs/protocol.md 5.5: on
// start all devices are loaded from SQLite).
func (s *store) load(ctx context.Context) error {
	devs, err := s.db.Devices(ctx)
	if err != nil {
		return fmt.Errorf("twin: load: %w", err)
	}
	attrs, err := s.db.DeviceAttrs(ctx)
	if err != nil {
		return fmt.Errorf("twin: load: %w", err)
	}
	twins, err := s.db.DeviceTwins(ctx)
	if err != nil {
		return fmt.Errorf("twin: load: %w", err)
	}
	m := fromRows(devs, attrs, twins)
	s.mu.Lock()
	s.devices = m
	s.mu.Unlock()
	return nil
}

// device returns the committed device, or nil. The result must not be
// modified.
func (s *store) device(id string) *deviceState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.devices[id]
}

// list returns the committed devices ordered by id.
func (s *store) list() []*deviceState {
	s.mu.RLock()
	out := make([]*deviceState, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, d)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// tx is one change being prepared under writeMu.
type tx struct {
	s       *store
	change  db.DeviceChange
	put     map[string]*deviceState
	removed map[string]bool
	twinAt  map[db.DeviceKey]int // index in change.PutTwins of each twin staged
	twinSrc []*twinState         // the state each row of change.PutTwins is made from (staged)
}

// begin takes the write lock; the caller must end with commit or abort.
func (s *store) begin() *tx {
	s.writeMu.Lock()
	return &tx{s: s, put: map[string]*deviceState{}, removed: map[string]bool{}}
}

// edit returns a private clone of device id to change, or nil if it does
// not exist (or is removed in this change).
func (t *tx) edit(id string) *deviceState {
	if d, ok := t.put[id]; ok {
		return d
	}
	if t.removed[id] {
		return nil
	}
	d := t.s.device(id)
	if d == nil {
		return nil
	}
	c := d.clone()
	t.put[id] = c
	return c
}

// add stages a new device.
func (t *tx) add(d *deviceState) {
	delete(t.removed, d.ID)
	t.put[d.ID] = d
	t.change.PutDevices = append(t.change.PutDevices, d.row())
}

// putTwin stages twin name of device dev in state st. A twin staged
// before in this change has its row replaced where it stands: db applies
// one put per twin, at the place of the first with the values of the last
// (applyDevices), so the rows end the same, and a group commit of many
// updates to one twin holds one row instead of a slice grown by each. The
// row is made from the last state only, when the change is applied
// (staged): a state, once staged, is not changed (a deal changes a clone).
func (t *tx) putTwin(dev, name string, st *twinState) {
	k := db.DeviceKey{DeviceID: dev, Name: name}
	if i, ok := t.twinAt[k]; ok {
		t.twinSrc[i] = st
		return
	}
	if t.twinAt == nil {
		t.twinAt = map[db.DeviceKey]int{}
	}
	t.twinAt[k] = len(t.change.PutTwins)
	t.change.PutTwins = append(t.change.PutTwins, db.DeviceTwin{DeviceID: dev, Name: name})
	t.twinSrc = append(t.twinSrc, st)
}

// staged returns the change, its twin rows made from their last state.
func (t *tx) staged() db.DeviceChange {
	for i, st := range t.twinSrc {
		r := &t.change.PutTwins[i]
		*r = twinRow(r.DeviceID, r.Name, st)
	}
	return t.change
}

// remove stages the removal of device id.
func (t *tx) remove(id string) {
	delete(t.put, id)
	t.removed[id] = true
	t.change.DeleteDevices = append(t.change.DeleteDevices, id)
}

func (t *tx) abort() { t.s.writeMu.Unlock() }

// commit writes the change, retrying (docs/protocol.md 5.3: every write is
// retried), then publishes the clones. On failure the view is reloaded from
// SQLite and nothing staged is published.
func (t *tx) commit(ctx context.Context) error {
	defer t.s.writeMu.Unlock()
	var err error
	change := t.staged()
	for i := 0; i < t.s.retries; i++ {
		if t.s.w != nil {
			err = t.s.w.Apply(ctx, change)
		} else {
			err = t.s.db.ApplyDevices(ctx, change)
		}
		if err == nil || errors.Is(err, db.ErrFull) {
			break // a full disk stays full for a while: answer at once
		}
		if i+1 < t.s.retries {
			tm := time.NewTimer(t.s.delay)
			select {
			case <-ctx.Done():
				tm.Stop()
				i = t.s.retries
			case <-tm.C:
			}
		}
	}
	if err != nil {
		if lerr := t.s.load(context.WithoutCancel(ctx)); lerr != nil {
			err = fmt.Errorf("%w (reload: %v)", err, lerr)
		}
		return fmt.Errorf("twin: commit: %w", err)
	}
	t.s.mu.Lock()
	for id, d := range t.put {
		t.s.devices[id] = d
	}
	for id := range t.removed {
		delete(t.s.devices, id)
	}
	t.s.mu.Unlock()
	return nil
}
