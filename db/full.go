package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrFull is returned by every write while the data dir's file system is
// full: the store is read-only, reads go on, and writes resume once
// DefaultMinFree bytes are free again. Nothing is half written: a write
// that fails this way changed nothing.
var ErrFull = errors.New("db: disk full: the store is read-only until space returns")

// DefaultMinFree is the free space a full store waits for before it tries
// a write again: room for the WAL between checkpoints (walAutocheckpoint
// pages) and a checkpoint's growth of the database.
const DefaultMinFree = 1 << 20

// isFull reports whether err is SQLite's SQLITE_FULL or the system's
// ENOSPC.
func isFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	return errors.Is(err, syscall.ENOSPC)
}

// ReadOnly reports whether the store refuses writes because the disk is
// full. It is safe to call at any time.
func (d *DB) ReadOnly() bool { return d.full.Load() }

// writable fails fast with ErrFull while the disk is full, without
// touching SQLite, so that a write neither waits nor holds the one
// connection that reads need too. It lets a write through once there is
// free space again; whether it succeeds clears or keeps the state.
func (d *DB) writable() error {
	if !d.full.Load() {
		return nil
	}
	if free, err := freeBytes(d.path); err == nil && free >= d.minFree {
		return nil
	}
	return ErrFull
}

// wrote records how a write ended: a full disk makes the store read-only,
// a success makes it writable again. It returns err, wrapped in ErrFull
// for a full disk.
func (d *DB) wrote(err error) error {
	if err == nil {
		d.full.Store(false)
		return nil
	}
	if isFull(err) {
		d.full.Store(true)
		return fmt.Errorf("%w (%w)", ErrFull, err)
	}
	return err
}

// exec runs one write statement through the full-disk gate.
func (d *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := d.writable(); err != nil {
		return nil, err
	}
	res, err := d.sql.ExecContext(ctx, query, args...)
	return res, d.wrote(err)
}
