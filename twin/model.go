package twin

import (
	"database/sql"
	"encoding/json"
	"strconv"

	"edgenode/bus"
	"edgenode/db"
)

// typeDeleted marks a tombstoned twin (docs/protocol.md 5.3, 5.4).
const typeDeleted = "deleted"

// value is one side of a twin: the value and the edge time it was set.
type value struct {
	V  string
	TS int64 // ms
}

// twinState is a twin as the node holds it.
type twinState struct {
	Expected, Actual *value       // nil: side never set, or tombstone
	ExpVer, ActVer   *twinVersion // nil: side never versioned
	Optional         bool
	Type             string
}

func (t *twinState) deleted() bool { return t.Type == typeDeleted }

// stateBlock holds a twinState and room for everything it points to, so
// that a clone, or a twin a deal builds, takes one allocation instead of
// one per side.
type stateBlock struct {
	t        twinState
	exp, act value
	ev, av   twinVersion
}

// clone returns a deep copy, made in one allocation.
func (t *twinState) clone() *twinState { return &t.cloneBlock().t }

// cloneBlock returns a deep copy in a block whose unused room a deal may
// fill (twinSides).
func (t *twinState) cloneBlock() *stateBlock {
	b := &stateBlock{t: *t}
	c := &b.t
	if t.Expected != nil {
		b.exp = *t.Expected
		c.Expected = &b.exp
	}
	if t.Actual != nil {
		b.act = *t.Actual
		c.Actual = &b.act
	}
	if t.ExpVer != nil {
		b.ev = *t.ExpVer
		c.ExpVer = &b.ev
	}
	if t.ActVer != nil {
		b.av = *t.ActVer
		c.ActVer = &b.av
	}
	return b
}

// msgBlock holds a msgTwin and everything it points to, so that msg
// makes one allocation instead of one per field.
type msgBlock struct {
	m                msgTwin
	exp, act         twinValue
	expMeta, actMeta valueMetadata
	expV, actV       string
	opt              bool
	typ              typeMetadata
	ev, av           twinVersion
}

// msg returns the twin as a payload entry; versions only when asked for
// (payloads to apps strip them, docs/protocol.md 5.2).
func (t *twinState) msg(era bus.Era, versions bool) *msgTwin {
	b := &msgBlock{opt: t.Optional, typ: typeMetadata{Type: t.Type}}
	m := &b.m
	m.Optional, m.Metadata, m.era = &b.opt, &b.typ, era
	if v := t.Expected; v != nil {
		b.expV, b.expMeta.Timestamp = v.V, v.TS
		b.exp = twinValue{Value: &b.expV, Metadata: &b.expMeta}
		m.Expected = &b.exp
	}
	if v := t.Actual; v != nil {
		b.actV, b.actMeta.Timestamp = v.V, v.TS
		b.act = twinValue{Value: &b.actV, Metadata: &b.actMeta}
		m.Actual = &b.act
	}
	if versions {
		if t.ExpVer != nil {
			b.ev = *t.ExpVer
			m.ExpectedVersion = &b.ev
		}
		if t.ActVer != nil {
			b.av = *t.ActVer
			m.ActualVersion = &b.av
		}
	}
	return m
}

// attrState is a device attribute as the node holds it.
type attrState struct {
	Value    string
	Optional bool
	Type     string
}

func (a *attrState) msg() *msgAttr {
	opt := a.Optional
	return &msgAttr{Value: a.Value, Optional: &opt, Metadata: &typeMetadata{Type: a.Type}}
}

// deviceState is a device with its attributes and twins. Published
// deviceStates are immutable: a change works on a clone, which replaces
// the original once the change is committed.
type deviceState struct {
	ID, Name, Description, State, LastOnline string

	Attrs map[string]*attrState
	Twins map[string]*twinState
}

func (d *deviceState) clone() *deviceState {
	c := *d
	c.Attrs = make(map[string]*attrState, len(d.Attrs))
	for k, a := range d.Attrs {
		v := *a
		c.Attrs[k] = &v
	}
	c.Twins = make(map[string]*twinState, len(d.Twins))
	for k, t := range d.Twins {
		c.Twins[k] = t.clone()
	}
	return &c
}

func (d *deviceState) row() db.Device {
	return db.Device{ID: d.ID, Name: d.Name, Description: d.Description, State: d.State, LastOnline: d.LastOnline}
}

// wire returns the device for membership/get: no twins (docs/protocol.md 5.2).
func (d *deviceState) wire() wireDevice {
	w := wireDevice{ID: d.ID, Name: d.Name, Description: d.Description, State: d.State, LastOnline: d.LastOnline}
	if len(d.Attrs) > 0 {
		w.Attributes = make(map[string]*msgAttr, len(d.Attrs))
		for k, a := range d.Attrs {
			w.Attributes[k] = a.msg()
		}
	}
	return w
}

// emptyMeta is the metadata column: KubeEdge's metadata JSON with its only
// field, type, blanked (docs/protocol.md 5.3).
const emptyMeta = "{}"

func attrRow(dev, name string, a *attrState) db.DeviceAttr {
	return db.DeviceAttr{DeviceID: dev, Name: name, Value: a.Value, Optional: a.Optional,
		AttrType: a.Type, Metadata: emptyMeta}
}

// twinRow is the device_twin row of a twin (docs/protocol.md 5.3): meta columns
// hold {"timestamp":ms}, versions {"cloud":c,"edge":e}; a side never set is ""
// and a tombstone has NULL values.
func twinRow(dev, name string, t *twinState) db.DeviceTwin {
	r := db.DeviceTwin{DeviceID: dev, Name: name, Optional: t.Optional, AttrType: t.Type, Metadata: emptyMeta,
		ExpectedVersion: versionJSON(t.ExpVer), ActualVersion: versionJSON(t.ActVer)}
	if t.deleted() {
		return r
	}
	r.Expected, r.ExpectedMeta = valueCols(t.Expected)
	r.Actual, r.ActualMeta = valueCols(t.Actual)
	return r
}

func valueCols(v *value) (val, meta sql.NullString) {
	if v == nil {
		return sql.NullString{Valid: true}, sql.NullString{Valid: true}
	}
	return sql.NullString{String: v.V, Valid: true},
		sql.NullString{String: `{"timestamp":` + strconv.FormatInt(v.TS, 10) + `}`, Valid: true}
}

// versionJSON is the version column of v: what json.Marshal makes of it
// ({"cloud":n,"edge":m}), written without reflection, as every staged
// twin writes two.
func versionJSON(v *twinVersion) string {
	if v == nil {
		return ""
	}
	b := make([]byte, 0, 32)
	b = append(b, `{"cloud":`...)
	b = strconv.AppendInt(b, v.Cloud, 10)
	b = append(b, `,"edge":`...)
	b = strconv.AppendInt(b, v.Edge, 10)
	return string(append(b, '}'))
}

// fromRows builds the in-memory view from the tables. Unreadable JSON in a
// meta or version column counts as an unset side.
func fromRows(devs []db.Device, attrs []db.DeviceAttr, twins []db.DeviceTwin) map[string]*deviceState {
	out := make(map[string]*deviceState, len(devs))
	for _, r := range devs {
		out[r.ID] = &deviceState{ID: r.ID, Name: r.Name, Description: r.Description, State: r.State,
			LastOnline: r.LastOnline, Attrs: map[string]*attrState{}, Twins: map[string]*twinState{}}
	}
	for _, r := range attrs {
		if d := out[r.DeviceID]; d != nil {
			d.Attrs[r.Name] = &attrState{Value: r.Value, Optional: r.Optional, Type: r.AttrType}
		}
	}
	for _, r := range twins {
		d := out[r.DeviceID]
		if d == nil {
			continue
		}
		t := &twinState{Optional: r.Optional, Type: r.AttrType, ExpVer: parseVersion(r.ExpectedVersion),
			ActVer: parseVersion(r.ActualVersion)}
		if !t.deleted() {
			t.Expected = parseValue(r.Expected, r.ExpectedMeta)
			t.Actual = parseValue(r.Actual, r.ActualMeta)
		}
		d.Twins[r.Name] = t
	}
	return out
}

func parseVersion(s string) *twinVersion {
	if s == "" {
		return nil
	}
	var v twinVersion
	if json.Unmarshal([]byte(s), &v) != nil {
		return nil
	}
	return &v
}

func parseValue(val, meta sql.NullString) *value {
	if !val.Valid || !meta.Valid || meta.String == "" {
		return nil
	}
	var m valueMetadata
	if json.Unmarshal([]byte(meta.String), &m) != nil {
		return nil
	}
	return &value{V: val.String, TS: m.Timestamp}
}
