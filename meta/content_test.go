package meta

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
	"edgenode/db"
)

// contentTests seed FuzzStoredValue.
var contentTests = []struct {
	name     string
	kind     bus.Kind
	content  string
	needName bool
	want     string // stored value; "" with wantErr
	wantErr  bool
}{
	{"pod", bus.KindPod, podJSON, true, podJSON, false},
	{"pod no name from cloud", bus.KindPod, `{"metadata":{}}`, true, "", true},
	{"pod no name from edge", bus.KindPod, `{"metadata":{}}`, false, `{"metadata":{}}`, false},
	{"service no name", bus.KindService, `{"spec":{}}`, true, `{"spec":{}}`, false},
	{"pod string", bus.KindPod, `"x"`, false, "", true},
	{"pod null", bus.KindPod, `null`, false, "", true},
	{"metadata array", bus.KindConfigMap, `{"metadata":[]}`, false, "", true},
	{"name number", bus.KindConfigMap, `{"metadata":{"name":1}}`, false, "", true},
	{"not JSON", bus.KindPod, `{`, false, "", true},
	{"empty", bus.KindPod, ``, false, "", true},
	{"podstatus", bus.KindPodStatus, statusA, false, statusA, false},
	{"podstatus null Status", bus.KindPodStatus, `{"UID":"u","Status":null}`, false, `{"UID":"u","Status":null}`, false},
	{"podstatus Status array", bus.KindPodStatus, `{"Status":[]}`, false, "", true},
	{"podstatus UID number", bus.KindPodStatus, `{"UID":1}`, false, "", true},
	{"nodestatus", bus.KindNodeStatus, `{"UID":"u","Status":{},"ExtendResources":null}`, false, `{"UID":"u","Status":{},"ExtendResources":null}`, false},
	{"podpatch string", bus.KindPodPatch, `"{\"status\":{}}"`, false, `{"status":{}}`, false},
	{"podpatch object", bus.KindPodPatch, `{"status":{}}`, false, `{"status":{}}`, false},
	{"podpatch empty string", bus.KindPodPatch, `""`, false, "", true},
	{"nodepatch array string", bus.KindNodePatch, `"[1]"`, false, "", true},
	{"ca string", bus.KindKubeCA, `"-----BEGIN CERTIFICATE-----"`, false, `"-----BEGIN CERTIFICATE-----"`, false},
	{"ca number", bus.KindKubeCA, `1`, false, "", true},
}

func TestStoredValue(t *testing.T) {
	for _, tt := range contentTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := storedValue(tt.kind, []byte(tt.content), tt.needName)
			if tt.wantErr {
				if !errors.Is(err, ErrBadContent) {
					t.Errorf("storedValue(%s, %s) = %q, %v, want ErrBadContent", tt.kind, tt.content, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("storedValue(%s, %s) = %q, %v, want %q", tt.kind, tt.content, got, err, tt.want)
			}
		})
	}
}

func TestDecodeObjectResp(t *testing.T) {
	tests := []struct {
		content string
		ok      bool
		obj     string
	}{
		{`{"Object":{"a":1},"Err":null}`, true, `{"a":1}`},
		{`{"Err":{"ErrStatus":{}}}`, true, ``},
		{`{"object":{"a":1}}`, false, ``}, // exact keys only
		{`{"metadata":{}}`, false, ``},
		{`"OK"`, false, ``},
		{`[{"Object":1}]`, false, ``},
	}
	for _, tt := range tests {
		got, ok := decodeObjectResp([]byte(tt.content))
		if ok != tt.ok || string(got.Object) != tt.obj {
			t.Errorf("decodeObjectResp(%s) = %s, %v, want %s, %v", tt.content, got.Object, ok, tt.obj, tt.ok)
		}
	}
}

func TestQueryResult(t *testing.T) {
	vals := []string{`{"a":"b\"c"}`, "", "ü\n"}
	var got []string
	if err := json.Unmarshal(queryResult(vals), &got); err != nil {
		t.Fatalf("queryResult() is not a JSON array of strings: %v", err)
	}
	if len(got) != 3 || got[0] != vals[0] || got[1] != "" || got[2] != vals[2] {
		t.Errorf("queryResult(%q) decodes to %q", vals, got)
	}
	if string(queryResult(nil)) != "[]" {
		t.Errorf("queryResult(nil) = %s, want []", queryResult(nil))
	}
}

// FuzzStoredValue checks the content decoders never panic, and that what
// they accept is stored as valid JSON.
func FuzzStoredValue(f *testing.F) {
	for _, tt := range contentTests {
		f.Add(string(tt.kind), []byte(tt.content), tt.needName)
	}
	f.Fuzz(func(t *testing.T, kind string, content []byte, needName bool) {
		v, err := storedValue(bus.Kind(kind), content, needName)
		if err != nil {
			if !errors.Is(err, ErrBadContent) {
				t.Fatalf("storedValue(%q, %q) error = %v, want ErrBadContent", kind, content, err)
			}
			return
		}
		if !json.Valid([]byte(v)) {
			t.Fatalf("storedValue(%q, %q) = %q, not valid JSON", kind, content, v)
		}
		if or, ok := decodeObjectResp(content); ok && !json.Valid(or.Object) && len(or.Object) > 0 {
			t.Fatalf("decodeObjectResp(%q) Object = %q, not valid JSON", content, or.Object)
		}
	})
}

// fuzzSources are the senders FuzzHandle picks from.
var fuzzSources = []bus.Module{
	bus.SourceEdgeController, bus.SourceController, bus.SourceDeviceController, bus.ModulePod,
	bus.ModuleNodeStatus, bus.ModuleEdgeHub, bus.SourcePolicyController, bus.Module("stranger"),
}

// FuzzHandle feeds arbitrary messages to MetaManager: it must not panic,
// and a message it answers with an error must leave table meta as it was
// (a failed remote operation excepted: a patch is stored before it goes
// to the cloud).
func FuzzHandle(f *testing.F) {
	for i, tt := range contentTests {
		f.Add(uint8(i), string(bus.OpInsert), "default/"+string(tt.kind)+"/a", []byte(tt.content), i%2 == 0)
		f.Add(uint8(i+3), string(bus.OpUpdate), "default/"+string(tt.kind)+"/a", []byte(tt.content), false)
	}
	f.Add(uint8(3), string(bus.OpPatch), "default/podpatch/a", []byte(`"{}"`), true)
	f.Add(uint8(0), string(bus.OpDelete), "default/pod/nginx", []byte(podJSON), false)
	f.Add(uint8(3), string(bus.OpQuery), "default/configmap", []byte(nil), false)
	f.Add(uint8(0), string(bus.OpResponse), "default/podpatch/nginx", []byte(`{"Object":{},"Err":null}`), false)
	f.Add(uint8(2), string(bus.OpInsert), "default/devicemodel/m", []byte(`{"spec":{}}`), false)
	f.Add(uint8(0), string(bus.OpDelete), "default/gizmo/g", []byte(nil), false)
	f.Add(uint8(5), string(bus.OpConnect), bus.ResNodeConnection, []byte(`"cloud_connected"`), false)

	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(f.TempDir(), db.FileName), db.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	b := bus.New(bus.Config{QueueLen: 1024}, nil)
	for _, fk := range fakes {
		if err := b.AddModule(fk.name, fk.group); err != nil {
			f.Fatal(err)
		}
	}
	m, err := New(Config{RemoteQueryTimeout: time.Millisecond}, b, d, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := d.UpsertMeta(ctx, db.Meta{Key: "default/pod/nginx", Type: "pod", Value: podJSON}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src uint8, op, res string, content []byte, connected bool) {
		m.connected.Store(connected)
		before := allRows(t, d)
		msg := bus.NewMessage(fuzzSources[int(src)%len(fuzzSources)], bus.GroupResource, bus.Op(op), res, content)
		m.handle(ctx, msg)
		m.wg.Wait()
		failed := false
		for _, fk := range fakes {
			q := b.Queue(fk.name)
			for got, ok := q.Next(); ok; got, ok = q.Next() {
				reason, _ := bus.ContentString(got.Content)
				if got.Route.Operation == bus.OpError && got.Header.ParentID == msg.Header.ID &&
					!strings.HasPrefix(reason, reasonRemote) {
					failed = true
				}
			}
		}
		if failed {
			if diff := cmp.Diff(before, allRows(t, d)); diff != "" {
				t.Fatalf("message %+v %q answered with an error changed table meta (-before +after):\n%s", msg.Route, content, diff)
			}
		}
	})
}

// allRows returns every row of table meta, of any type: the cloud may
// store kinds meta has no rules for.
func allRows(t *testing.T, d *db.DB) map[string]string {
	t.Helper()
	rows, err := d.SQL().QueryContext(context.Background(), `SELECT "key", coalesce("value", '') FROM meta`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
