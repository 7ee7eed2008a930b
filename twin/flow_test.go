package twin

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"edgenode/bus"
	"edgenode/db"
)

// T is fixedNow in ms, as it appears in payloads.
const T = "1700000000123"

const addSensor = `{"event_id":"u-1","timestamp":1559123456000,"added_devices":[{"id":"default/sensor-1","name":"sensor-1","description":"d","state":"unknown",` +
	`"attributes":{"model":{"value":"CC2650","optional":true,"metadata":{"type":"string"}}},` +
	`"twin":{"temperature":{"expected":{"value":"25","metadata":{"timestamp":1559123456000}},"optional":false,"metadata":{"type":"float"},"expected_version":{"cloud":48213,"edge":0}}}}],"removed_devices":null}`

func TestMembershipTwinUpdateFlow(t *testing.T) {
	e := newEnv(t, Config{})
	e.connect()
	det := e.report()
	wantDet := `"{\"event_type\":\"group_membership_event\",\"event_id\":\"id-1\",\"group_id\":\"edge-node\",\"operation\":\"detail\",\"timestamp\":` + T + `}"`
	if det.Route != (bus.Route{Source: bus.ModuleTwin, Group: bus.GroupResource, Operation: bus.OpGet, Resource: bus.ResMembershipDetail}) || string(det.Content) != wantDet {
		t.Errorf("detail request = %+v %s, want twin/resource/get membership/detail %s", det.Route, det.Content, wantDet)
	}

	e.cloud(bus.OpUpdate, bus.ResMembership, addSensor)
	e.expect(
		pub{"$hw/events/node/edge-node/membership/updated", `{"event_id":"id-2","timestamp":` + T + `,"added_devices":[{"id":"default/sensor-1","name":"sensor-1","description":"d","state":"unknown",` +
			`"attributes":{"model":{"value":"CC2650","optional":true,"metadata":{"type":"string"}}},` +
			`"twin":{"temperature":{"expected":{"value":"25","metadata":{"timestamp":1559123456000}},"optional":false,"metadata":{"type":"float"}}}}],"removed_devices":null}`},
		pub{"$hw/events/device/default/sensor-1/twin/update/delta", `{"event_id":"id-3","timestamp":` + T + `,"twin":{"temperature":{"expected":{"value":"25","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"}}},"delta":{"temperature":"25"}}`},
	)

	e.mqtt("$hw/events/device/default/sensor-1/twin/update",
		`{"event_id":"ev-1","timestamp":0,"twin":{"temperature":{"actual":{"value":"25.5"}},"fan":{"expected":{"value":"3"},"optional":true}}}`)
	fan := `{"expected":{"value":"3","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"}}`
	tempLast := `{"expected":{"value":"25","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"}}`
	tempCur := `{"expected":{"value":"25","metadata":{"timestamp":` + T + `}},"actual":{"value":"25.5","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"}}`
	e.expect(
		pub{"$hw/events/device/default/sensor-1/twin/update/result", `{"event_id":"ev-1","timestamp":` + T + `,"twin":{"fan":` + fan +
			`,"temperature":{"actual":{"value":"25.5","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"}}}}`},
		pub{"$hw/events/device/default/sensor-1/twin/update/document", `{"event_id":"ev-1","timestamp":` + T + `,"twin":{"fan":{"last":null,"current":` + fan +
			`},"temperature":{"last":` + tempLast + `,"current":` + tempCur + `}}}`},
		pub{"$hw/events/device/default/sensor-1/twin/update/delta", `{"event_id":"id-4","timestamp":` + T + `,"twin":{"fan":` + fan + `,"temperature":` + tempCur + `},"delta":{"fan":"3","temperature":"25"}}`},
	)
	up := e.report()
	// Only the updated side goes to the cloud for temperature, not its
	// untouched expected value (KubeEdge dealTwinCompare, docs/protocol.md 5.4).
	wantUp := `{"event_id":"id-5","timestamp":` + T + `,"twin":{` +
		`"fan":{"expected":{"value":"3","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"},"expected_version":{"cloud":0,"edge":1}},` +
		`"temperature":{"actual":{"value":"25.5","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"},` +
		`"actual_version":{"cloud":0,"edge":1}}}}`
	if up.Route != (bus.Route{Source: bus.ModuleTwin, Group: bus.GroupResource, Operation: bus.OpUpdate, Resource: "device/default/sensor-1/twin/edge_updated"}) {
		t.Errorf("edge_updated route = %+v", up.Route)
	}
	if string(up.Content) != wantUp {
		t.Errorf("edge_updated content =\n%s\nwant\n%s", up.Content, wantUp)
	}

	// Twin get strips versions.
	e.mqtt("$hw/events/device/default/sensor-1/twin/get", `{"event_id":"g-1","timestamp":0}`)
	e.expect(pub{"$hw/events/device/default/sensor-1/twin/get/result", `{"event_id":"g-1","timestamp":` + T + `,"twin":{"fan":` + fan + `,"temperature":` + tempCur + `}}`})

	// Membership get from any node id answers on the configured node.
	e.mqtt("$hw/events/node/other/membership/get", `{"event_id":"m-1"}`)
	e.expect(pub{"$hw/events/node/edge-node/membership/get/result", `{"event_id":"m-1","timestamp":` + T + `,"devices":[{"id":"default/sensor-1","name":"sensor-1","description":"d","state":"unknown",` +
		`"attributes":{"model":{"value":"CC2650","optional":true,"metadata":{"type":"string"}}}}]}`})

	got := e.rows()
	want := rows{
		Devices: []db.Device{{ID: "default/sensor-1", Name: "sensor-1", Description: "d", State: "unknown"}},
		Attrs:   []db.DeviceAttr{{DeviceID: "default/sensor-1", Name: "model", Value: "CC2650", Optional: true, AttrType: "string", Metadata: "{}"}},
		Twins: []db.DeviceTwin{
			{DeviceID: "default/sensor-1", Name: "fan", Expected: ns("3"), Actual: ns(""), ExpectedMeta: ns(`{"timestamp":` + T + `}`), ActualMeta: ns(""),
				ExpectedVersion: `{"cloud":0,"edge":1}`, Optional: true, AttrType: "string", Metadata: "{}"},
			{DeviceID: "default/sensor-1", Name: "temperature", Expected: ns("25"), Actual: ns("25.5"), ExpectedMeta: ns(`{"timestamp":` + T + `}`), ActualMeta: ns(`{"timestamp":` + T + `}`),
				ExpectedVersion: `{"cloud":48213,"edge":0}`, ActualVersion: `{"cloud":0,"edge":1}`, AttrType: "float", Metadata: "{}"},
		},
	}
	if diff := cmp.Diff(want, got, ignoreIDs); diff != "" {
		t.Errorf("rows diff (-want +got):\n%s", diff)
	}
}

var ignoreIDs = cmp.Options{cmpopts.IgnoreFields(db.DeviceAttr{}, "ID"), cmpopts.IgnoreFields(db.DeviceTwin{}, "ID")}

func ns(s string) sql.NullString { return sql.NullString{String: s, Valid: true} }

func TestStateUpdate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		era       bus.Era
		id, state string
		result    string
		resource  string
		lastOn    string
	}{
		{"v1.23 online", bus.EraV123, "default/s1", "online",
			`{"event_id":"id-3","timestamp":` + T + `,"device":{"name":"s1","state":"online","lastOnlineTime":"2023-11-14T22:13:20Z"}}`,
			"device/default/s1/state/update", "2023-11-14T22:13:20Z"},
		{"v1.23 offline clears last online", bus.EraV123, "default/s1", "Offline",
			`{"event_id":"id-3","timestamp":` + T + `,"device":{"name":"s1","state":"Offline"}}`,
			"device/default/s1/state/update", ""},
		{"v0.3 unknown", bus.EraV03, "s1", "unknown",
			`{"event_id":"id-2","timestamp":` + T + `,"device":{"name":"s1","state":"unknown","last_online":"` + fixedNow.Format("2006-01-02 15:04:05") + `"}}`,
			"device/s1/state", fixedNow.Format("2006-01-02 15:04:05")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Era: tc.era})
			e.cloud(bus.OpUpdate, bus.ResMembership, `{"added_devices":[{"id":"`+tc.id+`","name":"s1","state":"unknown"}]}`)
			e.pub() // membership/updated
			e.connect()
			if m := e.report(); m.Route.Resource != bus.ResMembershipDetail {
				t.Fatalf("first cloud message = %s, want the detail request", m.Route.Resource)
			}
			e.mqtt("$hw/events/device/"+tc.id+"/state/update", `{"state":"`+tc.state+`"}`)
			e.expect(pub{"$hw/events/device/" + tc.id + "/state/update/result", tc.result})
			m := e.report()
			if m.Route.Resource != tc.resource || m.Route.Operation != bus.OpUpdate || m.Route.Group != bus.GroupResource ||
				string(m.Content) != string(bus.JSONString(tc.result)) {
				t.Errorf("cloud state = %+v %s, want %s with the result as a JSON string", m.Route, m.Content, tc.resource)
			}
			want := []db.Device{{ID: tc.id, Name: "s1", State: tc.state, LastOnline: tc.lastOn}}
			if diff := cmp.Diff(want, e.rows().Devices); diff != "" {
				t.Errorf("device rows diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEraV03Payloads(t *testing.T) {
	e := newEnv(t, Config{Era: bus.EraV03})
	e.cloud(bus.OpUpdate, bus.ResMembership, `{"added_devices":[{"id":"s1","name":"s1"}]}`)
	e.pub()
	// An empty value is invalid in v0.3; integer is not a v0.3 type.
	e.mqtt("$hw/events/device/s1/twin/update", `{"event_id":"a","twin":{"k":{"actual":{"value":""}}}}`)
	p := e.pub()
	if !strings.Contains(p.Payload, `"code":400`) {
		t.Errorf("v0.3 empty value result = %s, want code 400", p.Payload)
	}
	e.mqtt("$hw/events/device/s1/twin/update", `{"event_id":"b","twin":{"k":{"expected":{"value":"on"}}}}`)
	k := `{"expected":{"value":"on","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"}}`
	e.expect(
		pub{"$hw/events/device/s1/twin/update/result", `{"event_id":"b","timestamp":` + T + `,"twin":{"k":` + k + `}}`},
		pub{"$hw/events/device/s1/twin/update/document", `{"event_id":"b","timestamp":` + T + `,"twin":{"k":{"last":null,"current":` + k + `}}}`},
		pub{"$hw/events/device/s1/twin/update/delta", `{"event_id":"id-2","timestamp":` + T + `,"twin":{"k":` + k + `},"delta":{"k":"on"}}`},
	)
	e.mqtt("$hw/events/device/nope/twin/update", `{"event_id":"c","twin":{}}`)
	e.expect(pub{"$hw/events/device/nope/twin/update/result", `{"event_id":"c","timestamp":` + T + `,"code":404,"reason":"Update rejected due to the device is not existed"}`})
}

func TestMsgTwinEncoding(t *testing.T) {
	v := ""
	for _, tc := range []struct {
		era  bus.Era
		in   msgTwin
		want string
	}{
		{bus.EraV123, msgTwin{Expected: &twinValue{Value: &v, Metadata: &valueMetadata{}}}, `{"expected":{"value":"","metadata":{}}}`},
		{bus.EraV03, msgTwin{Expected: &twinValue{Value: &v, Metadata: &valueMetadata{}}}, `{"expected":{"value":"","metadata":{"timestamp":0}}}`},
		{bus.EraV03, msgTwin{Actual: &twinValue{}}, `{"actual":{"value":null}}`},
		{bus.EraV123, msgTwin{Actual: &twinValue{}}, `{"actual":{}}`},
	} {
		tc.in.era = tc.era
		b, err := tc.in.MarshalJSON()
		if err != nil || string(b) != tc.want {
			t.Errorf("MarshalJSON(%s) = %s, %v, want %s", tc.era, b, err, tc.want)
		}
	}
}

// A message with a parent id is a confirmation; v0.3 also handles it as
// a request, v1.23 does not (docs/protocol.md 5.1, parent-id quirk).
func TestParentIDQuirk(t *testing.T) {
	for _, tc := range []struct {
		era     bus.Era
		handled bool
	}{{bus.EraV03, true}, {bus.EraV123, false}} {
		t.Run(tc.era.String(), func(t *testing.T) {
			e := newEnv(t, Config{Era: tc.era})
			m := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpUpdate, bus.ResMembership,
				[]byte(`{"added_devices":[{"id":"s1","name":"s1"}]}`))
			m.Header.ParentID = bus.NewID()
			if err := e.b.Send(bus.ModuleTwin, m); err != nil {
				t.Fatal(err)
			}
			e.settle()
			if tc.handled {
				if len(e.skipped) == 0 {
					e.pub() // membership/updated after the settle result
				}
				e.skipped = nil
			}
			e.quiet()
			if n := len(e.rows().Devices); (n == 1) != tc.handled {
				t.Errorf("%s: %d devices after a membership update with a parent id, handled want %v", tc.era, n, tc.handled)
			}
		})
	}
}
