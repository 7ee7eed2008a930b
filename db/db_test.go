package db

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestOpenCreatesSchema(t *testing.T) {
	d := openTest(t)
	ctx := context.Background()
	var v int
	if err := d.SQL().QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version = %d, %v, want %d", v, err, SchemaVersion)
	}
	mode, err := d.JournalMode(ctx)
	if err != nil || mode != "wal" {
		t.Errorf("JournalMode() = %q, %v, want wal", mode, err)
	}
	// Exclusive locking keeps the WAL index in heap memory: no -shm file.
	if _, err := os.Stat(d.Path() + "-shm"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s-shm = %v, want not exist", d.Path(), err)
	}
}

func TestOpenTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	d, err := Open(context.Background(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SQL().Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := Open(context.Background(), path, Config{}); !errors.Is(err, ErrTooNew) {
		t.Errorf("Open(newer schema) = %v, want ErrTooNew", err)
	}
}

func TestOpenCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, []byte("this is not a database, just forty-odd bytes of text"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), path, Config{}); err == nil {
		t.Error("Open(garbage file) = nil error, want an error")
	}
}
