package db

import (
	"context"
	"fmt"
)

// Queries of the sub_topics table: the MQTT topic filters the cloud asked
// EventBus to subscribe to (docs/protocol.md 4.2, 4.3; KubeEdge v1.23.1 dao
// "sub_topics").
const (
	sqlInsertSubTopic = `INSERT INTO sub_topics (topic) VALUES (?) ON CONFLICT (topic) DO NOTHING`
	sqlDeleteSubTopic = `DELETE FROM sub_topics WHERE topic = ?`
	sqlSubTopics      = `SELECT topic FROM sub_topics ORDER BY topic`
)

// AddSubTopic stores a topic filter. Storing one that is already there is
// not an error.
func (d *DB) AddSubTopic(ctx context.Context, topic string) error {
	if _, err := d.exec(ctx, sqlInsertSubTopic, topic); err != nil {
		return fmt.Errorf("db: add sub topic %q: %w", topic, err)
	}
	return nil
}

// DeleteSubTopic removes a topic filter. It returns ErrNotFound if the
// filter was not stored.
func (d *DB) DeleteSubTopic(ctx context.Context, topic string) error {
	res, err := d.exec(ctx, sqlDeleteSubTopic, topic)
	if err != nil {
		return fmt.Errorf("db: delete sub topic %q: %w", topic, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("db: delete sub topic %q: %w", topic, ErrNotFound)
	}
	return nil
}

// SubTopics returns every stored topic filter, sorted.
func (d *DB) SubTopics(ctx context.Context) ([]string, error) {
	rows, err := d.sql.QueryContext(ctx, sqlSubTopics)
	if err != nil {
		return nil, fmt.Errorf("db: list sub topics: %w", err)
	}
	defer rows.Close()
	var topics []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("db: list sub topics: %w", err)
		}
		topics = append(topics, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: list sub topics: %w", err)
	}
	return topics, nil
}
