package hub

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/hub/hubtest"
)

func podPatch(pod, version int) bus.Message {
	res := bus.ResourcePath("default", bus.KindPodPatch, fmt.Sprintf("pod-%03d", pod))
	return bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpPatch, res,
		bus.JSONString(fmt.Sprintf(`{"status":{"phase":"Running","v":%d}}`, version)))
}

func TestOutageCoalescesStatuses(t *testing.T) {
	const pods, versions = 100, 10
	srv := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	cfg.MessageQPS = 100
	cfg.MessageBurst = 10
	handled := newCounter()
	n := startNode(t, cfg, func(c *Client) { c.queued = handled.inc })
	n.recvConn(fakeMeta)
	if err := srv.WaitConnects(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	if got := n.recvConn(fakeMeta); got != bus.CloudDisconnected {
		t.Fatalf("event = %q, want disconnected", got)
	}
	for v := range versions {
		for p := range pods {
			if err := n.b.Send(bus.ModuleHub, podPatch(p, v)); err != nil {
				t.Fatalf("Send(pod %d v%d) = %v", p, v, err)
			}
		}
	}
	handled.wait(t, pods*versions)
	if got, want := n.c.Stats().Coalesced, uint64(pods*(versions-1)); got != want {
		t.Errorf("Stats().Coalesced = %d, want %d", got, want)
	}
	if err := srv.Resume(); err != nil {
		t.Fatalf("Resume() = %v", err)
	}
	// A last status after the outage marks the end: the queue is FIFO, so
	// everything queued before it has arrived when it does.
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	end := podPatch(999, 0)
	if err := n.b.Send(bus.ModuleHub, end); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitFor(ctxT(t), func(m bus.Message) bool { return m.Header.ID == end.Header.ID }); err != nil {
		t.Fatal(err)
	}
	var got []hubtest.Record
	for _, r := range srv.Records() {
		if strings.Contains(r.Msg.Route.Resource, "/podpatch/") && r.Msg.Header.ID != end.Header.ID {
			got = append(got, r)
		}
	}
	if len(got) != pods {
		t.Fatalf("cloud received %d pod statuses after the outage, want %d (one per pod)", len(got), pods)
	}
	for i, r := range got {
		wantRes := fmt.Sprintf("default/podpatch/pod-%03d", i)
		wantContent := fmt.Sprintf(`{"status":{"phase":"Running","v":%d}}`, versions-1)
		if c, _ := bus.ContentString(r.Msg.Content); r.Msg.Route.Resource != wantRes || c != wantContent {
			t.Errorf("status #%d = %s %s, want %s %s", i, r.Msg.Route.Resource, c, wantRes, wantContent)
		}
	}
	// Rate: after the burst, one message per 1/QPS. Checked as a lower
	// bound on the span with a wide margin, so a slow machine cannot fail
	// it; a missing limit sends all 100 in a few milliseconds.
	span := got[pods-1].Time.Sub(got[0].Time)
	floor := time.Duration(float64(pods-cfg.MessageBurst) / cfg.MessageQPS * float64(time.Second) / 2)
	if span < floor {
		t.Errorf("%d statuses sent within %v, want at least %v at %v/s with burst %d", pods, span, floor, cfg.MessageQPS, cfg.MessageBurst)
	}
}

func TestRestartWithCloudDown(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	n := startNode(t, cfg)
	n.recvConn(fakeMeta)
	n.stop()

	srv.Pause()
	cfg.Token = "" // the node runs on its saved certificate
	handled := newCounter()
	n2 := startNode(t, cfg, func(c *Client) { c.queued = handled.inc })
	st := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpPatch, bus.ResourcePath(bus.NullNamespace, bus.KindNodePatch, testNode), bus.JSONString(`{}`))
	if err := n2.b.Send(bus.ModuleHub, st); err != nil {
		t.Fatal(err)
	}
	handled.wait(t, 1)
	if n2.c.Connected() {
		t.Fatal("Connected() = true with the cloud down")
	}
	if err := srv.Resume(); err != nil {
		t.Fatalf("Resume() = %v", err)
	}
	if got := n2.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	if _, err := srv.WaitFor(ctxT(t), func(m bus.Message) bool { return m.Header.ID == st.Header.ID }); err != nil {
		t.Fatalf("status made while the cloud was down: %v", err)
	}
	if got := srv.Issued(); got != 1 {
		t.Errorf("certificates issued = %d, want 1", got)
	}
}

func TestRenewalReconnects(t *testing.T) {
	srv := newServer(t, hubtest.Config{CertValidity: 3 * time.Second})
	n := startNode(t, testConfig(t, srv, bus.EraV123))
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q", got)
	}
	// At 70-90 % of the lifetime the client renews and reconnects.
	if got := n.recvConn(fakeMeta); got != bus.CloudDisconnected {
		t.Fatalf("event = %q, want disconnected for the renewal", got)
	}
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	if got := n.c.Stats().Renewals; got < 1 {
		t.Errorf("Stats().Renewals = %d, want at least 1", got)
	}
	if got := srv.Issued(); got < 2 {
		t.Errorf("certificates issued = %d, want at least 2 (bootstrap and renewal)", got)
	}
}
