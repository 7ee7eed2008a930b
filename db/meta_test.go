package db

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetaInsertUpsert(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	pod := Meta{Key: "default/pod/nginx", Type: "pod", Value: `{"metadata":{"uid":"u1"}}`}
	tests := []struct {
		name      string
		op        func() (bool, error)
		wrote     bool
		wantValue string
	}{
		{"insert new", func() (bool, error) { return d.InsertMeta(ctx, pod) }, true, pod.Value},
		{"insert keeps existing", func() (bool, error) {
			return d.InsertMeta(ctx, Meta{Key: pod.Key, Type: "pod", Value: `{"v":2}`})
		}, false, pod.Value},
		{"upsert replaces", func() (bool, error) {
			return true, d.UpsertMeta(ctx, Meta{Key: pod.Key, Type: "pod", Value: `{"v":3}`})
		}, true, `{"v":3}`},
		{"upsert empty value", func() (bool, error) {
			return true, d.UpsertMeta(ctx, Meta{Key: pod.Key, Type: "pod"})
		}, true, ``},
	}
	for _, tt := range tests {
		wrote, err := tt.op()
		if err != nil || wrote != tt.wrote {
			t.Fatalf("%s: = %v, %v, want %v, nil", tt.name, wrote, err, tt.wrote)
		}
		got, err := d.MetaByKey(ctx, pod.Key)
		if err != nil || got.Value != tt.wantValue || got.Type != "pod" {
			t.Errorf("%s: MetaByKey() = %+v, %v, want value %q", tt.name, got, err, tt.wantValue)
		}
	}
	// Empty strings, not NULL, in new rows.
	var isNull bool
	if err := d.SQL().QueryRowContext(ctx, `SELECT "value" IS NULL FROM meta WHERE "key" = ?`, pod.Key).Scan(&isNull); err != nil || isNull {
		t.Errorf("value IS NULL = %v, %v, want false", isNull, err)
	}
}

func TestMetaByKeyNotFound(t *testing.T) {
	d := openTest(t)
	if got, err := d.MetaByKey(context.Background(), "default/pod/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MetaByKey(missing) = %+v, %v, want ErrNotFound", got, err)
	}
}

func TestMetaByType(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	rows := []Meta{
		{"kube-system/configmap/b", "configmap", `{"b":1}`},
		{"default/configmap/a", "configmap", `{"a":1}`},
		{"default/secret/s", "secret", `{}`},
		{"default/podstatus/p", "podstatus", `{"UID":"u"}`},
	}
	for _, m := range rows {
		if err := d.UpsertMeta(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		typ  string
		want []Meta
	}{
		// All namespaces, in key order (docs/protocol.md 3.1).
		{"configmap", []Meta{rows[1], rows[0]}},
		{"secret", []Meta{rows[2]}},
		{"pod", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := d.MetaByType(ctx, tt.typ)
		if err != nil {
			t.Fatalf("MetaByType(%q) error = %v", tt.typ, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("MetaByType(%q) mismatch (-want +got):\n%s", tt.typ, diff)
		}
	}
}

func TestMetaDelete(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	const key = "default/pod/nginx"
	put := func() {
		t.Helper()
		if err := d.UpsertMeta(ctx, Meta{Key: key, Type: "pod", Value: `{"metadata":{"uid":"uid-1%_"}}`}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		del     func() (bool, error)
		deleted bool
	}{
		{"other uid keeps the row", func() (bool, error) { return d.DeleteMetaIfValueContains(ctx, key, "uid-2") }, false},
		{"wildcards are literal", func() (bool, error) { return d.DeleteMetaIfValueContains(ctx, key, "uid-_%") }, false},
		{"matching uid deletes", func() (bool, error) { return d.DeleteMetaIfValueContains(ctx, key, "uid-1%_") }, true},
		{"empty sub deletes", func() (bool, error) { return d.DeleteMetaIfValueContains(ctx, key, "") }, true},
		{"by key", func() (bool, error) { return d.DeleteMeta(ctx, key) }, true},
		{"other key", func() (bool, error) { return d.DeleteMeta(ctx, key+"x") }, false},
	}
	for _, tt := range tests {
		put()
		deleted, err := tt.del()
		if err != nil || deleted != tt.deleted {
			t.Errorf("%s: deleted = %v, %v, want %v", tt.name, deleted, err, tt.deleted)
		}
		_, err = d.MetaByKey(ctx, key)
		if gone := errors.Is(err, ErrNotFound); gone != tt.deleted {
			t.Errorf("%s: after delete MetaByKey() error = %v, want gone = %v", tt.name, err, tt.deleted)
		}
	}
	if deleted, err := d.DeleteMeta(ctx, "default/pod/none"); err != nil || deleted {
		t.Errorf("DeleteMeta(missing) = %v, %v, want false, nil", deleted, err)
	}
}

func TestMetaClosed(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	d.Close()
	if err := d.UpsertMeta(ctx, Meta{Key: "a/b/c"}); err == nil {
		t.Error("UpsertMeta on a closed db = nil error, want an error")
	}
	if _, err := d.MetaByType(ctx, "pod"); err == nil {
		t.Error("MetaByType on a closed db = nil error, want an error")
	}
}
