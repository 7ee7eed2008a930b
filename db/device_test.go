package db

import (
	"context"
	"database/sql"
	"testing"

	"github.com/google/go-cmp/cmp"
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
// fsync, which is the same for both, to show the CPU cost.
func BenchmarkApplyDevices(b *testing.B) {
	for _, prepared := range []bool{false, true} {
		b.Run(map[bool]string{false: "unprepared", true: "prepared"}[prepared], func(b *testing.B) {
			d, err := Open(context.Background(), b.TempDir()+"/"+FileName, Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ctx := context.Background()
			if _, err := d.SQL().Exec("PRAGMA synchronous=OFF"); err != nil {
				b.Fatal(err)
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
			for b.Loop() {
				if err := apply(ctx, DeviceChange{PutTwins: []DeviceTwin{tw}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
