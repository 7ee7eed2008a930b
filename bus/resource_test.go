package bus

import (
	"errors"
	"testing"
)

// resourceTests follow docs/protocol.md 1.7 (ParseResourceEdge); they also seed
// FuzzParseResource.
var resourceTests = []struct {
	name    string
	res     string
	op      Op
	want    Resource
	wantErr bool
}{
	{name: "three tokens", res: "default/pod/nginx", op: OpInsert, want: Resource{Namespace: "default", Kind: KindPod, Name: "nginx"}},
	{name: "cluster scoped", res: "null/node/edge-1", op: OpInsert, want: Resource{Namespace: NullNamespace, Kind: KindNode, Name: "edge-1"}},
	{name: "podstatus", res: "default/podstatus/nginx", op: OpUpdate, want: Resource{Namespace: "default", Kind: KindPodStatus, Name: "nginx"}},
	{name: "name with slash", res: "kube-node-lease/lease/a/b", op: OpQuery, want: Resource{Namespace: "kube-node-lease", Kind: KindLease, Name: "a/b"}},
	{name: "list query", res: "default/pod", op: OpQuery, want: Resource{Namespace: "default", Kind: KindPod}},
	{name: "list response", res: "default/configmap", op: OpResponse, want: Resource{Namespace: "default", Kind: KindConfigMap}},
	{name: "podstatus resync is an update", res: "default/podstatus", op: OpUpdate, wantErr: true},
	{name: "two tokens insert", res: "default/pod", op: OpInsert, wantErr: true},
	{name: "two tokens delete", res: "default/pod", op: OpDelete, wantErr: true},
	{name: "one token", res: "membership", op: OpQuery, wantErr: true},
	{name: "empty", res: "", op: OpQuery, wantErr: true},
	{name: "only slash", res: "/", op: OpQuery, wantErr: true},
	{name: "empty namespace", res: "/pod/a", op: OpInsert, wantErr: true},
	{name: "empty kind", res: "default//a", op: OpInsert, wantErr: true},
	{name: "empty name", res: "default/pod/", op: OpInsert, wantErr: true},
	{name: "empty kind in list", res: "default/", op: OpQuery, wantErr: true},
	{name: "leading slash list", res: "/pod", op: OpQuery, wantErr: true},
	{name: "kube CA", res: "k8s/ca.crt", op: OpQuery, want: Resource{Kind: KindKubeCA, Name: "ca.crt"}},
	{name: "kube CA in a namespace", res: "default/k8s/ca.crt", op: OpQuery, want: Resource{Namespace: "default", Kind: KindKubeCA, Name: "ca.crt"}},
}

func TestParseResource(t *testing.T) {
	for _, tt := range resourceTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResource(tt.res, tt.op)
			if tt.wantErr {
				if !errors.Is(err, ErrBadResource) {
					t.Errorf("ParseResource(%q, %s) = %+v, %v, want ErrBadResource", tt.res, tt.op, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseResource(%q, %s) = %+v, %v, want %+v", tt.res, tt.op, got, err, tt.want)
			}
			if s := got.String(); s != tt.res {
				t.Errorf("ParseResource(%q).String() = %q, want the input back", tt.res, s)
			}
		})
	}
}

// TestMessageRes: NewMessage and Decode split the resource once, a device
// resource only when twin or the device controller sends it.
func TestMessageRes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		source Module
		res    string
		want   Resource
	}{
		{"pod", SourceEdgeController, "default/pod/web", Resource{Namespace: "default", Kind: KindPod, Name: "web"}},
		{"resync has no name", ModuleMeta, "default/podstatus", Resource{Namespace: "default", Kind: KindPodStatus}},
		{"edge_updated", ModuleTwin, "device/ns/s1/twin/edge_updated", Resource{Kind: KindDevice, Name: "ns/s1", Rest: ResTwinEdgeUpdated}},
		{"state v1.23", ModuleTwin, "device/s1/state/update", Resource{Kind: KindDevice, Name: "s1", Rest: ResDeviceStateV123}},
		{"state v0.3", ModuleTwin, "device/s1/state", Resource{Kind: KindDevice, Name: "s1", Rest: ResDeviceState}},
		{"cloud_updated", SourceDeviceController, "device/s1/twin/cloud_updated", Resource{Kind: KindDevice, Name: "s1", Rest: ResTwinCloudUpdated}},
		{"device updated", SourceEdgeMgr, "device/ns/s1", Resource{Kind: KindDevice, Name: "ns/s1"}},
		{"namespace named device", SourceEdgeController, "device/pod/web", Resource{Namespace: "device", Kind: KindPod, Name: "web"}},
		{"membership", SourceDeviceController, ResMembershipDetail, Resource{Namespace: "membership", Kind: "detail"}},
		{"one token", ModuleHub, "node", Resource{}},
		{"topic", ModuleBusSrc, "$hw/events/device/s1/twin/update", Resource{Namespace: "$hw", Kind: "events", Name: "device/s1/twin/update"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMessage(tt.source, GroupResource, OpUpdate, tt.res, nil)
			if m.Res != tt.want {
				t.Errorf("NewMessage(%s, %q).Res = %+v, want %+v", tt.source, tt.res, m.Res, tt.want)
			}
			b, err := Encode(nil, m, EraV123)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Decode(b)
			if err != nil || d.Res != tt.want {
				t.Errorf("Decode(%s).Res = %+v, %v, want %+v", b, d.Res, err, tt.want)
			}
		})
	}
}

func TestResourcePath(t *testing.T) {
	if got := ResourcePath("default", KindConfigMap, "c"); got != "default/configmap/c" {
		t.Errorf("ResourcePath(default, configmap, c) = %q, want default/configmap/c", got)
	}
	if got := ResourcePath(NullNamespace, KindNodePatch, "n"); got != "null/nodepatch/n" {
		t.Errorf("ResourcePath(null, nodepatch, n) = %q, want null/nodepatch/n", got)
	}
}

// FuzzParseResource checks that ParseResource never panics, that what it
// accepts has no empty token, and that String gives the input back.
func FuzzParseResource(f *testing.F) {
	for _, tt := range resourceTests {
		f.Add(tt.res, string(tt.op))
	}
	f.Fuzz(func(t *testing.T, res, op string) {
		r, err := ParseResource(res, Op(op))
		if err != nil {
			if !errors.Is(err, ErrBadResource) {
				t.Fatalf("ParseResource(%q, %q) error = %v, want ErrBadResource", res, op, err)
			}
			return
		}
		if (r.Namespace == "" && r.Kind != KindKubeCA) || r.Kind == "" {
			t.Fatalf("ParseResource(%q, %q) = %+v, empty token", res, op, r)
		}
		if r.Name == "" && Op(op) != OpQuery && Op(op) != OpResponse {
			t.Fatalf("ParseResource(%q, %q) = %+v, no name for %q", res, op, r, op)
		}
		if s := r.String(); s != res {
			t.Fatalf("ParseResource(%q).String() = %q", res, s)
		}
	})
}
