package db

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A file of schema 1 (device tables with AUTOINCREMENT, as KubeEdge
// declares them) opens at the current schema with every row and id as it
// was, and without AUTOINCREMENT.
func TestMigrateFromSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations[0], "PRAGMA user_version = 1",
		`INSERT INTO device (id, name) VALUES ('d1', 'one')`,
		`INSERT INTO device_attr (deviceid, name, value, optional, attr_type, metadata) VALUES ('d1', 'a', 'v', 1, 'string', '{}'), ('d1', 'b', 'w', 0, 'int', '{}')`,
		`INSERT INTO device_twin (deviceid, name, expected, actual, expected_version, actual_version, optional, attr_type) VALUES
			('d1', 't', '1', '2', '{"cloud":1,"edge":0}', '{"cloud":0,"edge":3}', 1, 'int'), ('d1', 'u', NULL, NULL, '', '', 0, 'deleted')`,
		// Ids with a gap, as deletes leave them.
		`DELETE FROM device_twin WHERE name = 'u'`,
		`INSERT INTO device_twin (deviceid, name, expected, actual) VALUES ('d1', 'w', '', '5')`,
	} {
		if _, err := s.Exec(q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	s.Close()

	d, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var v int
	if err := d.SQL().QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version = %d, %v, want %d", v, err, SchemaVersion)
	}
	attrs, err := d.DeviceAttrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantAttrs := []DeviceAttr{{ID: 1, DeviceID: "d1", Name: "a", Value: "v", Optional: true, AttrType: "string", Metadata: "{}"},
		{ID: 2, DeviceID: "d1", Name: "b", Value: "w", AttrType: "int", Metadata: "{}"}}
	if diff := cmp.Diff(wantAttrs, attrs); diff != "" {
		t.Errorf("attributes after migration (-want +got):\n%s", diff)
	}
	twins, err := d.DeviceTwins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantTwins := []DeviceTwin{
		{ID: 1, DeviceID: "d1", Name: "t", Expected: str("1"), Actual: str("2"), ExpectedVersion: `{"cloud":1,"edge":0}`, ActualVersion: `{"cloud":0,"edge":3}`, Optional: true, AttrType: "int"},
		{ID: 3, DeviceID: "d1", Name: "w", Expected: str(""), Actual: str("5")},
	}
	if diff := cmp.Diff(wantTwins, twins); diff != "" {
		t.Errorf("twins after migration (-want +got):\n%s", diff)
	}
	rows, err := d.SQL().Query(`SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToUpper(ddl), "AUTOINCREMENT") {
			t.Errorf("%s still declared with AUTOINCREMENT: %s", name, ddl)
		}
	}
	// Keyed by (deviceid, name) as before: a put of an existing twin
	// keeps its id.
	if err := d.ApplyDevices(ctx, DeviceChange{PutTwins: []DeviceTwin{{DeviceID: "d1", Name: "w", Expected: str(""), Actual: str("6")}}}); err != nil {
		t.Fatal(err)
	}
	if twins, _ := d.DeviceTwins(ctx); len(twins) != 2 || twins[1].ID != 3 || twins[1].Actual.String != "6" {
		t.Errorf("twins after a put = %+v, want w with id 3 and actual 6", twins)
	}
}

// A commit of one twin update writes one page to the WAL: the twin's.
// With AUTOINCREMENT (schema 1) it also wrote sqlite_sequence's page.
func TestTwinCommitPages(t *testing.T) {
	ctx := context.Background()
	d := openTest(t)
	w, err := d.DeviceWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	put := func(v string) {
		t.Helper()
		if err := w.Apply(ctx, DeviceChange{PutTwins: []DeviceTwin{{DeviceID: "d", Name: "t", Expected: str("1"), Actual: str(v)}}}); err != nil {
			t.Fatal(err)
		}
	}
	put("0")
	if _, err := d.SQL().Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	const frame = 24 + 4096 // WAL frame header and one page
	for i, v := range []string{"1", "2", "3"} {
		put(v)
		fi, err := os.Stat(d.Path() + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		if frames := (fi.Size() - 32) / frame; frames != int64(i+1) {
			t.Errorf("after %d one-twin commits the WAL holds %d pages, want %d", i+1, frames, i+1)
		}
	}
}

// A new file is made at schema in one step; a file of schema 1 is
// migrated. Both must end with the same tables, columns and indexes
// (sqlite_sequence aside: a file made new has no AUTOINCREMENT table
// and so none).
func TestNewFileSchemaIsMigrated(t *testing.T) {
	ctx := context.Background()
	describe := func(s *sql.DB) []string {
		t.Helper()
		var out []string
		rows, err := s.QueryContext(ctx, `SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`)
		if err != nil {
			t.Fatal(err)
		}
		var objs [][4]string
		for rows.Next() {
			var o [4]string
			if err := rows.Scan(&o[0], &o[1], &o[2], &o[3]); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, o)
		}
		rows.Close()
		for _, o := range objs {
			// The DDL's text differs (a rebuilt table keeps its CREATE
			// under the name it was made with); what it declares beyond
			// the columns is AUTOINCREMENT.
			out = append(out, strings.Join(o[:3], " "), fmt.Sprint("  autoincrement ", strings.Contains(strings.ToUpper(o[3]), "AUTOINCREMENT")))
			q := "PRAGMA table_xinfo(" + o[1] + ")"
			if o[0] == "index" {
				q = "PRAGMA index_xinfo(" + o[1] + ")"
			}
			cols, err := s.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			names, _ := cols.Columns()
			for cols.Next() {
				vals := make([]any, len(names))
				ptrs := make([]any, len(names))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := cols.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprint("  ", vals))
			}
			cols.Close()
		}
		return out
	}
	made := openTest(t)
	old := filepath.Join(t.TempDir(), FileName)
	s, err := sql.Open("sqlite", "file:"+old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exec(migrations[0] + ";PRAGMA user_version = 1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	migrated, err := Open(ctx, old, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer migrated.Close()
	if diff := cmp.Diff(describe(migrated.SQL()), describe(made.SQL())); diff != "" {
		t.Errorf("schema of a new file (+) against a migrated one (-):\n%s", diff)
	}
	for _, d := range []*DB{made, migrated} {
		var v int
		if err := d.SQL().QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
			t.Errorf("user_version = %d, %v, want %d", v, err, SchemaVersion)
		}
	}
}
