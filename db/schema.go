package db

import (
	"context"
	"fmt"
	"strings"
)

// migrations[i] takes the schema from user_version i to i+1. Append only;
// never edit a migration that has shipped.
//
// Table and column names and column order are KubeEdge's (docs/protocol.md 3.1,
// 5.3): KubeEdge's integration checks read rows with SELECT * and scan by
// position. Types follow the v0.3.0 beego DDL where it is stricter.
var migrations = []string{
	// 1: the KubeEdge tables, plus sub_topics (v1.23.1, EventBus).
	`CREATE TABLE meta (
		"key" varchar(256) NOT NULL PRIMARY KEY,
		"type" varchar(32) NOT NULL DEFAULT '',
		"value" text
	);
	CREATE INDEX meta_type ON meta ("type");
	CREATE TABLE device (
		id varchar(64) NOT NULL PRIMARY KEY,
		name text NOT NULL DEFAULT '',
		description text NOT NULL DEFAULT '',
		state text NOT NULL DEFAULT '',
		last_online text NOT NULL DEFAULT ''
	);
	CREATE TABLE device_attr (
		id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
		deviceid text NOT NULL DEFAULT '',
		name text NOT NULL DEFAULT '',
		description text NOT NULL DEFAULT '',
		value text NOT NULL DEFAULT '',
		optional bool NOT NULL DEFAULT 0,
		attr_type text NOT NULL DEFAULT '',
		metadata text NOT NULL DEFAULT ''
	);
	CREATE UNIQUE INDEX device_attr_key ON device_attr (deviceid, name);
	CREATE TABLE device_twin (
		id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
		deviceid text NOT NULL DEFAULT '',
		name text NOT NULL DEFAULT '',
		description text NOT NULL DEFAULT '',
		expected text,
		actual text,
		expected_meta text,
		actual_meta text,
		expected_version text NOT NULL DEFAULT '',
		actual_version text NOT NULL DEFAULT '',
		optional bool NOT NULL DEFAULT 0,
		attr_type text NOT NULL DEFAULT '',
		metadata text NOT NULL DEFAULT ''
	);
	CREATE UNIQUE INDEX device_twin_key ON device_twin (deviceid, name);
	CREATE TABLE sub_topics (
		topic text NOT NULL PRIMARY KEY
	);`,
	// 2: device_attr and device_twin without AUTOINCREMENT. With it, every
	// upsert also rewrote the table's row in sqlite_sequence, so a commit
	// of one twin update wrote two pages to the WAL, and fsynced them,
	// instead of one (TestTwinCommitPages). The id is still the rowid,
	// given by SQLite, in the same column; it may now be given again once
	// the highest row is deleted, and nothing keys by it: rows are keyed
	// by (deviceid, name) (docs/protocol.md 5.3). Rows and ids are copied
	// as they are; dropping the old tables drops their sqlite_sequence
	// rows.
	`CREATE TABLE device_attr_2 (
		id integer NOT NULL PRIMARY KEY,
		deviceid text NOT NULL DEFAULT '',
		name text NOT NULL DEFAULT '',
		description text NOT NULL DEFAULT '',
		value text NOT NULL DEFAULT '',
		optional bool NOT NULL DEFAULT 0,
		attr_type text NOT NULL DEFAULT '',
		metadata text NOT NULL DEFAULT ''
	);
	INSERT INTO device_attr_2 SELECT * FROM device_attr;
	DROP TABLE device_attr;
	ALTER TABLE device_attr_2 RENAME TO device_attr;
	CREATE UNIQUE INDEX device_attr_key ON device_attr (deviceid, name);
	CREATE TABLE device_twin_2 (
		id integer NOT NULL PRIMARY KEY,
		deviceid text NOT NULL DEFAULT '',
		name text NOT NULL DEFAULT '',
		description text NOT NULL DEFAULT '',
		expected text,
		actual text,
		expected_meta text,
		actual_meta text,
		expected_version text NOT NULL DEFAULT '',
		actual_version text NOT NULL DEFAULT '',
		optional bool NOT NULL DEFAULT 0,
		attr_type text NOT NULL DEFAULT '',
		metadata text NOT NULL DEFAULT ''
	);
	INSERT INTO device_twin_2 SELECT * FROM device_twin;
	DROP TABLE device_twin;
	ALTER TABLE device_twin_2 RENAME TO device_twin;
	CREATE UNIQUE INDEX device_twin_key ON device_twin (deviceid, name);`,
}

// schema is where the migrations lead: migration 1's tables with the
// device tables' ids as migration 2 rebuilds them. A new file is made at
// it in one step (migrate): applied one by one to an empty file, the
// table rebuilds of migration 2 cost a new node about 0.3 MiB of SQLite's
// memory until it restarts, for tables with no rows. A migration that
// changes the tables changes it too; TestNewFileSchemaIsMigrated fails
// until it does.
var schema = strings.ReplaceAll(migrations[0],
	"id integer NOT NULL PRIMARY KEY AUTOINCREMENT,", "id integer NOT NULL PRIMARY KEY,")

// SchemaVersion is the user_version this binary writes.
var SchemaVersion = len(migrations)

// migrate applies the migrations the file lacks, each in its own
// transaction together with its user_version bump.
func (d *DB) migrate(ctx context.Context) error {
	var v int
	if err := d.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("db: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("db: %s: schema version %d, this edgenode knows %d: %w", d.path, v, len(migrations), ErrTooNew)
	}
	for v < len(migrations) {
		tx, err := d.sql.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("db: migrate to %d: %w", v+1, err)
		}
		ddl, to := migrations[v], v+1
		if v == 0 {
			ddl, to = schema, len(migrations) // a new file: the end in one step
		}
		if _, err := tx.ExecContext(ctx, ddl); err != nil {
			tx.Rollback()
			return fmt.Errorf("db: migrate to %d: %w", to, err)
		}
		// PRAGMA takes no parameters; to is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", to)); err != nil {
			tx.Rollback()
			return fmt.Errorf("db: migrate to %d: %w", to, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("db: migrate to %d: %w", to, err)
		}
		v = to
	}
	return nil
}
