package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"edgenode/bus"
)

// handleMembership is the membership worker: get, update, detail.
func (t *Twin) handleMembership(ctx context.Context, j job) {
	t.done(&j)
	switch j.act {
	case actMemGet:
		t.memGet(j)
	case actMemUpdated:
		var req membershipUpdate
		if len(j.payload) > t.cfg.MaxPayload*16 || decode(j.payload, &req) != nil {
			t.stats.dropped.Add(1)
			return
		}
		if err := t.applyMembership(ctx, req.EventID, req.Added, req.Removed, false, dealSync); err != nil {
			t.log.Error("membership update", "err", err)
		}
	case actMemDetail:
		var req membershipList
		if len(j.payload) > t.cfg.MaxPayload*16 || decode(j.payload, &req) != nil {
			t.stats.dropped.Add(1)
			return
		}
		if err := t.applyMembership(ctx, req.EventID, req.Devices, nil, true, dealSync); err != nil {
			t.log.Error("membership detail", "err", err)
		}
	}
}

// memGet answers $hw/events/node/<any>/membership/get on the configured
// node's result topic (docs/protocol.md 5.2).
func (t *Twin) memGet(j job) {
	topic := nodeTopic(t.cfg.NodeName, sufMemGet+sufResult)
	if !t.checkRequest(j, topic) {
		return
	}
	var req baseMessage
	if err := decode(j.payload, &req); err != nil {
		t.publishError(topic, "", codeBadRequest, err.Error())
		return
	}
	res := membershipList{baseMessage: baseMessage{EventID: req.EventID, Timestamp: t.nowMS()}, Devices: []wireDevice{}}
	for _, d := range t.store.list() {
		res.Devices = append(res.Devices, d.wire())
	}
	t.publish(topic, res)
}

// memChange is what a membership change staged, to publish once it is
// committed.
type memChange struct {
	added, removed []wireDevice                   // for membership/updated
	attrs          map[string]map[string]*msgAttr // attribute changes of known devices
	twins          map[string]twinOutcome
}

// applyMembership adds and removes devices in one transaction (docs/protocol.md
// 5.2). With detail, every known device that is not in added is removed.
func (t *Twin) applyMembership(ctx context.Context, eventID string, added, removed []wireDevice, detail bool, dt dealType) error {
	now := t.nowMS()
	tx := t.store.begin()
	mc := memChange{attrs: map[string]map[string]*msgAttr{}, twins: map[string]twinOutcome{}}
	listed := map[string]bool{}
	for _, w := range added {
		if checkID(w.ID, 2) != nil {
			continue
		}
		listed[w.ID] = true
		t.stageDevice(tx, &mc, w, dt, now)
	}
	for _, w := range removed {
		if !listed[w.ID] && tx.edit(w.ID) != nil {
			tx.remove(w.ID)
			mc.removed = append(mc.removed, w)
		}
	}
	if detail {
		for _, d := range t.store.list() {
			if !listed[d.ID] {
				tx.remove(d.ID)
				mc.removed = append(mc.removed, wireDevice{ID: d.ID, Name: d.Name, Description: d.Description})
			}
		}
	}
	if tx.change.Empty() {
		tx.abort()
		t.echo(mc.twins, now)
		return nil
	}
	if err := tx.commit(ctx); err != nil {
		return err
	}
	t.publishMembership(eventID, mc, now)
	return nil
}

// stageDevice stages one listed device: a new one is added, a known one
// gets its attributes and twins synced.
func (t *Twin) stageDevice(tx *tx, mc *memChange, w wireDevice, dt dealType, now int64) {
	dev := tx.edit(w.ID)
	if dev == nil {
		dev = &deviceState{ID: w.ID, Name: w.Name, Description: w.Description, State: w.State,
			Attrs: map[string]*attrState{}, Twins: map[string]*twinState{}}
		tx.add(dev)
		dealAttrs(tx, dev, w.Attributes, dt)
		mc.added = append(mc.added, announce(t.cfg.Era, w))
	} else {
		if w.Name != "" && w.Name != dev.Name || w.Description != "" && w.Description != dev.Description {
			dev.Name, dev.Description = w.Name, w.Description
			tx.change.PutDevices = append(tx.change.PutDevices, dev.row())
		}
		if ch := dealAttrs(tx, dev, w.Attributes, dt); len(ch) > 0 {
			mc.attrs[w.ID] = ch
		}
	}
	// A sync never fails as a whole; membership changes publish no
	// document (publishMembership).
	out, _ := dealTwins(tx, t.cfg.Era, dev, w.Twin, dt, t.wants(w.ID)&^withDocument, now)
	mc.twins[w.ID] = out
}

// publishMembership publishes a committed membership change:
// membership/updated, attribute changes, deltas and echoes to the cloud.
func (t *Twin) publishMembership(eventID string, mc memChange, now int64) {
	node := nodeTopic(t.cfg.NodeName, sufMemUpdated)
	if len(mc.added) > 0 {
		t.publish(node, membershipUpdate{baseMessage: baseMessage{EventID: t.newID(), Timestamp: now}, Added: mc.added})
	}
	if len(mc.removed) > 0 {
		t.comm.forgetDevices(mc.removed)
		t.publish(node, membershipUpdate{baseMessage: baseMessage{EventID: t.newID(), Timestamp: now}, Removed: mc.removed})
	}
	for _, id := range sortedKeys(mc.attrs) {
		// event_id is empty when a membership update changed attributes.
		t.publish(deviceTopic(id, sufUpdated), attrUpdated{baseMessage: baseMessage{Timestamp: now}, Attributes: mc.attrs[id]})
	}
	for _, id := range sortedKeys(mc.twins) {
		t.twinAfter(id, eventID, mc.twins[id], now)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// echo sends rejected twins to the cloud when nothing else changed.
func (t *Twin) echo(outcomes map[string]twinOutcome, now int64) {
	for id, out := range outcomes {
		if len(out.toCloud) > 0 {
			t.twinAfter(id, "", twinOutcome{toCloud: out.toCloud}, now)
		}
	}
}

// announce is a device as membership/updated reports it: as received, with
// versions removed and deleted twins as null (docs/protocol.md 5.2).
func announce(era bus.Era, w wireDevice) wireDevice {
	if w.Twin == nil {
		return w
	}
	tw := make(map[string]*msgTwin, len(w.Twin))
	for k, v := range w.Twin {
		if v == nil || v.Metadata != nil && v.Metadata.Type == typeDeleted {
			tw[k] = nil
			continue
		}
		c := *v
		c.ExpectedVersion, c.ActualVersion, c.era = nil, nil, era
		tw[k] = &c
	}
	w.Twin = tw
	return w
}

// applyLocal applies the device files of Config.DevicesDir (*.json in
// the membership update shape) as a membership update that needs no
// cloud. Twins in them may leave out versions ({0,0} is assumed), so a
// value an app has updated since is not overwritten at the next start.
func (t *Twin) applyLocal(ctx context.Context) error {
	dir := t.cfg.devicesDir()
	if dir == "" {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return fmt.Errorf("twin: local devices: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("twin: local devices: %w", err)
		}
		var req membershipUpdate
		if err := json.Unmarshal(b, &req); err != nil {
			return fmt.Errorf("twin: local devices: %s: %w", f, err)
		}
		for _, d := range req.Added {
			if err := checkID(d.ID, 2); err != nil {
				return fmt.Errorf("twin: local devices: %s: device id %q: %w", f, d.ID, err)
			}
		}
		if err := t.applyMembership(ctx, req.EventID, req.Added, req.Removed, false, dealLocal); err != nil {
			return fmt.Errorf("twin: local devices: %s: %w", f, err)
		}
	}
	return nil
}
