package db

import (
	"context"
	"database/sql"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func str(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }

func TestApplyDevices(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	w, err := d.DeviceWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tw := DeviceTwin{DeviceID: "default/s1", Name: "temp", Expected: str("25"), Actual: str(""),
		ExpectedMeta: str(`{"timestamp":1}`), ActualMeta: str(""), ExpectedVersion: `{"cloud":1,"edge":1}`,
		Optional: true, AttrType: "float", Metadata: "{}"}
	ch := DeviceChange{
		PutDevices: []Device{{ID: "default/s1", Name: "s1", State: "unknown"}, {ID: "d2", Name: "d2"}},
		PutAttrs:   []DeviceAttr{{DeviceID: "default/s1", Name: "model", Value: "CC2650", Optional: true, AttrType: "string", Metadata: "{}"}},
		PutTwins:   []DeviceTwin{tw},
	}
	if err := w.Apply(ctx, ch); err != nil {
		t.Fatal(err)
	}
	// SELECT * scanned by position into strings, as KubeEdge's checks do:
	// a NULL in a new row would fail here.
	var (
		id                                                 int64
		dev, name, desc, exp, act, expMeta, actMeta, ev, a string
		opt                                                bool
		typ, meta                                          string
	)
	err = d.SQL().QueryRow(`SELECT * FROM device_twin`).Scan(&id, &dev, &name, &desc, &exp, &act, &expMeta, &actMeta, &ev, &a, &opt, &typ, &meta)
	if err != nil {
		t.Fatalf("scan device_twin: %v", err)
	}
	if exp != "25" || ev != `{"cloud":1,"edge":1}` || !opt || typ != "float" {
		t.Errorf("device_twin row = %q %q %v %q", exp, ev, opt, typ)
	}

	// Update keeps the row id; a tombstone puts NULL values.
	tw.Expected, tw.Actual, tw.ExpectedMeta, tw.ActualMeta = sql.NullString{}, sql.NullString{}, sql.NullString{}, sql.NullString{}
	tw.AttrType = "deleted"
	if err := w.Apply(ctx, DeviceChange{PutTwins: []DeviceTwin{tw}, PutDevices: []Device{{ID: "default/s1", Name: "s1", State: "online", LastOnline: "x"}}}); err != nil {
		t.Fatal(err)
	}
	twins, err := d.DeviceTwins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tw.ID = id
	if diff := cmp.Diff([]DeviceTwin{tw}, twins); diff != "" {
		t.Errorf("DeviceTwins() diff (-want +got):\n%s", diff)
	}
	devs, err := d.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{{ID: "d2", Name: "d2"}, {ID: "default/s1", Name: "s1", State: "online", LastOnline: "x"}}
	if diff := cmp.Diff(want, devs); diff != "" {
		t.Errorf("Devices() diff (-want +got):\n%s", diff)
	}

	// Deleting a device removes its attributes and twins.
	if err := d.ApplyDevices(ctx, DeviceChange{DeleteDevices: []string{"default/s1"}}); err != nil {
		t.Fatal(err)
	}
	attrs, _ := d.DeviceAttrs(ctx)
	twins, _ = d.DeviceTwins(ctx)
	devs, _ = d.Devices(ctx)
	if len(attrs) != 0 || len(twins) != 0 || len(devs) != 1 {
		t.Errorf("after delete: %d attrs, %d twins, %d devices, want 0, 0, 1", len(attrs), len(twins), len(devs))
	}
}

// Puts of the same key in one change end as the last of them, as when
// each is applied in its own change, and new rows get their ids in the
// order of their first put. (Ids themselves may differ from those of
// separate changes.)
func TestApplyDevicesRepeatedKeys(t *testing.T) {
	ctx := context.Background()
	twin := func(dev, name, v string) DeviceTwin {
		return DeviceTwin{DeviceID: dev, Name: name, Expected: str("1"), Actual: str(v), ExpectedMeta: str("{}"),
			ActualMeta: str("{}"), AttrType: "int", Metadata: "{}"}
	}
	ch := DeviceChange{
		PutDevices: []Device{{ID: "d1", State: "a"}, {ID: "d2"}, {ID: "d1", State: "b"}},
		PutAttrs: []DeviceAttr{{DeviceID: "d1", Name: "m", Value: "1"}, {DeviceID: "d2", Name: "m", Value: "x"},
			{DeviceID: "d1", Name: "m", Value: "2"}},
		PutTwins: []DeviceTwin{twin("d1", "t", "1"), twin("d1", "u", "9"), twin("d1", "t", "2"), twin("d2", "t", "5"),
			twin("d1", "t", "3")},
	}
	batched, oneByOne := openTest(t), openTest(t)
	if err := batched.ApplyDevices(ctx, ch); err != nil {
		t.Fatal(err)
	}
	for _, r := range ch.PutDevices {
		if err := oneByOne.ApplyDevices(ctx, DeviceChange{PutDevices: []Device{r}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range ch.PutAttrs {
		if err := oneByOne.ApplyDevices(ctx, DeviceChange{PutAttrs: []DeviceAttr{r}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range ch.PutTwins {
		if err := oneByOne.ApplyDevices(ctx, DeviceChange{PutTwins: []DeviceTwin{r}}); err != nil {
			t.Fatal(err)
		}
	}
	type tables struct {
		Devices []Device
		Attrs   []DeviceAttr
		Twins   []DeviceTwin
	}
	read := func(d *DB) tables {
		var tb tables
		var err error
		if tb.Devices, err = d.Devices(ctx); err != nil {
			t.Fatal(err)
		}
		if tb.Attrs, err = d.DeviceAttrs(ctx); err != nil {
			t.Fatal(err)
		}
		if tb.Twins, err = d.DeviceTwins(ctx); err != nil {
			t.Fatal(err)
		}
		return tb
	}
	got, want := read(batched), read(oneByOne)
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(DeviceTwin{}, "ID"), cmpopts.IgnoreFields(DeviceAttr{}, "ID")); diff != "" {
		t.Errorf("rows after one change with repeated keys, diff (-one by one +batched):\n%s", diff)
	}
	if tw := got.Twins; !(tw[0].Name == "t" && tw[1].Name == "u" && tw[2].DeviceID == "d2" && tw[0].ID < tw[1].ID && tw[1].ID < tw[2].ID) {
		t.Errorf("twin rows %+v, want ids in the order of first put: d1/t, d1/u, d2/t", tw)
	}
	if got.Devices[0].State != "b" || got.Attrs[0].Value != "2" || got.Twins[0].Actual.String != "3" || len(got.Twins) != 3 {
		t.Errorf("rows = %+v, want the last put of each key", got)
	}
}

func TestApplyDevicesAtomic(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	if _, err := d.SQL().Exec(`CREATE TRIGGER boom BEFORE INSERT ON device_attr WHEN NEW.name = 'bad' BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	ch := DeviceChange{
		PutDevices: []Device{{ID: "d1"}},
		PutAttrs:   []DeviceAttr{{DeviceID: "d1", Name: "bad"}},
	}
	if err := d.ApplyDevices(ctx, ch); err == nil {
		t.Fatal("ApplyDevices(failing change) = nil, want an error")
	}
	devs, err := d.Devices(ctx)
	if err != nil || len(devs) != 0 {
		t.Errorf("Devices() after failed change = %v, %v, want none", devs, err)
	}
}

// BenchmarkApplyDevices compares a twin row upsert with and without the
// prepared statements of a DeviceWriter. synchronous=OFF leaves out the
// fsync, which is the same for both, to show the CPU cost. The "full"
// variant keeps the pragmas Open sets (synchronous=FULL): one commit,
// fsync included, per op. It is the floor of a durable twin update with
// one request in flight.
func BenchmarkApplyDevices(b *testing.B) {
	for _, v := range []struct {
		name     string
		prepared bool
		full     bool
	}{{"unprepared", false, false}, {"prepared", true, false}, {"full", true, true}} {
		b.Run(v.name, func(b *testing.B) {
			prepared := v.prepared
			d, err := Open(context.Background(), b.TempDir()+"/"+FileName, Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ctx := context.Background()
			if !v.full {
				if _, err := d.SQL().Exec("PRAGMA synchronous=OFF"); err != nil {
					b.Fatal(err)
				}
			}
			apply := d.ApplyDevices
			if prepared {
				w, err := d.DeviceWriter(ctx)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				apply = w.Apply
			}
			tw := DeviceTwin{DeviceID: "d", Name: "t", Expected: str("1"), Actual: str("2"), ExpectedMeta: str(`{"timestamp":1}`),
				ActualMeta: str(`{"timestamp":1}`), ExpectedVersion: `{"cloud":1,"edge":1}`, ActualVersion: `{"cloud":1,"edge":1}`, AttrType: "int", Metadata: "{}"}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// A new value each time: SQLite leaves a page clean when a
				// row is written over with the same bytes, and a commit
				// with no dirty page writes and syncs nothing.
				i++
				tw.Actual = str(strconv.Itoa(i))
				if err := apply(ctx, DeviceChange{PutTwins: []DeviceTwin{tw}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
