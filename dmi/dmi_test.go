package dmi

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"edgenode/bus"
	"edgenode/dmi/dmipb"
)

// A v1beta1 DeviceModel and Device as the v1.23 device controller sends
// them (resource <ns>/devicemodel/<name> and <ns>/device/<name>). configData
// is flat on the wire: CustomizedValue marshals as its Data map alone.
const (
	modelJSON = `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel",
	"metadata":{"name":"thermo-model","namespace":"default"},
	"spec":{"protocol":"modbus","protocolConfigData":{"slaveID":1,"serial":"/dev/ttyS0"},
	 "properties":[{"name":"temperature","type":"FLOAT","accessMode":"ReadWrite","minimum":"-40","maximum":"85","unit":"C",
	  "visitors":{"protocolName":"modbus","configData":{"register":"HoldingRegister","offset":2,"scale":0.1}}}]}}`
	deviceJSON = `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device",
	"metadata":{"name":"thermo-1","namespace":"default"},
	"spec":{"deviceModelRef":{"name":"thermo-model"},"nodeName":"edge-1",
	 "protocol":{"protocolName":"modbus","configData":{"serial":"/dev/ttyUSB0","fast":true}},
	 "properties":[{"name":"temperature","desired":{"value":"%DESIRED%"},"reportCycle":10000,"collectCycle":5000,"reportToCloud":true,
	  "visitors":{"protocolName":"modbus","configData":{"offset":5}},
	  "pushMethod":{"mqtt":{"address":"tcp://127.0.0.1:1883","topic":"t","qos":1},"dbMethod":{"influxdb2":{"influxdb2DataConfig":{"measurement":"m","tag":{"a":"b"}}}}}}],
	 "methods":[{"name":"set","propertyNames":["temperature"]}],
	 "stateReport":{"reportCycle":3000,"reportToCloud":true}}}`
)

func deviceWith(desired string) string { return strings.ReplaceAll(deviceJSON, "%DESIRED%", desired) }

// anyOf wraps v the way the mapper must see it.
func anyOf(t *testing.T, v any) *anypb.Any {
	t.Helper()
	var a *anypb.Any
	var err error
	switch x := v.(type) {
	case string:
		a, err = anypb.New(wrapperspb.String(x))
	case float32:
		a, err = anypb.New(wrapperspb.Float(x))
	case bool:
		a, err = anypb.New(wrapperspb.Bool(x))
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// wantDevice is the Device a mapper must get for deviceWith(desired):
// the model's defaults merged in, the instance's keys winning
// (edgecore's overrideDeviceInstanceConfig), the property visitors taken
// from the model (protocolName included), stateReport in status.
func wantDevice(t *testing.T, desired string) *dmipb.Device {
	return &dmipb.Device{Name: "thermo-1", Namespace: "default",
		Spec: &dmipb.DeviceSpec{DeviceModelReference: "thermo-model",
			Protocol: &dmipb.ProtocolConfig{ProtocolName: "modbus", ConfigData: &dmipb.CustomizedValue{Data: map[string]*anypb.Any{
				"slaveID": anyOf(t, float32(1)), "serial": anyOf(t, "/dev/ttyUSB0"), "fast": anyOf(t, true)}}},
			Properties: []*dmipb.DeviceProperty{{Name: "temperature", Desired: &dmipb.TwinProperty{Value: desired},
				ReportCycle: 10000, CollectCycle: 5000, ReportToCloud: true,
				Visitors: &dmipb.VisitorConfig{ProtocolName: "modbus", ConfigData: &dmipb.CustomizedValue{Data: map[string]*anypb.Any{
					"register": anyOf(t, "HoldingRegister"), "offset": anyOf(t, float32(5)), "scale": anyOf(t, float32(0.1))}}},
				PushMethod: &dmipb.PushMethod{Mqtt: &dmipb.PushMethodMQTT{Address: "tcp://127.0.0.1:1883", Topic: "t", Qos: 1},
					DbMethod: &dmipb.DBMethod{Influxdb2: &dmipb.DBMethodInfluxdb2{Influxdb2DataConfig: &dmipb.Influxdb2DataConfig{Measurement: "m", Tag: map[string]string{"a": "b"}}}}}}},
			Methods: []*dmipb.DeviceMethod{{Name: "set", PropertyNames: []string{"temperature"}}}},
		Status: &dmipb.DeviceStatus{ReportCycle: 3000, ReportToCloud: true}}
}

func wantModel() *dmipb.DeviceModel {
	return &dmipb.DeviceModel{Name: "thermo-model", Namespace: "default", Spec: &dmipb.DeviceModelSpec{
		Properties: []*dmipb.ModelProperty{{Name: "temperature", Type: "FLOAT", AccessMode: "ReadWrite", Minimum: "-40", Maximum: "85", Unit: "C"}}}}
}

// decodeConfig reads configData as the mapper-framework does
// (pkg/common/dataconverter.go, DecodeAnyValue): by the type URL's suffix.
func decodeConfig(t *testing.T, cv *dmipb.CustomizedValue) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, a := range cv.GetData() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("configData[%s]: %v", k, err)
		}
		switch {
		case strings.HasSuffix(a.TypeUrl, "google.protobuf.StringValue"):
			out[k] = m.(*wrapperspb.StringValue).Value
		case strings.HasSuffix(a.TypeUrl, "google.protobuf.FloatValue"):
			out[k] = m.(*wrapperspb.FloatValue).Value
		case strings.HasSuffix(a.TypeUrl, "google.protobuf.BoolValue"):
			out[k] = m.(*wrapperspb.BoolValue).Value
		default:
			t.Fatalf("configData[%s]: type %s", k, a.TypeUrl)
		}
	}
	return out
}

func diffProto(want, got any) string { return cmp.Diff(want, got, protocmp.Transform()) }

func TestRegisterWithData(t *testing.T) {
	e := start(t, t.TempDir(), Config{})
	c := manager(t, e.socket())
	// A first registration without data; the mapper's RegisterDevice
	// shows that dmi has the device.
	calls := make(chan mapperCall, 16)
	path := filepath.Join(e.dir, "modbus.sock")
	startMapper(t, path, calls)
	register(t, c, "modbus", path, false)
	e.fromCloud(bus.OpInsert, "default/devicemodel/thermo-model", modelJSON)
	e.fromCloud(bus.OpInsert, "default/device/thermo-1", deviceWith("20"))
	for _, want := range []string{"CreateDeviceModel", "RegisterDevice"} {
		if got := next(t, calls); got.method != want {
			t.Fatalf("call = %s, want %s", got.method, want)
		}
	}
	resp := register(t, c, "modbus", path, true)
	if d := diffProto([]*dmipb.Device{wantDevice(t, "20")}, resp.DeviceList); d != "" {
		t.Errorf("MapperRegister(withData) devices (-want +got):\n%s", d)
	}
	if d := diffProto([]*dmipb.DeviceModel{wantModel()}, resp.ModelList); d != "" {
		t.Errorf("MapperRegister(withData) models (-want +got):\n%s", d)
	}
	if len(resp.DeviceList) == 1 {
		got := decodeConfig(t, resp.DeviceList[0].Spec.Protocol.ConfigData)
		want := map[string]any{"slaveID": float32(1), "serial": "/dev/ttyUSB0", "fast": true}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("decoded protocol configData (-want +got):\n%s", d)
		}
	}
	other := register(t, c, "onvif", filepath.Join(e.dir, "onvif.sock"), true)
	if len(other.DeviceList)+len(other.ModelList) != 0 {
		t.Errorf("MapperRegister(onvif) = %v, want no devices and models", other)
	}
	none := register(t, c, "modbus", path, false)
	if len(none.DeviceList)+len(none.ModelList) != 0 {
		t.Errorf("MapperRegister(withData=false) = %v, want an empty answer", none)
	}
}

func TestCloudToMapper(t *testing.T) {
	e := start(t, t.TempDir(), Config{})
	calls := make(chan mapperCall, 16)
	path := filepath.Join(e.dir, "modbus.sock")
	startMapper(t, path, calls)
	register(t, manager(t, e.socket()), "modbus", path, true)

	e.fromCloud(bus.OpInsert, "default/devicemodel/thermo-model", modelJSON)
	e.fromCloud(bus.OpInsert, "default/device/thermo-1", deviceWith("20"))
	if c := next(t, calls); c.method != "CreateDeviceModel" || diffProto(wantModel(), c.req.(*dmipb.CreateDeviceModelRequest).Model) != "" {
		t.Fatalf("first call = %s %v, want CreateDeviceModel %v", c.method, c.req, wantModel())
	}
	c := next(t, calls)
	if c.method != "RegisterDevice" {
		t.Fatalf("second call = %s, want RegisterDevice", c.method)
	}
	if d := diffProto(wantDevice(t, "20"), c.req.(*dmipb.RegisterDeviceRequest).Device); d != "" {
		t.Errorf("RegisterDevice device (-want +got):\n%s", d)
	}

	// The same object again changes nothing; a new desired value does.
	e.fromCloud(bus.OpUpdate, "default/device/thermo-1", deviceWith("20"))
	e.fromCloud(bus.OpUpdate, "default/device/thermo-1", deviceWith("30"))
	c = next(t, calls)
	if c.method != "UpdateDevice" {
		t.Fatalf("call after a desired value change = %s, want UpdateDevice", c.method)
	}
	if d := diffProto(wantDevice(t, "30"), c.req.(*dmipb.UpdateDeviceRequest).Device); d != "" {
		t.Errorf("UpdateDevice device (-want +got):\n%s", d)
	}

	e.fromCloud(bus.OpDelete, "default/device/thermo-1", deviceWith("30"))
	c = next(t, calls)
	want := &dmipb.RemoveDeviceRequest{DeviceName: "thermo-1", DeviceNamespace: "default"}
	if c.method != "RemoveDevice" || diffProto(want, c.req) != "" {
		t.Fatalf("call after a delete = %s %v, want RemoveDevice %v", c.method, c.req, want)
	}
	e.fromCloud(bus.OpDelete, "default/devicemodel/thermo-model", "")
	c = next(t, calls)
	wantRM := &dmipb.RemoveDeviceModelRequest{ModelName: "thermo-model", ModelNamespace: "default"}
	if c.method != "RemoveDeviceModel" || diffProto(wantRM, c.req) != "" {
		t.Fatalf("call after a model delete = %s %v, want RemoveDeviceModel %v", c.method, c.req, wantRM)
	}
	if s := e.dmi.Stats(); s.Calls < 4 || s.CallErrors != 0 {
		t.Errorf("Stats() = %+v, want at least 4 calls answered and no errors", s)
	}
}

// A mapper that is away gets its calls when it is back, in order.
func TestMapperAway(t *testing.T) {
	e := start(t, t.TempDir(), Config{})
	calls := make(chan mapperCall, 16)
	path := filepath.Join(e.dir, "modbus.sock")
	register(t, manager(t, e.socket()), "modbus", path, true) // nobody listens yet
	e.fromCloud(bus.OpInsert, "default/devicemodel/thermo-model", modelJSON)
	e.fromCloud(bus.OpInsert, "default/device/thermo-1", deviceWith("20"))
	// Nothing signals a failed attempt but the counter: poll it.
	for deadline := time.Now().Add(time.Minute); e.dmi.Stats().Retries < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Stats() = %+v, want retries while the mapper is away", e.dmi.Stats())
		}
	}
	startMapper(t, path, calls)
	for _, want := range []string{"CreateDeviceModel", "RegisterDevice"} {
		if c := next(t, calls); c.method != want {
			t.Fatalf("call = %s, want %s", c.method, want)
		}
	}
}

// A restarted node answers MapperRegister from its store with no cloud,
// and calls the mapper registered before the restart.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, Config{})
	path := filepath.Join(dir, "modbus.sock")
	register(t, manager(t, e.socket()), "modbus", path, true)
	e.fromCloud(bus.OpInsert, "default/devicemodel/thermo-model", modelJSON)
	e.fromCloud(bus.OpInsert, "default/device/thermo-1", deviceWith("20"))
	e.cloudMessage("default/device/thermo-1")
	e.stop()

	e = start(t, dir, Config{})
	calls := make(chan mapperCall, 16)
	startMapper(t, path, calls)
	// The registration survived: a cloud change reaches the mapper
	// without a new MapperRegister.
	e.fromCloud(bus.OpUpdate, "default/device/thermo-1", deviceWith("25"))
	if c := next(t, calls); c.method != "UpdateDevice" || c.req.(*dmipb.UpdateDeviceRequest).Device.Spec.Properties[0].Desired.Value != "25" {
		t.Fatalf("call after restart = %s %v, want UpdateDevice with desired 25", c.method, c.req)
	}
	resp := register(t, manager(t, e.socket()), "modbus", path, true)
	if d := diffProto([]*dmipb.Device{wantDevice(t, "25")}, resp.DeviceList); d != "" {
		t.Errorf("MapperRegister after restart, devices (-want +got):\n%s", d)
	}
	if d := diffProto([]*dmipb.DeviceModel{wantModel()}, resp.ModelList); d != "" {
		t.Errorf("MapperRegister after restart, models (-want +got):\n%s", d)
	}
}

// membership adds thermo-1 to twin, as the cloud does for a Device bound
// to the node, and connects twin to the cloud.
func membership(e *env) {
	e.toTwin(bus.ModuleEdgeHub, bus.OpConnect, bus.ResNodeConnection, bus.JSONString(bus.CloudConnected))
	e.toTwin(bus.SourceDeviceController, bus.OpUpdate, bus.ResMembership,
		[]byte(`{"event_id":"m-1","timestamp":1,"added_devices":[{"id":"default/thermo-1","name":"thermo-1","state":"unknown",`+
			`"twin":{"temperature":{"expected":{"value":"20"},"metadata":{"type":"float"}}}}],"removed_devices":null}`))
}

func TestReportToCloud(t *testing.T) {
	e := start(t, t.TempDir(), Config{})
	membership(e)
	e.published("$hw/events/node/edge-1/membership/updated") // twin has the device
	c := manager(t, e.socket())
	ctx := context.Background()
	_, err := c.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{DeviceName: "thermo-1", DeviceNamespace: "default",
		ReportedDevice: &dmipb.DeviceStatus{Twins: []*dmipb.Twin{{PropertyName: "temperature",
			ObservedDesired: &dmipb.TwinProperty{Value: "20"}, Reported: &dmipb.TwinProperty{Value: "21.5"}}}}})
	if err != nil {
		t.Fatalf("ReportDeviceStatus() = %v", err)
	}
	// Twin handles it as an MQTT twin update: a result on MQTT, and
	// edge_updated to the cloud.
	e.published("$hw/events/device/default/thermo-1/twin/update/result")
	m := e.cloudMessage("device/default/thermo-1/twin/edge_updated")
	var upd struct {
		Twin map[string]struct {
			Actual   struct{ Value string }
			Expected struct{ Value string }
		}
	}
	if err := json.Unmarshal(bus.ContentBytes(m.Content), &upd); err != nil || upd.Twin["temperature"].Actual.Value != "21.5" {
		t.Fatalf("edge_updated content = %s (%v), want temperature actual 21.5", m.Content, err)
	}
	if m.Route.Operation != bus.OpUpdate {
		t.Errorf("edge_updated operation = %s, want %s", m.Route.Operation, bus.OpUpdate)
	}

	if _, err := c.ReportDeviceStates(ctx, &dmipb.ReportDeviceStatesRequest{DeviceName: "thermo-1", DeviceNamespace: "default", State: "online"}); err != nil {
		t.Fatalf("ReportDeviceStates() = %v", err)
	}
	s := e.cloudMessage("device/default/thermo-1/state/update")
	if !strings.Contains(string(bus.ContentBytes(s.Content)), `"online"`) {
		t.Errorf("state/update content = %s, want state online", s.Content)
	}
}

func TestBadRequests(t *testing.T) {
	e := start(t, t.TempDir(), Config{})
	c := manager(t, e.socket())
	ctx := context.Background()
	tw := []*dmipb.Twin{{PropertyName: "temperature", Reported: &dmipb.TwinProperty{Value: "1"}}}
	tests := []struct {
		name string
		call func() error
	}{
		{"register without mapper", func() error {
			_, err := c.MapperRegister(ctx, &dmipb.MapperRegisterRequest{WithData: true})
			return err
		}},
		{"register without protocol", func() error {
			_, err := c.MapperRegister(ctx, &dmipb.MapperRegisterRequest{Mapper: &dmipb.MapperInfo{Name: "m", Address: []byte("/x")}})
			return err
		}},
		{"register without address", func() error {
			_, err := c.MapperRegister(ctx, &dmipb.MapperRegisterRequest{Mapper: &dmipb.MapperInfo{Protocol: "modbus"}})
			return err
		}},
		{"status without twins", func() error {
			_, err := c.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{DeviceName: "d", DeviceNamespace: "default"})
			return err
		}},
		{"status with empty twin list", func() error {
			_, err := c.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{DeviceName: "d", ReportedDevice: &dmipb.DeviceStatus{}})
			return err
		}},
		{"status without device name", func() error {
			_, err := c.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{ReportedDevice: &dmipb.DeviceStatus{Twins: tw}})
			return err
		}},
		{"status with a nil twin", func() error {
			_, err := c.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{DeviceName: "d", ReportedDevice: &dmipb.DeviceStatus{Twins: []*dmipb.Twin{{}}}})
			return err
		}},
		{"status with a twin without values", func() error {
			_, err := c.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{DeviceName: "d", ReportedDevice: &dmipb.DeviceStatus{Twins: []*dmipb.Twin{{PropertyName: "p"}}}})
			return err
		}},
		{"status with a wildcard name", func() error {
			_, err := c.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{DeviceName: "+", ReportedDevice: &dmipb.DeviceStatus{Twins: tw}})
			return err
		}},
		{"states without state", func() error {
			_, err := c.ReportDeviceStates(ctx, &dmipb.ReportDeviceStatesRequest{DeviceName: "d", DeviceNamespace: "default"})
			return err
		}},
		{"states without name", func() error {
			_, err := c.ReportDeviceStates(ctx, &dmipb.ReportDeviceStatesRequest{State: "online"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: error = %v, want InvalidArgument", tt.name, err)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	e := start(t, t.TempDir(), Config{Rate: 0.001, Burst: 2})
	c := manager(t, e.socket())
	req := &dmipb.ReportDeviceStatesRequest{DeviceName: "d", DeviceNamespace: "default", State: "online"}
	for i := range 2 {
		// Twin knows no device "d": within the burst the call reaches
		// twin, which answers NotFound once it has looked.
		if _, err := c.ReportDeviceStates(context.Background(), req); status.Code(err) != codes.NotFound {
			t.Fatalf("call %d: %v, want twin's NotFound within the burst", i, err)
		}
	}
	if _, err := c.ReportDeviceStates(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("call over the burst: %v, want ResourceExhausted", err)
	}
}

// The binary must not carry grpc-go, protobuf's reflection runtime or the
// generated types: they are for tests only. And dmi, a module, talks to
// other modules through bus only; rpc depends on no edgenode package.
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	list := func(pkg string) []string {
		out, err := exec.Command(gobin, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, p := range list("edgenode") {
		if strings.HasPrefix(p, "google.golang.org/grpc") || p == "edgenode/dmi/dmipb" ||
			strings.HasPrefix(p, "google.golang.org/protobuf/reflect") {
			t.Errorf("the binary imports %s", p)
		}
	}
	allowed := map[string]bool{"edgenode/dmi": true, "edgenode/bus": true, "edgenode/db": true, "edgenode/rpc": true}
	for _, p := range list("edgenode/dmi") {
		if strings.HasPrefix(p, "edgenode/") && !allowed[p] {
			t.Errorf("dmi depends on %s; modules talk through bus only", p)
		}
	}
	for _, p := range list("edgenode/rpc") {
		if strings.HasPrefix(p, "edgenode/") && p != "edgenode/rpc" {
			t.Errorf("rpc depends on %s", p)
		}
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(1, 2, func() time.Time { return now })
	got := []bool{l.allow(), l.allow(), l.allow()}
	now = now.Add(time.Second)
	got = append(got, l.allow(), l.allow())
	if d := cmp.Diff([]bool{true, true, false, true, false}, got); d != "" {
		t.Errorf("allow() sequence (-want +got):\n%s", d)
	}
}

// A socket another process serves (edgecore beside the node) is not taken
// over: the node runs without a DMI server and the other keeps its socket.
func TestSocketServedAlready(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "dmi.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start(t, dir, Config{Socket: socket})
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatalf("the other process's socket is gone: %v", err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("the other process's listener: %v", err)
	}
	if err := Check(socket); err == nil {
		t.Error("Check(served socket) = nil, want an error")
	}
}
