package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Meta is one row of table meta (docs/protocol.md 3.1): Key is the full
// edge-side resource path (default/pod/nginx, null/node/edge-1), Type its
// resource type token, Value the JSON of the message content.
type Meta struct {
	Key   string
	Type  string
	Value string
}

// SQL of table meta. Column names are quoted: key, type and value are
// KubeEdge's names (docs/protocol.md 3.1), and "key" is an SQL keyword.
const (
	sqlMetaInsert = `INSERT OR IGNORE INTO meta ("key", "type", "value") VALUES (?, ?, ?)`
	sqlMetaUpsert = `INSERT OR REPLACE INTO meta ("key", "type", "value") VALUES (?, ?, ?)`
	sqlMetaByKey  = `SELECT "key", "type", coalesce("value", '') FROM meta WHERE "key" = ?`
	sqlMetaByType = `SELECT "key", "type", coalesce("value", '') FROM meta WHERE "type" = ? ORDER BY "key"`
	sqlMetaDelete = `DELETE FROM meta WHERE "key" = ?`
	// instr, not LIKE: a uid holds no wildcards today, but a substring test
	// must not depend on that.
	sqlMetaDeleteIfContains = `DELETE FROM meta WHERE "key" = ? AND instr(coalesce("value", ''), ?) > 0`
)

// InsertMeta stores m unless a row with its key exists, which it keeps
// unchanged: v0.3 MetaManager's insert, where a duplicate counts as success
// (docs/protocol.md 3.1). It reports whether a row was written.
func (d *DB) InsertMeta(ctx context.Context, m Meta) (bool, error) {
	res, err := d.exec(ctx, sqlMetaInsert, m.Key, m.Type, m.Value)
	if err != nil {
		return false, fmt.Errorf("db: insert meta %s: %w", m.Key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("db: insert meta %s: %w", m.Key, err)
	}
	return n > 0, nil
}

// UpsertMeta stores m, replacing a row with the same key (docs/protocol.md 3.1).
func (d *DB) UpsertMeta(ctx context.Context, m Meta) error {
	if _, err := d.exec(ctx, sqlMetaUpsert, m.Key, m.Type, m.Value); err != nil {
		return fmt.Errorf("db: upsert meta %s: %w", m.Key, err)
	}
	return nil
}

// MetaByKey returns the row with key, or ErrNotFound.
func (d *DB) MetaByKey(ctx context.Context, key string) (Meta, error) {
	var m Meta
	err := d.sql.QueryRowContext(ctx, sqlMetaByKey, key).Scan(&m.Key, &m.Type, &m.Value)
	if errors.Is(err, sql.ErrNoRows) {
		return Meta{}, fmt.Errorf("db: meta %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("db: meta %s: %w", key, err)
	}
	return m, nil
}

// MetaByType returns every row of resource type typ in key order. Like
// KubeEdge's list query it matches all namespaces (docs/protocol.md 3.1). No
// rows is an empty result, not an error.
func (d *DB) MetaByType(ctx context.Context, typ string) ([]Meta, error) {
	rows, err := d.sql.QueryContext(ctx, sqlMetaByType, typ)
	if err != nil {
		return nil, fmt.Errorf("db: meta of type %s: %w", typ, err)
	}
	defer rows.Close()
	var out []Meta
	for rows.Next() {
		var m Meta
		if err := rows.Scan(&m.Key, &m.Type, &m.Value); err != nil {
			return nil, fmt.Errorf("db: meta of type %s: %w", typ, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: meta of type %s: %w", typ, err)
	}
	return out, nil
}

// DeleteMeta deletes the row with key and reports whether there was one.
func (d *DB) DeleteMeta(ctx context.Context, key string) (bool, error) {
	return d.deleteMeta(ctx, sqlMetaDelete, key)
}

// DeleteMetaIfValueContains deletes the row with key only if its value contains
// sub, and reports whether it did. MetaManager deletes a pod only when the
// stored pod has the deleted pod's uid, so a delete for an old incarnation does
// not remove a newer pod of the same name (docs/protocol.md 3.3). An empty sub
// matches every value.
func (d *DB) DeleteMetaIfValueContains(ctx context.Context, key, sub string) (bool, error) {
	return d.deleteMeta(ctx, sqlMetaDeleteIfContains, key, sub)
}

func (d *DB) deleteMeta(ctx context.Context, query, key string, args ...any) (bool, error) {
	res, err := d.exec(ctx, query, append([]any{key}, args...)...)
	if err != nil {
		return false, fmt.Errorf("db: delete meta %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("db: delete meta %s: %w", key, err)
	}
	return n > 0, nil
}
