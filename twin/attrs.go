package twin

import (
	"sort"

	"edgenode/db"
)

// dealAttrs applies requested attributes to dev (a clone in tx) and returns the
// changes for the updated topic: changed attributes, and null for removed ones
// (docs/protocol.md 5.2, DeviceUpdated). With REST a null removes an optional
// attribute; with sync every attribute absent from req is removed
// (docs/protocol.md 5.2, membership update of a known device). Attribute values
// are not type-checked (docs/protocol.md 7.2, EBUS_13).
func dealAttrs(tx *tx, dev *deviceState, req map[string]*msgAttr, dt dealType) map[string]*msgAttr {
	changes := map[string]*msgAttr{}
	keys := make([]string, 0, len(req))
	for k := range req {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		r, cur := req[key], dev.Attrs[key]
		switch {
		case r == nil && cur == nil:
		case r == nil:
			if dt == dealREST && !cur.Optional {
				continue
			}
			delete(dev.Attrs, key)
			tx.change.DeleteAttrs = append(tx.change.DeleteAttrs, db.DeviceKey{DeviceID: dev.ID, Name: key})
			changes[key] = nil
		case cur == nil:
			a := &attrState{Value: r.Value, Optional: true, Type: "string"}
			if r.Optional != nil {
				a.Optional = *r.Optional
			}
			if r.Metadata != nil {
				a.Type = r.Metadata.Type
			}
			dev.Attrs[key] = a
			tx.change.PutAttrs = append(tx.change.PutAttrs, attrRow(dev.ID, key, a))
			changes[key] = a.msg()
		default:
			a := *cur
			ch := &msgAttr{}
			changed := false
			if a.Value != r.Value {
				a.Value, ch.Value, changed = r.Value, r.Value, true
			}
			if r.Optional != nil && !*r.Optional && a.Optional {
				a.Optional, changed = false, true
				f := false
				ch.Optional = &f
			}
			if r.Metadata != nil && r.Metadata.Type != a.Type {
				a.Type, changed = r.Metadata.Type, true
				ch.Metadata = &typeMetadata{Type: a.Type}
			}
			if !changed {
				continue
			}
			dev.Attrs[key] = &a
			tx.change.PutAttrs = append(tx.change.PutAttrs, attrRow(dev.ID, key, &a))
			changes[key] = ch
		}
	}
	if dt != dealREST {
		for key := range dev.Attrs {
			if _, ok := req[key]; !ok {
				delete(dev.Attrs, key)
				tx.change.DeleteAttrs = append(tx.change.DeleteAttrs, db.DeviceKey{DeviceID: dev.ID, Name: key})
				changes[key] = nil
			}
		}
	}
	return changes
}
