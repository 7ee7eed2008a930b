package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestJournalModeNoShm shows the journal-mode decision of the package doc:
// WAL with exclusive locking, the WAL index in heap memory and no -shm file,
// across enough writes to grow the WAL past an automatic checkpoint. The
// ARMv6 pass of make test runs it under qemu-arm-static, where a mapped
// -shm would be the thing that breaks.
func TestJournalModeNoShm(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	d, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close() }()
	t.Logf("GOARCH=%s", runtime.GOARCH)

	for _, p := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"locking_mode", "exclusive"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "0"},
	} {
		var got string
		if err := d.SQL().QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil || got != p.want {
			t.Errorf("PRAGMA %s = %q, %v, want %q", p.pragma, got, err, p.want)
		}
	}

	// Enough rows in enough transactions that the WAL passes the default
	// autocheckpoint (1000 pages) at least once.
	const batches, perBatch = 40, 100
	value := strings.Repeat("v", 300)
	for i := range batches {
		tx, err := d.SQL().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range perBatch {
			key := fmt.Sprintf("default/configmap/c%05d", i*perBatch+j)
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta ("key", "type", "value") VALUES (?, ?, ?)`, key, "configmap", value+key); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("stat %s-wal = %v, want the WAL file to exist in WAL mode", filepath.Base(path), err)
	}
	assertNoShm(t, path)

	var busy, logFrames, ckpt int
	if err := d.SQL().QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &ckpt); err != nil || busy != 0 {
		t.Fatalf("wal_checkpoint(TRUNCATE) = busy %d, %v, want 0, nil", busy, err)
	}
	assertNoShm(t, path)
	if err := d.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	d, err = Open(ctx, path, Config{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	var n int
	var sample string
	if err := d.SQL().QueryRowContext(ctx, `SELECT count(*) FROM meta WHERE "type" = 'configmap'`).Scan(&n); err != nil || n != batches*perBatch {
		t.Errorf("rows after reopen = %d, %v, want %d", n, err, batches*perBatch)
	}
	if err := d.SQL().QueryRowContext(ctx, `SELECT "value" FROM meta WHERE "key" = 'default/configmap/c03999'`).Scan(&sample); err != nil || sample != value+"default/configmap/c03999" {
		t.Errorf("last row after reopen = %.20q..., %v", sample, err)
	}
	if res, err := d.IntegrityCheck(ctx); err != nil || res != "ok" {
		t.Errorf("IntegrityCheck() = %q, %v, want ok", res, err)
	}
	assertNoShm(t, path)
}

func assertNoShm(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path + "-shm"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s-shm = %v, want not exist (WAL index must stay in heap memory)", filepath.Base(path), err)
	}
}

// TestExclusiveLock shows the cost of the decision: while one handle has
// the file open, a second one cannot use it.
func TestExclusiveLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	d, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	second, err := Open(ctx, path, Config{BusyTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		if err == nil {
			second.Close()
		}
		t.Fatalf("Open(file already open) = %v, want ErrLocked", err)
	}
}
