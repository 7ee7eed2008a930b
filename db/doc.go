// Package db is edgenode's store: one SQLite file (modernc.org/sqlite, pure Go,
// no cgo) under the data dir, holding KubeEdge's tables (docs/protocol.md 3.1,
// 5.3) with their names and column order, so KubeEdge's own checks can read it.
//
// What it owns: opening the file, its pragmas, the schema and its forward
// migrations (PRAGMA user_version, schema.go), and the typed queries of each
// module, one file per module (meta.go for MetaManager, device.go for
// DeviceTwin, ...). SQL is constant; there is no ORM. New rows hold empty
// strings, not NULL.
//
// Goroutines: none. Every module shares the one *DB; statements run one at a
// time on its single connection.
//
// # Journal mode on 32-bit ARM
//
// SQLite's WAL mode normally keeps its WAL index in a "-shm" file that every
// connection maps into memory (mmap). With modernc.org/sqlite that mapping
// has crashed processes with SIGBUS on 32-bit ARM in public reports, a
// Raspberry Pi Zero (armv6) among them (a Go backup tool that started to
// die on a Pi Zero once it moved to modernc's SQLite in WAL mode; the fault
// is in the WAL index code), and the same class of fault is reported on
// other systems whenever the -shm mapping goes bad. A SIGBUS cannot be
// recovered from: the node would die at start and on every restart.
//
// The choice here: set locking_mode=EXCLUSIVE before journal_mode=WAL. In
// exclusive locking mode SQLite keeps the WAL index in heap memory instead
// of a shared mapping, so no -shm file is ever created or mapped, and WAL
// still gives us what we want from it: appends instead of rewrites, and
// readers that do not block the writer inside the process. The price is
// that the process holds an exclusive lock on the file for as long as it is
// open: no second process (not the sqlite3 shell, not a second edgenode)
// can open the database while the node runs. That suits an appliance whose
// database belongs to one process; inspect a copy or stop the node first.
// TestJournalModeNoShm proves the mode takes and no -shm file appears, and
// runs under qemu-arm-static in the ARMv6 pass of make test.
//
// # Durability
//
// synchronous=FULL makes every commit fsync the WAL before it returns, so a
// write the node has acknowledged survives kill -9 and power loss (normal
// mode in WAL may lose the last commits on power loss). TestKill9Durability
// kills a writer with SIGKILL at random points and checks every
// acknowledged row is there and integrity_check is ok.
//
// Exactly one connection is open (SetMaxOpenConns(1)): the exclusive lock
// belongs to a connection, and a second connection of the pool would find
// the file locked by the first.
//
// # WAL size
//
// SQLite checkpoints the WAL into the database after the commit that takes
// it past wal_autocheckpoint pages, 1000 by default: the WAL reached ~4 MB
// before its first checkpoint and filled a 2 MiB data partition. Open sets
// wal_autocheckpoint to 64 pages (256 KiB) and journal_size_limit to 256
// KiB, so the checkpoint comes after a group commit of that size and the
// WAL file is truncated back after it; with the exclusive lock no reader
// ever holds a checkpoint back. TestWALBoundedOnSmallDisk runs a steady
// twin load on a 2 MiB tmpfs.
//
// # Full disk
//
// A write that fails with SQLITE_FULL or ENOSPC, or a disk with less than
// Config.MinFree free at Open, makes the store read-only (ReadOnly):
// every write then fails at once with ErrFull, without touching SQLite, so
// that it neither retries nor keeps the one connection from the reads,
// which go on. Once MinFree bytes are free again the next write is tried,
// and its success makes the store writable. A write that fails this way
// changed nothing: no result is ever given before its commit.
//
// # Page cache
//
// modernc.org/sqlite keeps its page cache in anonymous memory of the
// process, so it counts against the node's RssAnon budget. The cache is left
// at SQLite's default cache_size (-2000: at most about 2 MiB): pages are
// allocated as they are read, not up front, and a node's tables (its pods,
// configmaps, devices and twins) span a few hundred KiB, so the cache stays
// well under the cap and the whole database stays cached once read.
// A smaller cap was tried and did not pay: an idle node with
// cache_size(-256) held the same RssAnon as with the default, because the
// idle database fits either way; a cap below the working set would only
// add reads from the SD card.
package db
