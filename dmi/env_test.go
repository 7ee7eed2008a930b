package dmi

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/dmi/dmipb"
	"edgenode/meta"
	"edgenode/twin"
)

// env is a node's device side in one process: a real SQLite file, the
// bus, meta, twin and dmi, with the hub and the eventbus as plain bus
// modules the test reads (the cloud boundary and the MQTT boundary).
type env struct {
	t      *testing.T
	dir    string
	b      *bus.Bus
	d      *db.DB
	dmi    *DMI
	cancel context.CancelFunc
	wg     sync.WaitGroup
	cloud  chan bus.Message // what reached the hub
	mqtt   chan bus.Message // what twin published
}

func (e *env) socket() string { return filepath.Join(e.dir, "dmi.sock") }

// start runs the modules on the store in dir until the test ends or stop.
func start(t *testing.T, dir string, cfg Config) *env {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(dir, db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, b: bus.New(bus.Config{QueueLen: 512}, nil), d: d,
		cloud: make(chan bus.Message, 512), mqtt: make(chan bus.Message, 512)}
	for _, m := range []struct {
		m bus.Module
		g bus.Group
	}{{bus.ModuleHub, bus.GroupHub}, {bus.ModuleMQTT, bus.GroupBus}} {
		if err := e.b.AddModule(m.m, m.g); err != nil {
			t.Fatal(err)
		}
	}
	mm, err := meta.New(meta.Config{NodeName: "edge-1"}, e.b, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := twin.New(twin.Config{NodeName: "edge-1", DevicesDir: ""}, e.b, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket == "" {
		cfg.Socket = e.socket()
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 5*time.Millisecond, 50*time.Millisecond
	}
	e.dmi, err = New(cfg, e.b, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, r := range []interface{ Run(context.Context) error }{mm, tw, e.dmi} {
		e.wg.Go(func() {
			// A module stopped while it still loads reports the
			// cancellation; that is no failure here.
			if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run() = %v", err)
			}
		})
	}
	e.wg.Go(func() {
		for {
			msg, err := e.b.Receive(ctx, bus.ModuleHub)
			if err != nil {
				return
			}
			e.cloud <- msg
		}
	})
	e.wg.Go(func() {
		for {
			msg, err := e.b.Receive(ctx, bus.ModuleMQTT)
			if err != nil {
				return
			}
			select {
			case e.mqtt <- msg:
			default: // a test that does not read them
			}
		}
	})
	<-e.dmi.Ready()
	t.Cleanup(e.stop)
	return e
}

// stop ends every module and closes the store; safe to call twice.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.wg.Wait()
	e.d.Close()
	e.cancel = nil
}

// fromCloud sends what the hub hands meta for a device controller message.
func (e *env) fromCloud(op bus.Op, resource, content string) {
	e.t.Helper()
	m := bus.NewMessage(bus.SourceDeviceController, bus.GroupResource, op, resource, []byte(content))
	if err := e.b.Send(bus.ModuleMeta, m); err != nil {
		e.t.Fatal(err)
	}
}

// toTwin sends a twin-group message from the cloud (membership) or the
// hub (connection).
func (e *env) toTwin(src bus.Module, op bus.Op, resource string, content []byte) {
	e.t.Helper()
	if err := e.b.Send(bus.ModuleTwin, bus.NewMessage(src, bus.GroupTwin, op, resource, content)); err != nil {
		e.t.Fatal(err)
	}
}

// cloudMessage returns the next message for the cloud whose resource is
// res, skipping meta's acknowledgements and the rest.
func (e *env) cloudMessage(res string) bus.Message {
	e.t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case m := <-e.cloud:
			if m.Route.Resource == res {
				return m
			}
		case <-timeout:
			e.t.Fatalf("no message for the cloud with resource %s", res)
		}
	}
}

// published waits for twin's MQTT publish on topic.
func (e *env) published(topic string) bus.Message {
	e.t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case m := <-e.mqtt:
			if m.Route.Resource == topic {
				return m
			}
		case <-timeout:
			e.t.Fatalf("twin published nothing on %s", topic)
		}
	}
}

// mapperCall is one call a test mapper received.
type mapperCall struct {
	method string
	req    proto.Message
}

// testMapper is a stock grpc-go DeviceMapperService recording its calls.
type testMapper struct {
	dmipb.UnimplementedDeviceMapperServiceServer
	calls chan mapperCall
	gs    *grpc.Server
	wg    sync.WaitGroup
	path  string
}

// startMapper serves a test mapper on path until the test ends or stop.
func startMapper(t *testing.T, path string, calls chan mapperCall) *testMapper {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMapper{calls: calls, gs: grpc.NewServer(), path: path}
	dmipb.RegisterDeviceMapperServiceServer(tm.gs, tm)
	tm.wg.Go(func() { tm.gs.Serve(ln) })
	t.Cleanup(tm.stop)
	return tm
}

func (tm *testMapper) stop() { tm.gs.Stop(); tm.wg.Wait() }

func (tm *testMapper) RegisterDevice(_ context.Context, r *dmipb.RegisterDeviceRequest) (*dmipb.RegisterDeviceResponse, error) {
	tm.calls <- mapperCall{"RegisterDevice", r}
	return &dmipb.RegisterDeviceResponse{DeviceName: r.GetDevice().GetName(), DeviceNamespace: r.GetDevice().GetNamespace()}, nil
}

func (tm *testMapper) UpdateDevice(_ context.Context, r *dmipb.UpdateDeviceRequest) (*dmipb.UpdateDeviceResponse, error) {
	tm.calls <- mapperCall{"UpdateDevice", r}
	return &dmipb.UpdateDeviceResponse{}, nil
}

func (tm *testMapper) RemoveDevice(_ context.Context, r *dmipb.RemoveDeviceRequest) (*dmipb.RemoveDeviceResponse, error) {
	tm.calls <- mapperCall{"RemoveDevice", r}
	return &dmipb.RemoveDeviceResponse{}, nil
}

func (tm *testMapper) CreateDeviceModel(_ context.Context, r *dmipb.CreateDeviceModelRequest) (*dmipb.CreateDeviceModelResponse, error) {
	tm.calls <- mapperCall{"CreateDeviceModel", r}
	return &dmipb.CreateDeviceModelResponse{DeviceModelName: r.GetModel().GetName(), DeviceModelNamespace: r.GetModel().GetNamespace()}, nil
}

func (tm *testMapper) UpdateDeviceModel(_ context.Context, r *dmipb.UpdateDeviceModelRequest) (*dmipb.UpdateDeviceModelResponse, error) {
	tm.calls <- mapperCall{"UpdateDeviceModel", r}
	return &dmipb.UpdateDeviceModelResponse{}, nil
}

func (tm *testMapper) RemoveDeviceModel(_ context.Context, r *dmipb.RemoveDeviceModelRequest) (*dmipb.RemoveDeviceModelResponse, error) {
	tm.calls <- mapperCall{"RemoveDeviceModel", r}
	return &dmipb.RemoveDeviceModelResponse{}, nil
}

// next returns the mapper's next call.
func next(t *testing.T, calls chan mapperCall) mapperCall {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(time.Minute):
		t.Fatal("the mapper got no call")
	}
	return mapperCall{}
}

// manager returns a stock grpc-go client of the edge's DMI server, dialled
// the mapper-framework's way: the socket path as target, a unix dialer.
func manager(t *testing.T, socket string) dmipb.DeviceManagerServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return dmipb.NewDeviceManagerServiceClient(cc)
}

// register registers a mapper of protocol at socket path the way the
// mapper-framework does at start (RegisterMapper(true)), within its 1 s.
func register(t *testing.T, c dmipb.DeviceManagerServiceClient, protocol, path string, withData bool) *dmipb.MapperRegisterResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := c.MapperRegister(ctx, &dmipb.MapperRegisterRequest{WithData: withData, Mapper: &dmipb.MapperInfo{
		Name: protocol + "-mapper", Version: "v1.23.0", ApiVersion: "v1.0.0", Protocol: protocol, Address: []byte(path), State: "ok"}})
	if err != nil {
		t.Fatalf("MapperRegister(%s) = %v", protocol, err)
	}
	return resp
}
