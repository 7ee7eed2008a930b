package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"edgenode/board"
	"edgenode/bus"
	"edgenode/db"
	"edgenode/dmi"
	"edgenode/dmi/dmipb"
	"edgenode/hub"
	"edgenode/hub/hubtest"
	"edgenode/meta"
	"edgenode/twin"
)

// e2eMapper is a stock grpc-go mapper that reports the calls it gets.
type e2eMapper struct {
	dmipb.UnimplementedDeviceMapperServiceServer
	calls chan string // method and device or model name, e.g. "RegisterDevice thermo-1"
}

func (m *e2eMapper) RegisterDevice(_ context.Context, r *dmipb.RegisterDeviceRequest) (*dmipb.RegisterDeviceResponse, error) {
	m.calls <- "RegisterDevice " + r.GetDevice().GetName() + " desired=" + r.GetDevice().GetSpec().GetProperties()[0].GetDesired().GetValue()
	return &dmipb.RegisterDeviceResponse{DeviceName: r.GetDevice().GetName(), DeviceNamespace: r.GetDevice().GetNamespace()}, nil
}

func (m *e2eMapper) UpdateDevice(_ context.Context, r *dmipb.UpdateDeviceRequest) (*dmipb.UpdateDeviceResponse, error) {
	m.calls <- "UpdateDevice " + r.GetDevice().GetName() + " desired=" + r.GetDevice().GetSpec().GetProperties()[0].GetDesired().GetValue()
	return &dmipb.UpdateDeviceResponse{}, nil
}

func (m *e2eMapper) CreateDeviceModel(_ context.Context, r *dmipb.CreateDeviceModelRequest) (*dmipb.CreateDeviceModelResponse, error) {
	m.calls <- "CreateDeviceModel " + r.GetModel().GetName()
	return &dmipb.CreateDeviceModelResponse{DeviceModelName: r.GetModel().GetName(), DeviceModelNamespace: r.GetModel().GetNamespace()}, nil
}

const (
	e2eModel  = `{"metadata":{"name":"thermo-model","namespace":"default"},"spec":{"protocol":"modbus","properties":[{"name":"temperature","type":"FLOAT"}]}}`
	e2eDevice = `{"metadata":{"name":"thermo-1","namespace":"default"},"spec":{"deviceModelRef":{"name":"thermo-model"},"nodeName":"edge-1",` +
		`"protocol":{"protocolName":"modbus","configData":{"slaveID":1}},"properties":[{"name":"temperature","desired":{"value":"DESIRED"}}]}}`
	e2eMembership = `{"event_id":"m-1","timestamp":1,"added_devices":[{"id":"default/thermo-1","name":"thermo-1","state":"unknown",` +
		`"twin":{"temperature":{"expected":{"value":"20"},"metadata":{"type":"float"}}}}],"removed_devices":null}`
)

// TestDMIWithCloud runs meta, twin, dmi and the hub against a hubtest
// cloud and a stock grpc-go mapper: the v1.23 cloud's devicemodel and
// device reach the mapper as CreateDeviceModel and RegisterDevice, a new
// desired value as UpdateDevice, and the mapper's ReportDeviceStatus
// reaches the cloud as twin/edge_updated.
func TestDMIWithCloud(t *testing.T) {
	srv := hubtest.NewServer(hubtest.Config{Retransmit: 200 * time.Millisecond})
	defer srv.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := db.Open(ctx, filepath.Join(dir, db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(bus.Config{}, nil)
	for _, m := range []bus.Module{bus.ModulePod, bus.ModuleMQTT} {
		if err := b.AddModule(m, ""); err != nil {
			t.Fatal(err)
		}
	}
	mm, err := meta.New(meta.Config{NodeName: e2eNode}, b, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := twin.New(twin.Config{NodeName: e2eNode}, b, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "dmi.sock")
	dm, err := dmi.New(dmi.Config{Socket: socket, RetryMin: 10 * time.Millisecond}, b, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{Server: srv.Addr, CertServer: srv.CertURL, Token: srv.Token(e2eNode), NodeName: e2eNode,
		DataDir: dir, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 6)
	for _, m := range []runner{mm, tw, dm, h} {
		go func() { done <- m.Run(ctx) }()
	}
	// The eventbus and edged stand-ins drain their queues; twin's MQTT
	// topics are kept for the test.
	published := make(chan string, 64)
	for _, m := range []bus.Module{bus.ModulePod, bus.ModuleMQTT} {
		go func() {
			for {
				msg, err := b.Receive(ctx, m)
				if err != nil {
					done <- nil
					return
				}
				select {
				case published <- msg.Route.Resource:
				default:
				}
			}
		}()
	}
	defer func() {
		cancel()
		for range 6 {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run() = %v", err)
			}
		}
		store.Close()
	}()
	<-dm.Ready()

	// The mapper: a stock grpc-go DeviceMapperService, registered over
	// DMI the mapper-framework's way.
	mapperSock := filepath.Join(dir, "modbus.sock")
	ln, err := net.Listen("unix", mapperSock)
	if err != nil {
		t.Fatal(err)
	}
	mapper := &e2eMapper{calls: make(chan string, 16)}
	gs := grpc.NewServer()
	dmipb.RegisterDeviceMapperServiceServer(gs, mapper)
	go gs.Serve(ln)
	defer gs.Stop()
	cc, err := grpc.NewClient("passthrough:///"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	mgr := dmipb.NewDeviceManagerServiceClient(cc)
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	_, err = mgr.MapperRegister(rctx, &dmipb.MapperRegisterRequest{WithData: true,
		Mapper: &dmipb.MapperInfo{Name: "modbus-mapper", Protocol: "modbus", Address: []byte(mapperSock)}})
	rcancel()
	if err != nil {
		t.Fatalf("MapperRegister() = %v", err)
	}

	push := func(group bus.Group, op bus.Op, res, content string) {
		t.Helper()
		m := bus.NewMessage(bus.SourceDeviceController, group, op, res, []byte(content))
		srv.Push(m)
		if err := srv.WaitAcked(waitCtx(t), m.Header.ID); err != nil && group == bus.GroupResource {
			t.Fatalf("%s %s not acknowledged: %v", op, res, err)
		}
	}
	nextCall := func() string {
		t.Helper()
		select {
		case c := <-mapper.calls:
			return c
		case <-time.After(time.Minute):
			t.Fatal("the mapper got no call")
		}
		return ""
	}
	push(bus.GroupResource, bus.OpInsert, "default/devicemodel/thermo-model", e2eModel)
	push(bus.GroupResource, bus.OpInsert, "default/device/thermo-1", strings.Replace(e2eDevice, "DESIRED", "20", 1))
	for _, want := range []string{"CreateDeviceModel thermo-model", "RegisterDevice thermo-1 desired=20"} {
		if got := nextCall(); got != want {
			t.Fatalf("mapper call = %q, want %q", got, want)
		}
	}
	push(bus.GroupResource, bus.OpUpdate, "default/device/thermo-1", strings.Replace(e2eDevice, "DESIRED", "30", 1))
	if got, want := nextCall(), "UpdateDevice thermo-1 desired=30"; got != want {
		t.Fatalf("mapper call = %q, want %q", got, want)
	}

	// Membership makes the device known to twin; a report then reaches
	// the cloud as twin/edge_updated.
	srv.Push(bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpUpdate, bus.ResMembership, []byte(e2eMembership)))
	for topic := ""; topic != "$hw/events/node/"+e2eNode+"/membership/updated"; {
		select {
		case topic = <-published:
		case <-time.After(time.Minute):
			t.Fatal("twin did not publish the membership update")
		}
	}
	if _, err := mgr.ReportDeviceStatus(ctx, &dmipb.ReportDeviceStatusRequest{DeviceName: "thermo-1", DeviceNamespace: "default",
		ReportedDevice: &dmipb.DeviceStatus{Twins: []*dmipb.Twin{{PropertyName: "temperature",
			ObservedDesired: &dmipb.TwinProperty{Value: "30"}, Reported: &dmipb.TwinProperty{Value: "21.5"}}}}}); err != nil {
		t.Fatalf("ReportDeviceStatus() = %v", err)
	}
	// OK means committed, as an MQTT result does: the value is in the
	// store when the call returns.
	twins, err := store.DeviceTwins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := false
	for _, tw := range twins {
		stored = stored || tw.DeviceID == "default/thermo-1" && tw.Name == "temperature" && tw.Actual.String == "21.5"
	}
	if !stored {
		t.Errorf("after ReportDeviceStatus() returned OK the store holds %+v, want temperature reported 21.5", twins)
	}
	res := "device/default/thermo-1/" + bus.ResTwinEdgeUpdated
	got, err := srv.WaitFor(waitCtx(t), func(m bus.Message) bool { return m.Route.Resource == res })
	if err != nil {
		t.Fatalf("no %s at the cloud: %v", res, err)
	}
	if c := string(bus.ContentBytes(got.Content)); !strings.Contains(c, `"21.5"`) || got.Route.Operation != bus.OpUpdate {
		t.Errorf("edge_updated = %s %s, want an update carrying 21.5", got.Route.Operation, c)
	}
}

func TestCheckDMI(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(dir, "served.sock")
	ln, err := net.Listen("unix", served)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tests := []struct {
		socket string
		want   board.CheckStatus
	}{
		{filepath.Join(dir, "run", "kubeedge", "dmi.sock"), board.Pass},
		{filepath.Join(file, "dmi.sock"), board.Warn}, // the folder cannot be made
		{served, board.Warn},
		{DMIOff, board.Pass},
	}
	for _, tt := range tests {
		if got := checkDMI(tt.socket); got.Status != tt.want || got.Name != "dmi" {
			t.Errorf("checkDMI(%s) = %v, want %s", tt.socket, got, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); !os.IsNotExist(err) {
		t.Errorf("checkDMI left a folder behind: %v", err)
	}
}

func TestDMIConfig(t *testing.T) {
	tests := []struct {
		name, file string
		code       int
		want       string // in stdout (code 0) or stderr (code 1)
	}{
		{"default", "", 0, "socket: /etc/kubeedge/dmi.sock"},
		{"moved", "dmi:\n  socket: /run/kubeedge/dmi.sock\n", 0, "socket: /run/kubeedge/dmi.sock"},
		{"off", "dmi:\n  socket: none\n", 0, "socket: none"},
		{"relative", "dmi:\n  socket: dmi.sock\n", 1, "dmi.socket: \"dmi.sock\" must be an absolute path"},
		{"back-off", "dmi:\n  retryMin: 1m\n  retryMax: 1s\n", 1, "dmi.retryMax"},
		{"unknown key", "dmi:\n  sock: /x\n", 1, "sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte("version: 1\n"+tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb strings.Builder
			code := realMain([]string{"config", "--config", path, "--data-dir", dir, "--node-name", "n1"}, &out, &errb)
			text := out.String()
			if code != 0 {
				text = errb.String()
			}
			if code != tt.code || !strings.Contains(text, tt.want) {
				t.Errorf("edgenode config with %q = %d, want %d and %q in:\n%s", tt.file, code, tt.code, tt.want, text)
			}
		})
	}
}
