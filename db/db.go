package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors of the db package.
var (
	ErrCorrupt  = errors.New("db: database is corrupt")
	ErrTooNew   = errors.New("db: database schema is newer than this edgenode")
	ErrNotFound = errors.New("db: not found")
	// ErrLocked means another process (or another handle) holds the file's
	// exclusive lock; see the package doc.
	ErrLocked = errors.New("db: database is locked by another process")
)

// Config tunes the store; it is the db section of the config file. The
// zero value gives the defaults.
type Config struct {
	// BusyTimeout is how long a statement waits for a lock. Default 5 s.
	BusyTimeout time.Duration `yaml:"busyTimeout"`
	// MinFree is the free space in bytes a store made read-only by a full
	// disk waits for before it tries writes again. Default DefaultMinFree.
	MinFree int64 `yaml:"minFree"`
}

// DefaultBusyTimeout is Config.BusyTimeout's default.
const DefaultBusyTimeout = 5 * time.Second

// Defaults returns c with its zero fields filled.
func (c Config) Defaults() Config {
	if c.BusyTimeout == 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.MinFree == 0 {
		c.MinFree = DefaultMinFree
	}
	return c
}

// Validate returns every problem of c at once, each naming its key as
// spelled in the config file under "db.".
func (c Config) Validate() []error {
	var errs []error
	if c.BusyTimeout < 0 {
		errs = append(errs, fmt.Errorf("db.busyTimeout: %v must not be negative", c.BusyTimeout))
	}
	if c.MinFree < 0 {
		errs = append(errs, fmt.Errorf("db.minFree: %d must not be negative", c.MinFree))
	}
	return errs
}

// The WAL bound (package doc, "WAL size"): a checkpoint after the commit
// that takes the WAL past walAutocheckpoint pages (SQLite's default, 1000
// pages, let it reach ~4 MB), and the WAL file truncated back to
// journalSizeLimit bytes after it is reset.
const (
	walAutocheckpoint = 64        // pages of 4 KiB
	journalSizeLimit  = 256 << 10 // bytes
)

// FileName is the database's file name inside the data dir.
const FileName = "edgenode.db"

// DB is the node's store: one SQLite connection, used by every module.
// It is safe for concurrent use; statements run one at a time.
type DB struct {
	sql     *sql.DB
	path    string
	minFree int64
	full    atomic.Bool // the disk was full at the last write, or at Open
}

// Open opens (creating if needed) the database at path, sets the pragmas
// described in the package doc, and migrates the schema forward. It fails
// clearly for a corrupt file or a schema newer than this binary knows.
func Open(ctx context.Context, path string, cfg Config) (*DB, error) {
	cfg = cfg.Defaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("db: open %s: %w", path, errors.Join(errs...))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	// Pragmas go in the DSN so that they apply to every connection the pool
	// makes; with MaxOpenConns(1) there is only ever one. Order matters:
	// locking_mode must be EXCLUSIVE before journal_mode=WAL so the WAL
	// index lives in heap memory instead of an mmap'd -shm file. The driver
	// runs the _pragma list sorted by name (journal_mode would come before
	// locking_mode), then the _journal_mode and _synchronous keys, so
	// journal mode and sync level must be those keys, not _pragma entries.
	// journal_size_limit and wal_autocheckpoint bound the WAL (package
	// doc, "WAL size").
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=foreign_keys(0)"+
		"&_pragma=journal_size_limit(%d)&_pragma=locking_mode(EXCLUSIVE)&_pragma=wal_autocheckpoint(%d)"+
		"&_journal_mode=WAL&_synchronous=FULL",
		path, cfg.BusyTimeout.Milliseconds(), journalSizeLimit, walAutocheckpoint)
	s, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	s.SetMaxOpenConns(1)
	s.SetMaxIdleConns(1)
	s.SetConnMaxLifetime(0)
	s.SetConnMaxIdleTime(0)
	d := &DB{sql: s, path: path, minFree: cfg.MinFree}
	if err := d.check(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := d.migrate(ctx); err != nil {
		s.Close()
		if isFull(err) {
			return nil, fmt.Errorf("db: open %s: %w (%w)", path, ErrFull, err)
		}
		return nil, err
	}
	// A disk that is full already makes the store read-only from the
	// start: reads are served, writes fail fast until space returns.
	if free, err := freeBytes(path); err == nil && free < d.minFree {
		d.full.Store(true)
	}
	return d, nil
}

// check verifies the journal mode took and the file is a healthy database.
func (d *DB) check(ctx context.Context) error {
	var mode string
	if err := d.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		if isBusy(err) {
			return fmt.Errorf("db: open %s: %w (%w)", d.path, ErrLocked, err)
		}
		return fmt.Errorf("db: open %s: %w (%w)", d.path, ErrCorrupt, err)
	}
	if mode != "wal" {
		return fmt.Errorf("db: open %s: journal_mode is %q, want wal", d.path, mode)
	}
	if err := d.sql.QueryRowContext(ctx, "PRAGMA locking_mode").Scan(&mode); err != nil || mode != "exclusive" {
		return fmt.Errorf("db: open %s: locking_mode is %q, want exclusive (%v)", d.path, mode, err)
	}
	var res string
	if err := d.sql.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("db: open %s: %w (%w)", d.path, ErrCorrupt, err)
	}
	if res != "ok" {
		return fmt.Errorf("db: open %s: %w: %s", d.path, ErrCorrupt, res)
	}
	return nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (or an extended code of
// it): the file is locked.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// Close closes the database. Pending WAL frames are checkpointed by SQLite.
func (d *DB) Close() error { return d.sql.Close() }

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// SQL returns the underlying handle, for tests and for queries a module
// keeps in its own file of this package.
func (d *DB) SQL() *sql.DB { return d.sql }

// IntegrityCheck runs PRAGMA integrity_check and returns its first line
// ("ok" for a healthy database).
func (d *DB) IntegrityCheck(ctx context.Context) (string, error) {
	var res string
	err := d.sql.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res)
	return res, err
}

// JournalMode returns the journal mode in force.
func (d *DB) JournalMode(ctx context.Context) (string, error) {
	var res string
	err := d.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&res)
	return res, err
}
