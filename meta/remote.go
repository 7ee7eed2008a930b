package meta

import (
	"context"
	"errors"
	"time"

	"edgenode/bus"
	"edgenode/db"
)

// remoteKinds are the kinds v1.23 always asks the cloud for while connected
// (docs/protocol.md 3.3); v0.3 asks only for configmaps and secrets missing
// locally (docs/protocol.md 3.2).
var remoteKinds = map[bus.Kind]bool{
	bus.KindConfigMap: true, bus.KindSecret: true, bus.KindPV: true, bus.KindPVC: true,
	bus.KindVolumeAttachment: true, bus.KindServiceAccountToken: true, bus.KindLease: true,
	bus.KindCSR: true, bus.KindKubeCA: true,
}

// query answers from the store, or asks the cloud first (docs/protocol.md 3.2,
// 3.3).
func (m *Meta) query(ctx context.Context, msg bus.Message, r bus.Resource) {
	if r.Name != "" && m.connected.Load() && !m.fromCloud(msg) {
		ask := false
		if m.cfg.Era == bus.EraV03 {
			if r.Kind == bus.KindConfigMap || r.Kind == bus.KindSecret {
				_, err := m.d.MetaByKey(ctx, msg.Route.Resource)
				ask = errors.Is(err, db.ErrNotFound)
			}
		} else {
			ask = remoteKinds[r.Kind]
		}
		if ask {
			m.remote(ctx, msg, r, true)
			return
		}
	}
	m.queryLocal(ctx, msg, r)
}

// queryLocal answers with the stored rows: the one row of a named resource
// or every row of the type, as a JSON array of JSON strings, source
// metamanager (docs/protocol.md 3.2). No row is an empty array.
func (m *Meta) queryLocal(ctx context.Context, msg bus.Message, r bus.Resource) {
	var vals []string
	if r.Name != "" {
		row, err := m.d.MetaByKey(ctx, msg.Route.Resource)
		switch {
		case err == nil:
			vals = append(vals, row.Value)
		case !errors.Is(err, db.ErrNotFound):
			m.fail(msg, reasonStore+err.Error())
			return
		}
	} else {
		rows, err := m.d.MetaByType(ctx, string(r.Kind))
		if err != nil {
			m.fail(msg, reasonStore+err.Error())
			return
		}
		for _, row := range rows {
			vals = append(vals, row.Value)
		}
	}
	resp := msg.Resp(queryResult(vals))
	resp.Route.Source = bus.ModuleMeta
	m.answer(msg, resp)
}

// answer sends resp for req: to the hub for a cloud request, else to the
// asker.
func (m *Meta) answer(req, resp bus.Message) {
	if m.fromCloud(req) {
		m.send(bus.ModuleHub, resp)
		return
	}
	m.reply(req, resp)
}

// remote runs a remote operation in its own goroutine (docs/protocol.md 3.2
// "remote query", 3.3 processRemote): at most Config.MaxRemote at once, none
// without a cloud.
//
// Identical queries (same resource and body) in flight at once share one
// request to the cloud: a real v1.23.1 cloudcore keeps one pending message
// per object on its way to the node (cloud/pkg/cloudhub/common/helper.go
// AckMessageKeyFunc keys by object UID), so of two answers about the same
// configmap queued together only the later reaches the node, and the other
// query waited for its timeout. Two pods created together that mount the
// same configmap did exactly that.
func (m *Meta) remote(ctx context.Context, msg bus.Message, r bus.Resource, isQuery bool) {
	if !m.connected.Load() {
		m.fail(msg, reasonNotConnected)
		return
	}
	key := ""
	if isQuery {
		key = msg.Route.Resource + "\x00" + string(msg.Content)
		if m.joinFlight(key, msg) {
			return
		}
	}
	select {
	case m.remoteSem <- struct{}{}:
	default:
		m.fail(msg, reasonBusy)
		for _, w := range m.endFlight(key) {
			m.fail(w, reasonBusy)
		}
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.remoteSem }()
		answer := m.doRemote(ctx, msg, r, isQuery)
		waiters := m.endFlight(key)
		if answer == nil {
			return // shutting down
		}
		answer(msg)
		for _, w := range waiters {
			answer(w)
		}
	}()
}

// joinFlight adds msg to the query in flight under key and reports true,
// or starts a flight under key and reports false.
func (m *Meta) joinFlight(key string, msg bus.Message) bool {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	if f, ok := m.flights[key]; ok {
		m.flights[key] = append(f, msg)
		return true
	}
	if m.flights == nil {
		m.flights = make(map[string][]bus.Message)
	}
	m.flights[key] = nil
	return false
}

// endFlight ends the flight under key and returns the queries that joined
// it. An empty key (not a query) has none.
func (m *Meta) endFlight(key string) []bus.Message {
	if key == "" {
		return nil
	}
	m.fmu.Lock()
	defer m.fmu.Unlock()
	w := m.flights[key]
	delete(m.flights, key)
	return w
}

// queryRetry is how long a remote query waits for the cloud's answer
// before it is sent again (within RemoteQueryTimeout): the cloud may drop
// an answer (see remote), and a query is safe to repeat.
const queryRetry = 5 * time.Second

// doRemote sends msg to the cloud under a new id and waits for the answer;
// stores what it carries; acknowledges it to the cloud; and returns how to
// answer the asker (and whoever joined its flight), with the asker's
// request id as parent; nil when ctx ended. A query the cloud does not
// answer is answered from the store if the row is there.
func (m *Meta) doRemote(ctx context.Context, msg bus.Message, r bus.Resource, isQuery bool) func(req bus.Message) {
	resp, err := m.sendRemote(ctx, msg, isQuery)
	if err != nil {
		if ctx.Err() != nil {
			return nil // shutting down
		}
		if isQuery {
			if _, lerr := m.d.MetaByKey(ctx, msg.Route.Resource); lerr == nil {
				m.log.Debug("remote query failed, answering from the store", "resource", msg.Route.Resource, "err", err)
				return func(req bus.Message) { m.queryLocal(ctx, req, r) }
			}
		}
		return func(req bus.Message) { m.fail(req, reasonRemote+err.Error()) }
	}
	m.out.Add(1)
	if resp.Route.Operation != bus.OpError {
		if err := m.storeResponse(ctx, msg.Route.Resource, r, resp.Content); err != nil {
			m.errs.Add(1)
			m.log.Warn("store remote answer", "resource", msg.Route.Resource, "err", err)
		}
	}
	if msg.Route.Operation == bus.OpDelete && r.Kind == bus.KindPod && bus.IsOK(resp.Content) {
		// The cloud deleted the pod: its rows go now rather than with
		// the cloud's delete, which a lost link may hold back; that
		// delete finds nothing left to remove.
		uid, _ := deleteUID(msg.Content)
		if err := m.deleteRows(ctx, msg.Route.Resource, r, uid); err != nil {
			m.errs.Add(1)
			m.log.Warn("delete the rows of a deleted pod", "resource", msg.Route.Resource, "err", err)
		}
	}
	if m.fromCloud(resp) {
		m.ack(resp)
	}
	return func(req bus.Message) {
		rr := resp
		rr.Header.ParentID = req.Header.ID
		m.reply(req, rr)
	}
}

// sendRemote sends msg to the cloud under a new id and waits up to
// RemoteQueryTimeout for the answer; a query is sent again under a new id
// every queryRetry.
func (m *Meta) sendRemote(ctx context.Context, msg bus.Message, isQuery bool) (bus.Message, error) {
	end := time.Now().Add(m.cfg.RemoteQueryTimeout)
	for {
		wait := time.Until(end)
		if isQuery && wait > queryRetry {
			wait = queryRetry
		}
		out := msg
		out.Header.ID = bus.NewID()
		resp, err := m.b.SendSync(ctx, bus.ModuleHub, out, wait)
		if err == nil || !isQuery || ctx.Err() != nil || time.Until(end) <= 0 || !m.connected.Load() {
			return resp, err
		}
		m.log.Debug("no answer to a remote query yet, asking again", "resource", msg.Route.Resource, "err", err)
	}
}
