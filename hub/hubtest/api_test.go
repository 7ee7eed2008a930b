package hubtest

import (
	"encoding/json"
	"strings"
	"testing"

	"edgenode/bus"
)

// call runs one request through the API side as handle does.
func call(s *Server, m bus.Message) (bus.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiRequest(m)
}

func req(op bus.Op, res, content string) bus.Message {
	return bus.NewMessage(bus.ModulePod, bus.GroupMeta, op, res, []byte(content))
}

// respErr returns the Err of an {"Object","Err"} answer, or "" when null.
func respErr(t *testing.T, m bus.Message) string {
	t.Helper()
	var r struct{ Object, Err json.RawMessage }
	if err := json.Unmarshal(m.Content, &r); err != nil {
		t.Fatalf("answer %s: %v", m.Content, err)
	}
	if string(r.Err) == "null" || len(r.Err) == 0 {
		return ""
	}
	return string(r.Err)
}

func TestAPIRefusesWhatKubeAPIServerRefuses(t *testing.T) {
	const pod = `{"metadata":{"name":"p","namespace":"default","uid":"u-1"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`
	tests := []struct {
		name, res, content string
		op                 bus.Op
		wantErr            string // "" = accepted
	}{
		{"node", "null/node/n1", `{"metadata":{"name":"n1","labels":{"kubernetes.io/os":"linux"}},"status":{"conditions":[{"type":"Ready","status":"True","lastHeartbeatTime":"2026-01-01T00:00:00Z"}]}}`, bus.OpInsert, ""},
		{"node unknown field", "null/node/n2", `{"metadata":{"name":"n2"},"statis":{}}`, bus.OpInsert, "unknown field"},
		{"node bad time", "null/node/n3", `{"metadata":{"name":"n3"},"status":{"conditions":[{"type":"Ready","status":"True","lastHeartbeatTime":""}]}}`, bus.OpInsert, "parsing time"},
		{"node bad label", "null/node/n4", `{"metadata":{"name":"n4","labels":{"a b":"c"}}}`, bus.OpInsert, "label"},
		{"node exists", "null/node/n1", `{"metadata":{"name":"n1"}}`, bus.OpInsert, "AlreadyExists"},
		{"nodepatch", "null/nodepatch/n1", `"{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}}"`, bus.OpPatch, ""},
		{"nodepatch missing node", "null/nodepatch/nx", `"{\"status\":{}}"`, bus.OpPatch, "NotFound"},
		{"podpatch", "default/podpatch/p", `"{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastProbeTime\":null}]}}"`, bus.OpPatch, ""},
		{"podpatch empty time", "default/podpatch/p", `"{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastProbeTime\":\"\"}]}}"`, bus.OpPatch, "parsing time"},
		{"podpatch two states", "default/podpatch/p", `"{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"state\":{\"running\":{},\"waiting\":{}},\"ready\":true,\"restartCount\":0,\"image\":\"busybox\",\"imageID\":\"\"}]}}"`, bus.OpPatch, "one state"},
		{"podpatch bad phase", "default/podpatch/p", `"{\"status\":{\"phase\":\"Started\"}}"`, bus.OpPatch, "phase"},
		{"lease", "kube-node-lease/lease/n1", `{"metadata":{"name":"n1","namespace":"kube-node-lease"},"spec":{"holderIdentity":"n1","leaseDurationSeconds":40,"renewTime":"2026-01-01T00:00:00.000000Z"}}`, bus.OpInsert, ""},
		{"lease stale update", "kube-node-lease/lease/n1", `{"metadata":{"name":"n1","namespace":"kube-node-lease","resourceVersion":"1"},"spec":{"holderIdentity":"n1","leaseDurationSeconds":40,"renewTime":"2026-01-01T00:00:00.000000Z"}}`, bus.OpUpdate, "Conflict"},
	}
	s := NewServer(Config{})
	defer s.Close()
	s.Push(bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/p", []byte(pod)))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Invalid())
			resp, ok := call(s, req(tt.op, tt.res, tt.content))
			if !ok {
				t.Fatalf("%s %s: no answer", tt.op, tt.res)
			}
			got := respErr(t, resp)
			switch {
			case tt.wantErr == "" && got != "":
				t.Errorf("%s %s = error %s, want accepted", tt.op, tt.res, got)
			case tt.wantErr != "" && !strings.Contains(got, tt.wantErr):
				t.Errorf("%s %s = error %q, want one about %q", tt.op, tt.res, got, tt.wantErr)
			}
			invalid := len(s.Invalid()) > before
			wantInvalid := tt.wantErr != "" && tt.wantErr != "AlreadyExists" && tt.wantErr != "NotFound" && tt.wantErr != "Conflict"
			if invalid != wantInvalid {
				t.Errorf("%s %s: recorded invalid = %v, want %v", tt.op, tt.res, invalid, wantInvalid)
			}
		})
	}
	if p, ok := s.Pod("default", "p"); !ok || p.Status.Phase != "Running" || len(p.Spec.Containers) != 1 {
		t.Errorf("pod after the patches = %+v, want Running with its spec kept", p)
	}
}

func TestAPIFinalPodDelete(t *testing.T) {
	const pod = `{"metadata":{"name":"p","namespace":"default","uid":"u-1"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`
	s := NewServer(Config{})
	defer s.Close()
	s.Push(bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/p", []byte(pod)))
	if !s.DeletePod("default", "p", 2) {
		t.Fatal("DeletePod() = false")
	}
	if p, _ := s.Pod("default", "p"); p.DeletionTimestamp == nil || *p.DeletionGracePeriodSeconds != 2 {
		t.Errorf("pod after DeletePod = %+v, want deletionTimestamp and grace 2", p.ObjectMeta)
	}
	for _, tt := range []struct {
		name, content, want string
		gone                bool
	}{
		{"other uid", `{"gracePeriodSeconds":0,"preconditions":{"uid":"u-9"}}`, "Conflict", false},
		{"not final", `{"gracePeriodSeconds":30,"preconditions":{"uid":"u-1"}}`, "gracePeriodSeconds 0", false},
		{"unknown field", `{"gracePeriod":0}`, "unknown field", false},
		{"final", `{"gracePeriodSeconds":0,"preconditions":{"uid":"u-1"}}`, `"OK"`, true},
		{"again", `{"gracePeriodSeconds":0,"preconditions":{"uid":"u-1"}}`, `"OK"`, true},
	} {
		resp, ok := call(s, req(bus.OpDelete, "default/pod/p", tt.content))
		if !ok || !strings.Contains(string(resp.Content), tt.want) {
			t.Errorf("%s: delete answer = %s, want %s", tt.name, resp.Content, tt.want)
		}
		if _, exists := s.Pod("default", "p"); exists == tt.gone {
			t.Errorf("%s: pod exists = %v after the delete", tt.name, exists)
		}
	}
	if s.PodDeletes() != 1 {
		t.Errorf("PodDeletes() = %d, want 1", s.PodDeletes())
	}
}

func TestAPIConfirmsDeviceReports(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	for _, res := range []string{"device/default/d1/twin/edge_updated", "device/default/d1/state/update"} {
		m := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, res, []byte(`{}`))
		resp, ok := call(s, m)
		if !ok || resp.Header.ParentID != m.Header.ID || resp.Route.Group != bus.GroupTwin ||
			resp.Route.Source != bus.SourceDeviceController || string(resp.Content) != `"OK"` {
			t.Errorf("%s: answer %+v %s, want the device controller's OK to it in group twin", res, resp.Route, resp.Content)
		}
	}
}

// TestDeviceReportsLikeCloudcore: the device status keeps what twin
// reports set, and loses the values of a twin's first report, as
// cloudcore v1.23.1 does.
func TestDeviceReportsLikeCloudcore(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	report := func(content string) {
		t.Helper()
		m := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, "device/default/d1/twin/edge_updated", []byte(content))
		if _, ok := call(s, m); !ok {
			t.Fatalf("report %s not answered", content)
		}
	}
	report(`{"event_id":"a","twin":{"temp":{"actual":{"value":"21"}}}}`)
	if got, ok := s.DeviceTwinStatus("default/d1", "temp"); !ok || got != (DeviceTwin{}) {
		t.Errorf("after the first report: %+v, %v, want the twin listed without values", got, ok)
	}
	report(`{"event_id":"b","twin":{"temp":{"actual":{"value":"22"},"expected":{"value":"20"}},"hum":{"actual":{"value":"40"}}}}`)
	if got, _ := s.DeviceTwinStatus("default/d1", "temp"); got != (DeviceTwin{Reported: "22", ObservedDesired: "20"}) {
		t.Errorf("after the second report: %+v, want reported 22, observed desired 20", got)
	}
	if got, ok := s.DeviceTwinStatus("default/d1", "hum"); !ok || got.Reported != "" {
		t.Errorf("a new twin in the second report: %+v, %v, want listed without values", got, ok)
	}
}
