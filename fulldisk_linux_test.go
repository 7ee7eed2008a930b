package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sys/unix"

	"edgenode/internal/testenv"
	"edgenode/mqtt/mqtttest"
)

// logAddr returns the addr= of the first log line with msg.
func logAddr(log, msg string) string {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if addr, ok := strings.CutPrefix(f, "addr="); ok {
				return addr
			}
		}
	}
	return ""
}

// TestFullDiskAtStart: a node whose 2 MiB data partition is full when it
// starts runs read-only: /healthz says so (and stays ok), and a device app
// still gets its twin/get answered from the store.
func TestFullDiskAtStart(t *testing.T) {
	testenv.Root(t, "mount a tmpfs as the data partition")
	bin := buildEdgenode(t)
	base := t.TempDir()
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", data, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(data, unix.MNT_DETACH) })
	cfgPath := filepath.Join(base, "config.yaml")
	cfg := "version: 1\nnodeName: full-node\nwatchdog:\n  device: off\ndmi:\n  socket: none\nhealth:\n  listen: 127.0.0.1:0\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(data, "devices"), 0o700)
	device := `{"added_devices":[{"id":"default/lamp","name":"lamp","state":"unknown",
  "twin":{"power":{"expected":{"value":"off"},"metadata":{"type":"string"}}}}]}`
	if err := os.WriteFile(filepath.Join(data, "devices", "lamp.json"), []byte(device), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	start := func() (*exec.Cmd, *logBuffer, string, chan struct{}) {
		t.Helper()
		var stderr logBuffer
		cmd := exec.CommandContext(ctx, bin, "run", "--config", cfgPath, "--data-dir", data)
		cmd.Stderr = &stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		health, err := waitHealthAddr(ctx, stderr.String, exited)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		return cmd, &stderr, health, exited
	}
	stop := func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}

	// First run: the device file goes into the database.
	cmd, stderr, health, exited := start()
	if err := waitMetric(ctx, "http://"+health+"/metrics", "edgenode_twin_published_total ", exited); err != nil {
		t.Fatalf("twin never published the device file's membership: %v\n%s", err, stderr.String())
	}
	stop(cmd, exited)
	os.Remove(filepath.Join(data, "devices", "lamp.json"))

	// Fill the partition.
	f, err := os.Create(filepath.Join(data, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 4096); ; {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()

	cmd, stderr, health, exited = start()
	defer stop(cmd, exited)
	doc, err := waitHealthy(ctx, "http://"+health+"/healthz", exited)
	if err != nil {
		t.Fatalf("healthz on a full disk: %v\n%s", err, stderr.String())
	}
	if doc.ReadOnly == "" || doc.Status != "ok" {
		t.Errorf("healthz on a full disk = %+v, want status ok and readOnly said", doc)
	}
	var broker string
	for deadline := time.Now().Add(2 * time.Minute); broker == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		broker = logAddr(stderr.String(), "mqtt broker listening")
	}
	if broker == "" {
		t.Fatalf("the broker never listened:\n%s", stderr.String())
	}
	c := mqtttest.Connect(t, mqtttest.ClientOptions(broker))
	topic := "$hw/events/device/default/lamp/twin/get"
	got := make(chan string, 1)
	if err := mqtttest.Wait(c.Subscribe(topic+"/result", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) })); err != nil {
		t.Fatal(err)
	}
	if err := mqtttest.Wait(c.Publish(topic, 1, false, `{"event_id":"e1"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if !strings.Contains(p, `"power"`) || !strings.Contains(p, `"off"`) {
			t.Errorf("twin/get/result on a full disk = %s, want lamp's power twin", p)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("no twin/get/result on a full disk\n%s", stderr.String())
	}
}
