package meta

import (
	"context"
	"errors"

	"edgenode/bus"
	"edgenode/db"
)

// remoteKinds are the kinds v1.23 always asks the cloud for while connected
// (spec 3.3); v0.3 asks only for configmaps and secrets missing locally
// (spec 3.2).
var remoteKinds = map[bus.Kind]bool{
	bus.KindConfigMap: true, bus.KindSecret: true, bus.KindPV: true, bus.KindPVC: true,
	bus.KindVolumeAttachment: true, bus.KindServiceAccountToken: true, bus.KindLease: true,
	bus.KindCSR: true, bus.KindKubeCA: true,
}

// query answers from the store, or asks the cloud first (spec 3.2, 3.3).
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
// metamanager (spec 3.2). No row is an empty array.
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

// remote runs a remote operation in its own goroutine (spec 3.2 "remote
// query", 3.3 processRemote): at most Config.MaxRemote at once, none
// without a cloud.
func (m *Meta) remote(ctx context.Context, msg bus.Message, r bus.Resource, isQuery bool) {
	if !m.connected.Load() {
		m.fail(msg, reasonNotConnected)
		return
	}
	select {
	case m.remoteSem <- struct{}{}:
	default:
		m.fail(msg, reasonBusy)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.remoteSem }()
		m.doRemote(ctx, msg, r, isQuery)
	}()
}

// doRemote sends msg to the cloud under a new id and waits for the answer;
// stores what it carries; acknowledges it to the cloud; and hands it to
// the asker with the asker's request id as parent. A query the cloud does
// not answer is answered from the store if the row is there.
func (m *Meta) doRemote(ctx context.Context, msg bus.Message, r bus.Resource, isQuery bool) {
	out := msg
	out.Header.ID = bus.NewID()
	resp, err := m.b.SendSync(ctx, bus.ModuleHub, out, m.cfg.RemoteQueryTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		if isQuery {
			if _, lerr := m.d.MetaByKey(ctx, msg.Route.Resource); lerr == nil {
				m.log.Debug("meta: remote query failed, answering from the store", "resource", msg.Route.Resource, "err", err)
				m.queryLocal(ctx, msg, r)
				return
			}
		}
		m.fail(msg, reasonRemote+err.Error())
		return
	}
	m.out.Add(1)
	if resp.Route.Operation != bus.OpError {
		if err := m.storeResponse(ctx, msg.Route.Resource, r, resp.Content); err != nil {
			m.errs.Add(1)
			m.log.Warn("meta: store remote answer", "resource", msg.Route.Resource, "err", err)
		}
	}
	if msg.Route.Operation == bus.OpDelete && r.Kind == bus.KindPod && bus.IsOK(resp.Content) {
		// The cloud deleted the pod: its rows go now rather than with
		// the cloud's delete, which a lost link may hold back; that
		// delete finds nothing left to remove.
		uid, _ := deleteUID(msg.Content)
		if err := m.deleteRows(ctx, msg.Route.Resource, r, uid); err != nil {
			m.errs.Add(1)
			m.log.Warn("meta: delete the rows of a deleted pod", "resource", msg.Route.Resource, "err", err)
		}
	}
	if m.fromCloud(resp) {
		m.ack(resp)
	}
	resp.Header.ParentID = msg.Header.ID
	m.reply(msg, resp)
}
