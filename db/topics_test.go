package db

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSubTopics(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	d, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"b/user/#", "a/+/c", "b/user/#"} {
		if err := d.AddSubTopic(ctx, topic); err != nil {
			t.Fatalf("AddSubTopic(%q) = %v", topic, err)
		}
	}
	if err := d.DeleteSubTopic(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteSubTopic(nope) = %v, want ErrNotFound", err)
	}
	d.Close()

	// The filters survive a reopen.
	d, err = Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.SubTopics(ctx)
	if diff := cmp.Diff([]string{"a/+/c", "b/user/#"}, got); err != nil || diff != "" {
		t.Fatalf("SubTopics() = %v, %v; diff -want +got:\n%s", got, err, diff)
	}
	if err := d.DeleteSubTopic(ctx, "a/+/c"); err != nil {
		t.Fatalf("DeleteSubTopic(a/+/c) = %v", err)
	}
	got, err = d.SubTopics(ctx)
	if diff := cmp.Diff([]string{"b/user/#"}, got); err != nil || diff != "" {
		t.Errorf("SubTopics() after delete = %v, %v; diff -want +got:\n%s", got, err, diff)
	}
}
