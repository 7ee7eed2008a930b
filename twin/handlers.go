package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"edgenode/bus"
)

// handleTwin is the twin worker: update, get, cloud sync (docs/protocol.md 5.2).
func (t *Twin) handleTwin(ctx context.Context, j job) {
	t.done(&j)
	switch j.act {
	case actTwinUpdate:
		t.twinUpdates(ctx, j)
	case actTwinGet:
		t.twinGet(j)
	case actTwinCloudSync:
		t.twinSync(ctx, j)
	}
}

// checkRequest answers a request that cannot be read on its result topic
// and reports whether it may go on.
func (t *Twin) checkRequest(j job, resultTopic string) bool {
	switch {
	case j.err != nil:
		t.publishError(resultTopic, "", codeBadRequest, j.err.Error())
	case len(j.payload) > t.cfg.MaxPayload:
		t.publishError(resultTopic, "", codeBadRequest, ErrTooLarge.Error())
	default:
		return true
	}
	return false
}

// maxBatch bounds the twin updates committed in one transaction.
const maxBatch = 64

// update is one twin update request of a batch.
type update struct {
	topic   string
	eventID string
	code    int    // an error result, or 0
	reason  string // of the error result
	out     twinOutcome
	now     int64
}

// twinUpdates handles the update j together with the updates queued
// behind it, in one transaction: one fsync for the batch (group commit).
// Each request keeps its own result, in order; a request that fails
// leaves no trace in the transaction. A job of another kind ends the
// batch and is handled after it.
//
// When the queue is empty the worker gives way (yield) and looks again,
// as long as the last time brought more: updates a client sent together
// may still be in the broker's hands. Go code runs on one thread by
// default (runtime.maxProcs), and the broker's client goroutine gives way
// itself every 16 messages (mqtt pace), so without this a client's 32
// updates in flight were committed in two transactions of 16, each
// waiting for its own fsync: 16.3 updates a commit in BenchmarkEndToEnd/32
// with GOMAXPROCS=1, 31.7 with it, and the rate up by about a fifth. A
// lone update loses one yield with nothing else to run, which returns at
// once.
func (t *Twin) twinUpdates(ctx context.Context, j job) {
	// Pointers: a job holds a whole bus.Message (392 bytes on 64-bit). The
	// slices are the worker's, kept from batch to batch (batchJobs,
	// batchUps).
	jobs := append(t.batchJobs[:0], t.jobs.get(j))
	var next *job
	looked := 0 // len(jobs) when the worker last gave way
	for next == nil && len(jobs) < maxBatch {
		select {
		case j2 := <-t.twin.inbox:
			if j2.act == actTwinUpdate && j2.done == nil {
				t.done(j2)
				jobs = append(jobs, j2)
			} else {
				next = j2
			}
			continue
		default:
		}
		if len(jobs) == looked {
			break
		}
		looked = len(jobs)
		t.yield()
	}
	tx := t.store.begin()
	ups := slices.Grow(t.batchUps[:0], len(jobs))[:len(jobs)]
	var dev batchDevice
	for i, j := range jobs {
		ups[i] = t.stageUpdate(tx, *j, &dev)
	}
	if tx.change.Empty() {
		tx.abort()
	} else if err := tx.commit(ctx); err == nil {
		t.stats.commits.Add(1)
		t.stats.committed.Add(uint64(len(jobs)))
	} else {
		t.log.Error("twin update", "err", err, "requests", len(jobs))
		for i := range ups {
			if ups[i].code == 0 {
				ups[i].code, ups[i].reason = codeInternal, "twin: could not store the update"
			}
		}
	}
	var reports batchReports
	for i, u := range ups {
		if u.code != 0 {
			t.publishError(u.topic, u.eventID, u.code, u.reason)
			t.answer(*jobs[i], u.code, u.reason)
			continue
		}
		t.publish(u.topic, twinMessage{baseMessage: baseMessage{EventID: u.eventID, Timestamp: u.now}, Twin: u.out.result})
		t.answer(*jobs[i], codeOK, "")
		t.publishAfter(jobs[i].id, u.eventID, u.out, u.now)
		reports.add(jobs[i].id, u.out.toCloud, u.now)
	}
	for _, r := range reports {
		t.reportToCloud(r.id, r.twins, r.now)
	}
	for _, p := range jobs {
		t.jobs.put(p)
	}
	clear(jobs) // nothing kept alive by the slices till the next batch
	clear(ups)
	t.batchJobs, t.batchUps = jobs[:0], ups[:0]
	if next != nil {
		t.handleTwin(ctx, *next)
		if next.done != nil {
			close(next.done)
		}
		t.jobs.put(next)
	}
}

// batchDevice is what the updates of one device in a batch share,
// worked out for the first of them: their result topic, and what they
// build besides the result (wants). A batch is mostly updates of one
// device, each of which made both anew.
type batchDevice struct {
	id     string
	result string
	wants  outputs
}

// of returns d for device id, worked out again if d is another device's.
func (d *batchDevice) of(t *Twin, id string) *batchDevice {
	if d.result == "" || d.id != id {
		*d = batchDevice{id: id, result: deviceTopic(id, sufTwinUpdate+sufResult), wants: t.wants(id)}
	}
	return d
}

// stageUpdate checks one update request and stages its change in tx; dev
// is the batch's (twinUpdates).
func (t *Twin) stageUpdate(tx *tx, j job, dev *batchDevice) update {
	u := update{code: codeBadRequest, now: t.nowMS()}
	if j.err != nil {
		u.topic = j.topic + sufResult
		u.reason = j.err.Error()
		return u
	}
	dev = dev.of(t, j.id)
	u.topic = dev.result
	if len(j.payload) > t.cfg.MaxPayload {
		u.reason = ErrTooLarge.Error()
		return u
	}
	req, err := decodeTwinUpdate(j.payload, t.cfg.Era)
	u.eventID = req.EventID
	if err != nil {
		u.reason = err.Error()
		return u
	}
	d := tx.edit(j.id)
	if d == nil {
		u.code, u.reason = codeNotFound, "Update rejected due to the device is not existed"
		if t.cfg.Era != bus.EraV03 {
			u.reason = "update rejected due to the device is not existed"
		}
		return u
	}
	u.out, err = dealTwins(tx, t.cfg.Era, d, req.Twin, dealREST, dev.wants, u.now)
	if err != nil {
		// Nothing of the request is kept (docs/protocol.md 5.4): dealTwins
		// changed nothing.
		u.reason = err.Error()
		return u
	}
	u.code = 0
	return u
}

// wants returns what a twin change of device id is to build besides its
// result: the document and the delta if a client subscribes to them. A
// client that subscribes between the change and its commit misses that
// change's document or delta, as one that subscribes just after it does.
func (t *Twin) wants(id string) outputs {
	var w outputs
	if t.subscribed(deviceTopic(id, sufDocument)) {
		w |= withDocument
	}
	if t.subscribed(deviceTopic(id, sufDelta)) {
		w |= withDelta
	}
	return w
}

// twinAfter publishes the document and delta of a committed twin change and
// sends accepted or rejected twins to the cloud (docs/protocol.md 5.2, 5.4).
// The document and delta are there only when a client subscribed to them
// as the change was dealt (wants): KubeEdge publishes both at every change
// (edge/pkg/devicetwin/dtmanager/twin.go, v1.23), and on a small board they
// cost more than the result the app waits for.
func (t *Twin) twinAfter(id, eventID string, out twinOutcome, now int64) {
	t.publishAfter(id, eventID, out, now)
	t.reportToCloud(id, out.toCloud, now)
}

// publishAfter publishes the document and delta of a committed twin
// change, if it has them (twinAfter).
func (t *Twin) publishAfter(id, eventID string, out twinOutcome, now int64) {
	if len(out.document) > 0 {
		t.publish(deviceTopic(id, sufDocument), twinDocument{baseMessage: baseMessage{EventID: eventID, Timestamp: now}, Twin: out.document})
	}
	if out.delta != nil {
		out.delta.EventID = t.newID()
		t.publish(deviceTopic(id, sufDelta), out.delta)
	}
}

// reportToCloud queues the edge_updated report of device id's twins for
// the cloud, if there is any.
func (t *Twin) reportToCloud(id string, twins map[string]*msgTwin, now int64) {
	if len(twins) == 0 {
		return
	}
	m := &twinMessage{baseMessage: baseMessage{EventID: t.newID(), Timestamp: now}, Twin: twins}
	t.queue(t.com, job{act: actSendToCloud, twins: m, msg: bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate,
		twinReportResource(id), nil)})
}

// twinReportResource is the resource of device id's twin reports to the
// cloud, device/<id>/twin/edge_updated, and their key (reportKey).
func twinReportResource(id string) string {
	return string(bus.KindDevice) + "/" + id + "/" + bus.ResTwinEdgeUpdated
}

// batchReports gathers the cloud reports of one group commit, one per
// device, each merged as the communication worker merges a device's
// reports that wait (merge.go): a batch of updates to a device becomes
// one report, and one job for that worker, instead of one each.
type batchReports []batchReport

type batchReport struct {
	id    string
	twins map[string]*msgTwin // owned: the first update's map, the later merged in
	now   int64
}

// add merges one committed update's report of device id into the batch.
// twins, the update's own map, is taken over.
func (b *batchReports) add(id string, twins map[string]*msgTwin, now int64) {
	if len(twins) == 0 {
		return
	}
	for i := range *b {
		r := &(*b)[i]
		if r.id == id {
			dst := twinMessage{Twin: r.twins}
			mergeTwins(&dst, &twinMessage{Twin: twins}, true)
			r.now = now
			return
		}
	}
	*b = append(*b, batchReport{id: id, twins: twins, now: now})
}

func (t *Twin) twinGet(j job) {
	topic := deviceTopic(j.id, sufTwinGet+sufResult)
	if j.err != nil {
		topic = j.topic + sufResult
	}
	if !t.checkRequest(j, topic) {
		return
	}
	var req baseMessage
	if err := decode(j.payload, &req); err != nil {
		t.publishError(topic, "", codeBadRequest, err.Error())
		return
	}
	dev := t.store.device(j.id)
	if dev == nil {
		t.publishError(topic, req.EventID, codeNotFound, fmt.Sprintf("Device %s not found while getting twin", j.id))
		return
	}
	twins := map[string]*msgTwin{}
	for k, tw := range dev.Twins {
		if !tw.deleted() {
			twins[k] = tw.msg(t.cfg.Era, false)
		}
	}
	t.publish(topic, twinMessage{baseMessage: baseMessage{EventID: req.EventID, Timestamp: t.nowMS()}, Twin: twins})
}

// twinSync applies a cloud_updated twin sync (docs/protocol.md 5.2): no result
// topic; rejected keys are echoed to the cloud.
func (t *Twin) twinSync(ctx context.Context, j job) {
	var req twinMessage
	if j.err != nil || len(j.payload) > t.cfg.MaxPayload || decode(j.payload, &req) != nil {
		t.stats.dropped.Add(1)
		return
	}
	tx, dev := t.editDevice(j.id)
	if dev == nil {
		return
	}
	now := t.nowMS()
	out, _ := dealTwins(tx, t.cfg.Era, dev, req.Twin, dealSync, t.wants(j.id), now)
	if err := tx.commit(ctx); err != nil {
		t.log.Error("twin sync", "device", j.id, "err", err)
		return
	}
	t.twinAfter(j.id, req.EventID, out, now)
}

// handleDevice is the device worker: state and attribute updates.
func (t *Twin) handleDevice(ctx context.Context, j job) {
	t.done(&j)
	switch j.act {
	case actStateUpdate:
		t.stateUpdate(ctx, j)
	case actDeviceUpdated:
		t.deviceUpdated(ctx, j)
	}
}

// answer tells the sender of a sync request (a mapper's report through
// dmi) how it ended, once it is committed or refused: as with the MQTT
// result, the answer never comes before the commit. Requests nobody waits
// for (MQTT) get none.
func (t *Twin) answer(j job, code int, reason string) {
	if !j.msg.Header.Sync || !t.bus.IsWaiting(j.msg.Header.ID) {
		return
	}
	b, _ := json.Marshal(SyncResult{Code: code, Reason: reason})
	t.bus.SendResp(j.msg.Resp(b))
}

// SyncResult is twin's answer to a sync request: Code as in the MQTT
// results (200, or the error code), Reason for an error.
type SyncResult struct {
	Code   int    `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// stateOK reports whether s is a device state of the era (docs/protocol.md 5.2).
func stateOK(era bus.Era, s string) bool {
	if era == bus.EraV03 {
		return s == "online" || s == "offline" || s == "unknown"
	}
	switch strings.ToLower(s) {
	case "online", "offline", "ok", "unknown", "unhealthy":
		return true
	}
	return false
}

// stateUpdate handles .../state/update. KubeEdge publishes nothing for a
// bad request, so those are counted drops (docs/protocol.md 5.2).
func (t *Twin) stateUpdate(ctx context.Context, j job) {
	var req deviceUpdate
	if j.err != nil || len(j.payload) > t.cfg.MaxPayload || decode(j.payload, &req) != nil ||
		!stateOK(t.cfg.Era, req.State) {
		t.stats.dropped.Add(1)
		t.answer(j, codeBadRequest, "bad state update")
		return
	}
	tx, dev := t.editDevice(j.id)
	if dev == nil {
		t.answer(j, codeNotFound, "no such device")
		return
	}
	now := t.now()
	dev.State = req.State
	res := stateResult{baseMessage: baseMessage{EventID: t.newID(), Timestamp: now.UnixMilli()}}
	resource := string(bus.KindDevice) + "/" + j.id + "/"
	if t.cfg.Era == bus.EraV03 {
		dev.LastOnline = now.Format(time.DateTime)
		res.Device = stateDeviceV03{Name: dev.Name, State: dev.State, LastOnline: dev.LastOnline}
		resource += bus.ResDeviceState
	} else {
		dev.LastOnline = ""
		if s := strings.ToLower(req.State); s == "online" || s == "ok" {
			dev.LastOnline = now.UTC().Format(time.RFC3339)
		}
		res.Device = stateDeviceV123{Name: dev.Name, State: dev.State, LastOnlineTime: dev.LastOnline}
		resource += bus.ResDeviceStateV123
	}
	tx.change.PutDevices = append(tx.change.PutDevices, dev.row())
	if err := tx.commit(ctx); err != nil {
		t.log.Error("state update", "device", j.id, "err", err)
		t.answer(j, codeInternal, "could not store the state")
		return
	}
	t.answer(j, codeOK, "")
	b, _ := json.Marshal(res)
	t.publish(deviceTopic(j.id, sufStateUpdate+sufResult), json.RawMessage(b))
	t.toCloud(resource, bus.JSONString(string(b)))
}

// deviceUpdated applies attribute changes (cloud "updated" on device/<id>
// or the .../updated topic) and publishes them on .../updated.
func (t *Twin) deviceUpdated(ctx context.Context, j job) {
	var req deviceUpdate
	if j.err != nil || len(j.payload) > t.cfg.MaxPayload || decode(j.payload, &req) != nil {
		t.stats.dropped.Add(1)
		return
	}
	tx, dev := t.editDevice(j.id)
	if dev == nil {
		return
	}
	changes := dealAttrs(tx, dev, req.Attributes, dealREST)
	if len(changes) == 0 {
		tx.abort()
		return
	}
	if err := tx.commit(ctx); err != nil {
		t.log.Error("device update", "device", j.id, "err", err)
		return
	}
	t.publish(deviceTopic(j.id, sufUpdated),
		attrUpdated{baseMessage: baseMessage{EventID: req.EventID, Timestamp: t.nowMS()}, Attributes: changes})
}

// editDevice begins a change of device id. For a device the node does not
// know it counts a drop and returns a nil device, with nothing begun.
func (t *Twin) editDevice(id string) (*tx, *deviceState) {
	tx := t.store.begin()
	dev := tx.edit(id)
	if dev == nil {
		tx.abort()
		t.stats.dropped.Add(1)
		return nil, nil
	}
	return tx, dev
}
