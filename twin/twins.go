package twin

import (
	"fmt"
	"slices"
	"strconv"

	"edgenode/bus"
)

// dealType says where a twin change comes from (docs/protocol.md 5.4).
type dealType uint8

const (
	dealREST  dealType = iota // an app over MQTT: edge versions bump
	dealSync                  // the cloud: versions must be carried and not older
	dealLocal                 // a local device file: sync rules, a missing version counts as {0,0}
)

// twinOutcome is what a twin change produced besides the rows.
type twinOutcome struct {
	result   map[string]*msgTwin // update/result entries (REST)
	document map[string]*twinDoc // update/document entries
	toCloud  map[string]*msgTwin // edge_updated entries: accepted REST changes, rejected sync sides
	changed  bool                // a twin value, type or optional changed
	delta    *twinDelta          // the device's delta after the change, if any (event_id set on publish)
}

// outputs says which payloads besides the result and the cloud's share a
// deal builds: the document and the delta go only to clients that
// subscribe to them (twinAfter), so they are built only for them.
type outputs uint8

const (
	withDocument outputs = 1 << iota
	withDelta
	withAll = withDocument | withDelta
)

// checkValue checks v against a twin type (docs/protocol.md 5.2). Unknown types
// are rejected; "integer" exists from v1.23.
func checkValue(era bus.Era, typ, v string) error {
	var err error
	switch typ {
	case "", "string", typeDeleted:
	case "integer":
		if era == bus.EraV03 {
			return fmt.Errorf("%w: type %q unknown", ErrBadType, typ)
		}
		_, err = strconv.ParseInt(v, 10, 64)
	case "int":
		_, err = strconv.ParseInt(v, 10, 64)
	case "float":
		_, err = strconv.ParseFloat(v, 64)
	case "boolean":
		if v != "true" && v != "false" {
			err = strconv.ErrSyntax
		}
	default:
		return fmt.Errorf("%w: type %q unknown", ErrBadType, typ)
	}
	if err != nil {
		return fmt.Errorf("%w: %q is not %s", ErrBadType, v, typ)
	}
	return nil
}

// sideVersion computes the new version of one side (docs/protocol.md 5.4). ok
// is false when a sync must be rejected.
func sideVersion(dt dealType, stored, req *twinVersion) (v twinVersion, ok bool) {
	if stored != nil {
		v = *stored
	}
	switch dt {
	case dealREST:
		v.Edge++
		return v, true
	case dealLocal:
		if req == nil {
			req = &twinVersion{}
		}
	}
	if req == nil || v.Cloud > req.Cloud || v.Edge > req.Edge {
		return v, false
	}
	return *req, true
}

// dealTwins applies the requested twins to dev (a clone in tx). A REST
// request with a value of the wrong type fails as a whole (400), leaving
// dev and tx untouched; a sync skips that key.
func dealTwins(tx *tx, era bus.Era, dev *deviceState, req map[string]*msgTwin, dt dealType, want outputs, now int64) (twinOutcome, error) {
	out := twinOutcome{result: map[string]*msgTwin{}, toCloud: map[string]*msgTwin{}}
	if want&withDocument != 0 {
		out.document = map[string]*twinDoc{}
	}
	var kb [4]string
	keys := kb[:0]
	for k := range req {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// The new twins go into dev only once every key is dealt with, so a
	// request that fails leaves dev as it was, with no copy kept to undo.
	type staged struct {
		key string
		t   *twinState
	}
	var buf [4]staged
	nts := buf[:0]
	for _, key := range keys {
		r, cur := req[key], dev.Twins[key]
		var nt *twinState
		var err error
		switch {
		case r == nil || (r.Metadata != nil && r.Metadata.Type == typeDeleted):
			nt = dealDelete(&out, era, key, cur, r, dt)
		case cur == nil || cur.deleted():
			nt, err = dealAdd(&out, era, key, cur, r, dt, now)
		default:
			nt, err = dealCompare(&out, era, key, cur, r, dt, now)
		}
		if err != nil {
			return out, err
		}
		if nt != nil {
			nts = append(nts, staged{key, nt})
		}
	}
	for _, s := range nts {
		dev.Twins[s.key] = s.t
		tx.putTwin(dev.ID, s.key, s.t)
	}
	// The delta is taken now, from this change's result: a later change
	// in the same transaction must not show in it (docs/protocol.md 5.2).
	if out.changed && want&withDelta != 0 {
		if d, ok := delta(era, dev, now); ok {
			out.delta = &d
		}
	}
	return out, nil
}

// dealDelete tombstones a twin: REST only when it is optional, sync when
// the carried versions are not older (docs/protocol.md 5.4).
func dealDelete(out *twinOutcome, era bus.Era, key string, cur *twinState, r *msgTwin, dt dealType) *twinState {
	if cur == nil || cur.deleted() {
		return nil
	}
	nt := cur.clone()
	if dt == dealREST {
		if !cur.Optional {
			return nil
		}
		for _, v := range []**twinVersion{&nt.ExpVer, &nt.ActVer} {
			if *v == nil {
				// Only a side that has a version is bumped; one never set
				// keeps its empty column (KubeEdge dtmanager/twin.go,
				// dealTwinDelete; docs/protocol.md 5.4).
				continue
			}
			nv, _ := sideVersion(dt, *v, nil)
			*v = &nv
		}
	} else if r != nil {
		for _, s := range []struct{ stored, req **twinVersion }{{&nt.ExpVer, &r.ExpectedVersion}, {&nt.ActVer, &r.ActualVersion}} {
			if *s.req == nil {
				continue // a delete without a version is accepted
			}
			nv, ok := sideVersion(dealSync, *s.stored, *s.req)
			if !ok {
				out.toCloud[key] = cur.msg(era, true)
				return nil
			}
			*s.stored = &nv
		}
	}
	nt.Expected, nt.Actual, nt.Type = nil, nil, typeDeleted
	if out.document != nil {
		out.document[key] = &twinDoc{Last: cur.msg(era, false)}
	}
	if dt == dealREST {
		if r == nil {
			out.result[key] = nil // a twin deleted by type is left out
		}
		out.toCloud[key] = nt.msg(era, true)
	}
	out.changed = true
	return nt
}

// dealAdd adds a new twin or revives a tombstone.
func dealAdd(out *twinOutcome, era bus.Era, key string, cur *twinState, r *msgTwin, dt dealType, now int64) (*twinState, error) {
	var b *stateBlock
	if cur != nil {
		b = cur.cloneBlock() // a tombstone revived
	} else {
		b = &stateBlock{t: twinState{Optional: true}}
	}
	nt := &b.t
	nt.Type = "string"
	if r.Metadata != nil && r.Metadata.Type != "" {
		nt.Type = r.Metadata.Type
	}
	d := &dealBlock{}
	res, up := d.entries(era) // up: the sides set, with their versions
	sides := twinSides(r, b, d)
	for _, s := range sides {
		if s.req == nil || s.req.Value == nil {
			continue
		}
		v, ok := sideVersion(dt, *s.ver, s.reqVer)
		if !ok {
			if cur != nil {
				out.toCloud[key] = cur.msg(era, true)
			}
			return nil, nil // a new twin whose side is rejected is not added
		}
		if err := checkValue(era, nt.Type, *s.req.Value); err != nil {
			if dt == dealREST {
				return nil, fmt.Errorf("twin %q: %w", key, err)
			}
			return nil, nil
		}
		s.set(*s.req.Value, v, now)
	}
	if r.Optional != nil && (cur == nil || nt.Optional) {
		nt.Optional = *r.Optional
	}
	d.opt, d.typ = nt.Optional, typeMetadata{Type: nt.Type}
	res.Optional, res.Metadata = &d.opt, &d.typ
	if out.document != nil {
		out.document[key] = &twinDoc{Current: nt.msg(era, false)}
	}
	if dt == dealREST {
		out.result[key] = res
		// A revived tombstone keeps the version of a side the request
		// does not set; the cloud gets only the sides set, as for any
		// existing twin (dealTwinCompare).
		up.Optional, up.Metadata = res.Optional, res.Metadata
		out.toCloud[key] = up
	}
	out.changed = true
	return nt, nil
}

// dealCompare updates an existing twin side by side (docs/protocol.md 5.4).
// Every side present in the request counts as a change, also when it holds the
// value the twin already has: the value gets a new timestamp, its version moves
// on, and a REST request gets a result, a document and an edge_updated entry
// (KubeEdge dtmanager/twin.go, isTwinValueDiff and dealTwinCompare, v0.3.0 and
// v1.23.1). Device files are the exception: an unchanged side of a file read
// again at start is left alone.
func dealCompare(out *twinOutcome, era bus.Era, key string, cur *twinState, r *msgTwin, dt dealType, now int64) (*twinState, error) {
	b := cur.cloneBlock()
	nt := &b.t
	d := &dealBlock{}
	res, up := d.entries(era) // the sides in the request; up: with their versions
	changed := false
	sides := twinSides(r, b, d)
	for _, s := range sides {
		if s.req == nil || s.req.Value == nil {
			continue
		}
		v, ok := sideVersion(dt, *s.ver, s.reqVer)
		if !ok {
			// Rejected: echo the edge's twin to the cloud, stop this key.
			out.toCloud[key] = cur.msg(era, true)
			return nil, nil
		}
		if err := checkValue(era, cur.Type, *s.req.Value); err != nil {
			if dt == dealREST {
				return nil, fmt.Errorf("twin %q: %w", key, err)
			}
			return nil, nil
		}
		if dt == dealLocal && *s.val != nil && (*s.val).V == *s.req.Value && *s.ver != nil && **s.ver == v {
			// A device file read again at start is no new request: an
			// unchanged side keeps its row and publishes nothing.
			continue
		}
		s.set(*s.req.Value, v, now)
		changed = true
	}
	if r.Optional != nil && !*r.Optional && cur.Optional {
		nt.Optional = false // optional only goes from true to false
		changed = true
	}
	if r.Metadata != nil && r.Metadata.Type != "" && r.Metadata.Type != cur.Type {
		nt.Type = r.Metadata.Type
		changed = true
	}
	if !changed {
		return nil, nil
	}
	d.opt, d.typ = nt.Optional, typeMetadata{Type: nt.Type}
	res.Optional, res.Metadata = &d.opt, &d.typ
	if out.document != nil {
		out.document[key] = &twinDoc{Last: cur.msg(era, false), Current: nt.msg(era, false)}
	}
	if dt == dealREST {
		out.result[key] = res
		// The cloud gets the sides of the request, optional and metadata;
		// an untouched side stays out (dealTwinCompare's sync result).
		up.Optional, up.Metadata = res.Optional, res.Metadata
		out.toCloud[key] = up
	}
	out.changed = true
	return nt, nil
}

// delta returns the twin/update/delta payload of dev, or false when no twin has
// an expected value that differs from the actual (docs/protocol.md 5.2).
func delta(era bus.Era, dev *deviceState, now int64) (twinDelta, bool) {
	d := twinDelta{baseMessage: baseMessage{Timestamp: now},
		Twin: map[string]*msgTwin{}, Delta: map[string]string{}}
	for k, t := range dev.Twins {
		if t.deleted() || t.Expected == nil {
			continue
		}
		exp := t.Expected.V
		if era == bus.EraV03 {
			d.Twin[k] = t.msg(era, false)
			if (t.Actual != nil && t.Actual.V != exp) || (t.Actual == nil && exp != "") {
				d.Delta[k] = exp
			}
			continue
		}
		if exp == "" {
			continue
		}
		d.Twin[k] = t.msg(era, false)
		if t.Actual == nil || t.Actual.V != exp {
			d.Delta[k] = exp
		}
	}
	return d, len(d.Delta) > 0
}

// twinSide ties one side (expected or actual) of a request to the new
// state's value and version, to the result and edge_updated entries, and
// to the room for them in the twin's and the deal's blocks.
type twinSide struct {
	req    *twinValue
	reqVer *twinVersion
	val    **value
	ver    **twinVersion
	res    **twinValue
	up     **twinValue
	upVer  **twinVersion

	valAt  *value       // room for *val (stateBlock)
	verAt  *twinVersion // room for *ver (stateBlock)
	tvAt   *twinValue   // room for *res and *up (dealBlock)
	metaAt *valueMetadata
	upAt   *twinVersion // room for *upVer (dealBlock)
}

// set gives the side value v at version ver, stamped now, in the new
// state and in both entries.
func (s twinSide) set(v string, ver twinVersion, now int64) {
	*s.valAt, *s.verAt = value{V: v, TS: now}, ver
	*s.val, *s.ver = s.valAt, s.verAt
	*s.metaAt = valueMetadata{Timestamp: now}
	*s.tvAt = twinValue{Value: s.req.Value, Metadata: s.metaAt}
	*s.res, *s.up = s.tvAt, s.tvAt
	*s.upAt = ver
	*s.upVer = s.upAt
}

// dealBlock holds a deal's result and edge_updated entries of one twin
// and everything they point to, in one allocation.
type dealBlock struct {
	res, up msgTwin
	tv      [2]twinValue
	meta    [2]valueMetadata
	upVer   [2]twinVersion
	opt     bool
	typ     typeMetadata
}

// entries returns the block's result and edge_updated entries, for era.
func (d *dealBlock) entries(era bus.Era) (res, up *msgTwin) {
	d.res.era, d.up.era = era, era
	return &d.res, &d.up
}

// twinSides returns the expected and the actual side, in that order, of
// request r, the new state in b and the entries in d.
func twinSides(r *msgTwin, b *stateBlock, d *dealBlock) [2]twinSide {
	nt, res, up := &b.t, &d.res, &d.up
	return [2]twinSide{
		{r.Expected, r.ExpectedVersion, &nt.Expected, &nt.ExpVer, &res.Expected, &up.Expected, &up.ExpectedVersion,
			&b.exp, &b.ev, &d.tv[0], &d.meta[0], &d.upVer[0]},
		{r.Actual, r.ActualVersion, &nt.Actual, &nt.ActVer, &res.Actual, &up.Actual, &up.ActualVersion,
			&b.act, &b.av, &d.tv[1], &d.meta[1], &d.upVer[1]},
	}
}
