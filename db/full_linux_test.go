package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgenode/internal/testenv"
	"golang.org/x/sys/unix"
)

// smallDisk mounts a tmpfs of size bytes on a fresh dir, as a board's
// small data partition. It needs root.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	testenv.Root(t, "mount a tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func twinChange(i int) DeviceChange {
	c := DeviceChange{PutDevices: []Device{{ID: "d1", Name: "d1"}}}
	for k := range 20 {
		c.PutTwins = append(c.PutTwins, DeviceTwin{DeviceID: "d1", Name: fmt.Sprintf("t%d", k),
			Actual: sql.NullString{String: fmt.Sprintf(`{"value":"%d-%s"}`, i, strings.Repeat("x", 200)), Valid: true}})
	}
	return c
}

func walSize(path string) int64 {
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestWALBoundedOnSmallDisk: on a 2 MiB data partition, a steady load of
// twin updates (each commit rewrites 20 twins) never fills the disk: the
// WAL is checkpointed and truncated, and stays far below its 4 MB default.
func TestWALBoundedOnSmallDisk(t *testing.T) {
	dir := smallDisk(t, 2<<20)
	path := filepath.Join(dir, FileName)
	d, err := Open(context.Background(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var maxWAL int64
	for i := range 3000 {
		if err := d.ApplyDevices(context.Background(), twinChange(i)); err != nil {
			t.Fatalf("commit %d: %v (WAL %d bytes)", i, err, walSize(path))
		}
		maxWAL = max(maxWAL, walSize(path))
	}
	// The checkpoint runs after the commit that passes 64 pages.
	if limit := int64(2 * journalSizeLimit); maxWAL > limit {
		t.Errorf("largest WAL = %d bytes, want at most %d", maxWAL, limit)
	}
	if d.ReadOnly() {
		t.Error("ReadOnly() = true, want false")
	}
	t.Logf("largest WAL %d bytes", maxWAL)
}

// fill writes a file on dir's file system until it is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			return f.Name()
		}
	}
}

// TestFullDiskReadOnly: with the disk full at start the store opens
// read-only: reads work, writes fail at once with ErrFull and change
// nothing; once space returns, writes resume.
func TestFullDiskReadOnly(t *testing.T) {
	dir := smallDisk(t, 2<<20)
	path := filepath.Join(dir, FileName)
	ctx := context.Background()
	d, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.UpsertMeta(ctx, Meta{Key: "default/pod/a", Type: "pod", Value: "{}"}); err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyDevices(ctx, twinChange(0)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	filler := fill(t, dir)

	d, err = Open(ctx, path, Config{})
	if err != nil {
		t.Fatalf("Open on a full disk = %v, want a read-only store", err)
	}
	defer d.Close()
	if !d.ReadOnly() {
		t.Error("ReadOnly() on a full disk = false, want true")
	}
	if m, err := d.MetaByKey(ctx, "default/pod/a"); err != nil || m.Value != "{}" {
		t.Errorf("MetaByKey on a full disk = %+v, %v, want the stored pod", m, err)
	}
	if tw, err := d.DeviceTwins(ctx); err != nil || len(tw) != 20 {
		t.Errorf("DeviceTwins on a full disk = %d twins, %v, want 20", len(tw), err)
	}
	if err := d.ApplyDevices(ctx, twinChange(1)); !errors.Is(err, ErrFull) {
		t.Errorf("ApplyDevices on a full disk = %v, want ErrFull", err)
	}
	if err := d.UpsertMeta(ctx, Meta{Key: "default/pod/b", Type: "pod", Value: "{}"}); !errors.Is(err, ErrFull) {
		t.Errorf("UpsertMeta on a full disk = %v, want ErrFull", err)
	}
	if _, err := d.MetaByKey(ctx, "default/pod/b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MetaByKey(refused row) = %v, want ErrNotFound", err)
	}
	os.Remove(filler)
	if err := d.UpsertMeta(ctx, Meta{Key: "default/pod/b", Type: "pod", Value: "{}"}); err != nil {
		t.Errorf("UpsertMeta once space returned = %v, want nil", err)
	}
	if d.ReadOnly() {
		t.Error("ReadOnly() once space returned = true, want false")
	}
}

// TestFullDiskDuringWrites: a disk that fills while the node writes makes
// the store read-only at the first failed commit, and committed rows stay.
func TestFullDiskDuringWrites(t *testing.T) {
	dir := smallDisk(t, 2<<20)
	path := filepath.Join(dir, FileName)
	ctx := context.Background()
	d, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	filler := fill(t, dir)
	defer os.Remove(filler)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		werr = d.UpsertMeta(ctx, Meta{Key: fmt.Sprintf("default/configmap/c%d", i), Type: "configmap", Value: strings.Repeat("v", 3000)})
	}
	if !errors.Is(werr, ErrFull) || !d.ReadOnly() {
		t.Fatalf("writes to a full disk ended with %v, ReadOnly %v, want ErrFull and true", werr, d.ReadOnly())
	}
	if res, err := d.IntegrityCheck(ctx); err != nil || res != "ok" {
		t.Errorf("IntegrityCheck = %q, %v, want ok", res, err)
	}
}
