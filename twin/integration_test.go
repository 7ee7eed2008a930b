package twin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"edgenode/bus"
)

// Our versions of KubeEdge's device integration cases EBUS_6-14
// (docs/protocol.md 7.2): devices come from the test harness as membership
// updates (source edgemgr, resource membership), device ids are default/<name>.

type itDevice struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Description string              `json:"description"`
	State       string              `json:"state"`
	Attributes  map[string]*msgAttr `json:"attributes"`
	Twin        map[string]*msgTwin `json:"twin"`
}

func newITDevice(name string) *itDevice {
	return &itDevice{ID: "default/" + name, Name: name, Description: "IntegrationTest", State: "unknown",
		Attributes: map[string]*msgAttr{}, Twin: map[string]*msgTwin{}}
}

func (d *itDevice) attr(name, v, typ string) {
	opt := true
	d.Attributes[name] = &msgAttr{Value: v, Optional: &opt, Metadata: &typeMetadata{Type: typ}}
}

func (d *itDevice) twin(name, v, typ string) {
	opt := true
	val, ts := v, int64(1700000000) // the harness puts unix seconds here
	tv := func() *twinValue { return &twinValue{Value: &val, Metadata: &valueMetadata{Timestamp: ts}} }
	d.Twin[name] = &msgTwin{Expected: tv(), Actual: tv(), Optional: &opt, Metadata: &typeMetadata{Type: typ},
		ExpectedVersion: &twinVersion{Cloud: 1, Edge: 1}, ActualVersion: &twinVersion{Cloud: 1, Edge: 1}}
}

func (e *env) harness(key string, devs ...*itDevice) {
	e.t.Helper()
	b, err := json.Marshal(map[string][]*itDevice{key: devs})
	if err != nil {
		e.t.Fatal(err)
	}
	m := bus.NewMessage(bus.SourceEdgeMgr, "edgehub", bus.OpUpdate, bus.ResMembership, b)
	if err := e.b.Send(bus.ModuleTwin, m); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) attrValue(dev, name string) string {
	for _, r := range e.rows().Attrs {
		if r.DeviceID == dev && r.Name == name {
			return r.Value
		}
	}
	return "<none>"
}

func (e *env) twinExpected(dev, name string) string {
	for _, r := range e.rows().Twins {
		if r.DeviceID == dev && r.Name == name {
			return r.Expected.String
		}
	}
	return "<none>"
}

func TestIntegrationDeviceCases(t *testing.T) {
	e := newEnv(t, Config{NodeName: "edge-node"})
	for _, state := range []string{"online", "unknown", "offline"} { // EBUS_6, 7, 8
		d := newITDevice("kubeedge-device-" + state)
		e.harness("added_devices", d)
		p := e.pub()
		var upd struct {
			Added []struct{ ID string } `json:"added_devices"`
		}
		if err := json.Unmarshal([]byte(p.Payload), &upd); err != nil || p.Topic != "$hw/events/node/edge-node/membership/updated" ||
			len(upd.Added) != 1 || upd.Added[0].ID != d.ID {
			t.Fatalf("membership/updated = %s %s, want %s added", p.Topic, p.Payload, d.ID)
		}
		e.mqtt("$hw/events/device/"+d.ID+"/state/update", `{"state":"`+state+`","attributes":null}`)
		p = e.pub()
		var res struct {
			Device struct{ State string } `json:"device"`
		}
		if err := json.Unmarshal([]byte(p.Payload), &res); err != nil || p.Topic != "$hw/events/device/"+d.ID+"/state/update/result" || res.Device.State != state {
			t.Errorf("state result = %s %s, want state %s", p.Topic, p.Payload, state)
		}
	}

	attrDev := newITDevice("kubeedge-device-attr")
	attrDev.attr("Temperature", "25.25", "float")
	e.harness("added_devices", attrDev) // EBUS_9
	e.pub()
	if v := e.attrValue(attrDev.ID, "Temperature"); v != "25.25" {
		t.Errorf("EBUS_9: device_attr Temperature = %q, want 25.25", v)
	}
	twinDev := newITDevice("kubeedge-device-twin")
	twinDev.twin("Temperature", "25.25", "float")
	e.harness("added_devices", twinDev) // EBUS_10
	e.pub()
	if v := e.twinExpected(twinDev.ID, "Temperature"); v != "25.25" {
		t.Errorf("EBUS_10: device_twin Temperature expected = %q, want 25.25", v)
	}
	attrDev.attr("Temperature", "50.50", "float")
	e.harness("added_devices", attrDev) // EBUS_11
	if p := e.pub(); p.Topic != "$hw/events/device/"+attrDev.ID+"/updated" ||
		p.Payload != `{"event_id":"","timestamp":`+T+`,"attributes":{"Temperature":{"value":"50.50"}}}` {
		t.Errorf("EBUS_11 updated publish = %+v", p)
	}
	if v := e.attrValue(attrDev.ID, "Temperature"); v != "50.50" {
		t.Errorf("EBUS_11: device_attr Temperature = %q, want 50.50", v)
	}
	twinDev.twin("Temperature", "50.50", "float")
	e.harness("added_devices", twinDev) // EBUS_12: versions 1/1 >= stored 1/1
	e.settle()
	if v := e.twinExpected(twinDev.ID, "Temperature"); v != "50.50" {
		t.Errorf("EBUS_12: device_twin Temperature expected = %q, want 50.50", v)
	}
	attrDev.attr("Humidity", "30", "Int")
	e.harness("added_devices", attrDev) // EBUS_13: attribute types are not checked
	e.pub()
	if v := e.attrValue(attrDev.ID, "Humidity"); v != "30" {
		t.Errorf("EBUS_13: device_attr Humidity = %q, want 30", v)
	}
	twinDev.twin("Humidity", "100.100", "float")
	e.harness("added_devices", twinDev) // EBUS_14
	e.settle()
	if v := e.twinExpected(twinDev.ID, "Humidity"); v != "100.100" {
		t.Errorf("EBUS_14: device_twin Humidity expected = %q, want 100.100", v)
	}
	e.rows() // every non-tombstone row scans into strings

	// AfterSuite: removing the devices empties the tables.
	e.harness("removed_devices", attrDev, twinDev)
	p := e.pub()
	if !strings.Contains(p.Payload, `"added_devices":null,"removed_devices":[{"id":"default/kubeedge-device-attr"`) {
		t.Errorf("removal publish = %s", p.Payload)
	}
	r := e.rows()
	for _, row := range r.Attrs {
		t.Errorf("attribute row left after removal: %+v", row)
	}
	for _, row := range r.Twins {
		t.Errorf("twin row left after removal: %+v", row)
	}
	if len(r.Devices) != 3 {
		t.Errorf("%d devices left, want the 3 state devices", len(r.Devices))
	}
}

func TestRestartKeepsDevices(t *testing.T) {
	dir := t.TempDir()
	e := startEnv(t, Config{}, dir)
	e.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	e.pub()
	e.mqtt("$hw/events/device/default/s1/twin/update", `{"event_id":"a","twin":{"fan":{"expected":{"value":"2"}}}}`)
	topics(e, 3)
	e.mqtt("$hw/events/device/default/s1/twin/get", `{"event_id":"g"}`)
	before := e.pub()
	rows := e.rows()
	e.stop()

	e2 := startEnv(t, Config{}, dir)
	e2.mqtt("$hw/events/device/default/s1/twin/get", `{"event_id":"g"}`)
	if after := e2.pub(); after != before {
		t.Errorf("twin get after restart = %s, want %s", after.Payload, before.Payload)
	}
	e2.mqtt("$hw/events/node/edge-node/membership/get", `{"event_id":"m"}`)
	if p := e2.pub(); !strings.Contains(p.Payload, `"attributes":{"model":{"value":"m1","optional":true,"metadata":{"type":"string"}}}`) {
		t.Errorf("membership after restart = %s, want the model attribute", p.Payload)
	}
	if r := e2.rows(); !slices.Equal(r.Twins, rows.Twins) || !slices.Equal(r.Attrs, rows.Attrs) {
		t.Errorf("rows changed across restart")
	}
}

func TestLocalDevices(t *testing.T) {
	dir := t.TempDir()
	devDir := filepath.Join(dir, "devices")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := `{"added_devices":[{"id":"lamp","name":"lamp","state":"unknown",` +
		`"attributes":{"room":{"value":"hall"}},"twin":{"power":{"expected":{"value":"off"},"metadata":{"type":"string"}}}}]}`
	if err := os.WriteFile(filepath.Join(devDir, "lamp.json"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, Config{DevicesDir: devDir}, dir)
	e.expect(pub{"$hw/events/node/edge-node/membership/updated", `{"event_id":"id-1","timestamp":` + T + `,"added_devices":[{"id":"lamp","name":"lamp","state":"unknown",` +
		`"attributes":{"room":{"value":"hall"}},"twin":{"power":{"expected":{"value":"off"},"metadata":{"type":"string"}}}}],"removed_devices":null}`})
	topics(e, 1) // delta: power expected off, no actual
	// With no cloud, an app update works on the local device.
	e.mqtt("$hw/events/device/lamp/twin/update", `{"event_id":"u","twin":{"power":{"expected":{"value":"on"}}}}`)
	if p := e.pub(); !strings.Contains(p.Payload, `"power":{"expected":{"value":"on"`) {
		t.Errorf("update result = %s", p.Payload)
	}
	topics(e, 2)
	e.stop()
	// At the next start the file does not undo the app's newer value.
	e2 := startEnv(t, Config{DevicesDir: devDir}, dir)
	e2.settle()
	if v := e2.twinExpected("lamp", "power"); v != "on" {
		t.Errorf("after restart power = %q, want on", v)
	}

	// A malformed file stops Run with an error naming it.
	if err := os.WriteFile(filepath.Join(devDir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	e2.stop()
	e3 := startEnv(t, Config{DevicesDir: devDir}, dir)
	err := <-e3.done
	e3.done <- nil
	if err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("Run() with a malformed device file = %v, want an error naming bad.json", err)
	}
}
