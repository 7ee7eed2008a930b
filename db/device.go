package db

import (
	"context"
	"database/sql"
	"fmt"
)

// Device is a row of table device (docs/protocol.md 5.3), in column order.
type Device struct {
	ID          string
	Name        string
	Description string
	State       string
	LastOnline  string
}

// DeviceAttr is a row of table device_attr (docs/protocol.md 5.3), in column
// order. Metadata is the attribute's metadata JSON with its type blanked.
type DeviceAttr struct {
	ID          int64
	DeviceID    string
	Name        string
	Description string
	Value       string
	Optional    bool
	AttrType    string
	Metadata    string
}

// DeviceTwin is a row of table device_twin (docs/protocol.md 5.3), in column
// order. Expected, Actual and their _meta columns are NULL (Valid false) only
// on a tombstone (AttrType "deleted"); a side that was never set is "".
type DeviceTwin struct {
	ID              int64
	DeviceID        string
	Name            string
	Description     string
	Expected        sql.NullString
	Actual          sql.NullString
	ExpectedMeta    sql.NullString
	ActualMeta      sql.NullString
	ExpectedVersion string
	ActualVersion   string
	Optional        bool
	AttrType        string
	Metadata        string
}

// DeviceKey names an attribute or twin of a device.
type DeviceKey struct {
	DeviceID string
	Name     string
}

// DeviceChange is one atomic change to the device tables. ApplyDevices
// runs deletes first (devices, then attributes and twins), then puts.
type DeviceChange struct {
	// PutDevices inserts or replaces devices by id.
	PutDevices []Device
	// DeleteDevices removes devices with their attributes and twins.
	DeleteDevices []string
	// PutAttrs inserts or updates attributes by (deviceid, name); the row
	// id of an existing attribute is kept.
	PutAttrs    []DeviceAttr
	DeleteAttrs []DeviceKey
	// PutTwins inserts or updates twins by (deviceid, name), keeping the
	// row id. A tombstone is a put with AttrType "deleted".
	PutTwins    []DeviceTwin
	DeleteTwins []DeviceKey
}

// Empty reports whether c changes nothing.
func (c *DeviceChange) Empty() bool {
	return len(c.PutDevices)+len(c.DeleteDevices)+len(c.PutAttrs)+len(c.DeleteAttrs)+
		len(c.PutTwins)+len(c.DeleteTwins) == 0
}

const (
	sqlDevices    = `SELECT id, name, description, state, last_online FROM device ORDER BY id`
	sqlDeviceAttr = `SELECT id, deviceid, name, description, value, optional, attr_type, metadata
		FROM device_attr ORDER BY deviceid, name`
	sqlDeviceTwin = `SELECT id, deviceid, name, description, expected, actual, expected_meta, actual_meta,
		expected_version, actual_version, optional, attr_type, metadata FROM device_twin ORDER BY deviceid, name`
	sqlPutDevice = `INSERT INTO device (id, name, description, state, last_online) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description,
		state = excluded.state, last_online = excluded.last_online`
	sqlDelDevice      = `DELETE FROM device WHERE id = ?`
	sqlDelDeviceAttrs = `DELETE FROM device_attr WHERE deviceid = ?`
	sqlDelDeviceTwins = `DELETE FROM device_twin WHERE deviceid = ?`
	sqlPutAttr        = `INSERT INTO device_attr (deviceid, name, description, value, optional, attr_type, metadata)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(deviceid, name) DO UPDATE SET description = excluded.description, value = excluded.value,
		optional = excluded.optional, attr_type = excluded.attr_type, metadata = excluded.metadata`
	sqlDelAttr = `DELETE FROM device_attr WHERE deviceid = ? AND name = ?`
	sqlPutTwin = `INSERT INTO device_twin (deviceid, name, description, expected, actual, expected_meta,
		actual_meta, expected_version, actual_version, optional, attr_type, metadata)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(deviceid, name) DO UPDATE SET description = excluded.description,
		expected = excluded.expected, actual = excluded.actual, expected_meta = excluded.expected_meta,
		actual_meta = excluded.actual_meta, expected_version = excluded.expected_version,
		actual_version = excluded.actual_version, optional = excluded.optional,
		attr_type = excluded.attr_type, metadata = excluded.metadata`
	sqlDelTwin = `DELETE FROM device_twin WHERE deviceid = ? AND name = ?`
)

// Devices returns every row of table device, ordered by id.
func (d *DB) Devices(ctx context.Context) ([]Device, error) {
	rows, err := d.sql.QueryContext(ctx, sqlDevices)
	if err != nil {
		return nil, fmt.Errorf("db: read devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var r Device
		if err := rows.Scan(&r.ID, &r.Name, &r.Description, &r.State, &r.LastOnline); err != nil {
			return nil, fmt.Errorf("db: read devices: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: read devices: %w", err)
	}
	return out, nil
}

// DeviceAttrs returns every row of table device_attr, ordered by device
// and name.
func (d *DB) DeviceAttrs(ctx context.Context) ([]DeviceAttr, error) {
	rows, err := d.sql.QueryContext(ctx, sqlDeviceAttr)
	if err != nil {
		return nil, fmt.Errorf("db: read device attributes: %w", err)
	}
	defer rows.Close()
	var out []DeviceAttr
	for rows.Next() {
		var r DeviceAttr
		if err := rows.Scan(&r.ID, &r.DeviceID, &r.Name, &r.Description, &r.Value, &r.Optional,
			&r.AttrType, &r.Metadata); err != nil {
			return nil, fmt.Errorf("db: read device attributes: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: read device attributes: %w", err)
	}
	return out, nil
}

// DeviceTwins returns every row of table device_twin, ordered by device and
// name.
func (d *DB) DeviceTwins(ctx context.Context) ([]DeviceTwin, error) {
	rows, err := d.sql.QueryContext(ctx, sqlDeviceTwin)
	if err != nil {
		return nil, fmt.Errorf("db: read device twins: %w", err)
	}
	defer rows.Close()
	var out []DeviceTwin
	for rows.Next() {
		var r DeviceTwin
		if err := rows.Scan(&r.ID, &r.DeviceID, &r.Name, &r.Description, &r.Expected, &r.Actual,
			&r.ExpectedMeta, &r.ActualMeta, &r.ExpectedVersion, &r.ActualVersion, &r.Optional,
			&r.AttrType, &r.Metadata); err != nil {
			return nil, fmt.Errorf("db: read device twins: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: read device twins: %w", err)
	}
	return out, nil
}

// ApplyDevices applies c in one transaction: either all of it is committed
// or none of it. Callers that write often use a DeviceWriter.
func (d *DB) ApplyDevices(ctx context.Context, c DeviceChange) error {
	return d.applyDevices(ctx, c, nil)
}

// Statements of a device change, in the order applyDevices runs them.
const (
	stDelDevice = iota
	stDelDeviceAttrs
	stDelDeviceTwins
	stDelAttr
	stDelTwin
	stPutDevice
	stPutAttr
	stPutTwin
	numDeviceStmts
)

var deviceSQL = [numDeviceStmts]string{sqlDelDevice, sqlDelDeviceAttrs, sqlDelDeviceTwins, sqlDelAttr,
	sqlDelTwin, sqlPutDevice, sqlPutAttr, sqlPutTwin}

// DeviceWriter applies device changes with statements prepared once, for
// a module that writes on every message. It is safe for concurrent use.
type DeviceWriter struct {
	d     *DB
	stmts [numDeviceStmts]*sql.Stmt
}

// DeviceWriter prepares the statements of device changes. Close it when
// done.
func (d *DB) DeviceWriter(ctx context.Context) (*DeviceWriter, error) {
	w := &DeviceWriter{d: d}
	for i, q := range deviceSQL {
		st, err := d.sql.PrepareContext(ctx, q)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("db: prepare device statements: %w", err)
		}
		w.stmts[i] = st
	}
	return w, nil
}

// Apply is ApplyDevices with the prepared statements.
func (w *DeviceWriter) Apply(ctx context.Context, c DeviceChange) error {
	return w.d.applyDevices(ctx, c, &w.stmts)
}

// Close releases the statements.
func (w *DeviceWriter) Close() error {
	var first error
	for _, st := range w.stmts {
		if st == nil {
			continue
		}
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (d *DB) applyDevices(ctx context.Context, c DeviceChange, stmts *[numDeviceStmts]*sql.Stmt) error {
	if c.Empty() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("db: apply device change: %w", err)
	}
	// A device change is a few small statements on the node's one
	// connection: once begun it runs to its end. A context that cannot be
	// cancelled spares the driver a watcher goroutine per statement.
	ctx = context.WithoutCancel(ctx)
	if err := d.writable(); err != nil {
		return fmt.Errorf("db: apply device change: %w", err)
	}
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("db: apply device change: %w", d.wrote(err))
	}
	exec := func(i int, args ...any) error {
		if stmts == nil {
			_, err := tx.ExecContext(ctx, deviceSQL[i], args...)
			return err
		}
		_, err := tx.StmtContext(ctx, stmts[i]).ExecContext(ctx, args...)
		return err
	}
	if err := applyDevices(exec, &c); err != nil {
		tx.Rollback()
		return fmt.Errorf("db: apply device change: %w", d.wrote(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("db: apply device change: %w", d.wrote(err))
	}
	d.wrote(nil)
	return nil
}

func applyDevices(exec func(int, ...any) error, c *DeviceChange) error {
	for _, id := range c.DeleteDevices {
		for _, st := range []int{stDelDevice, stDelDeviceAttrs, stDelDeviceTwins} {
			if err := exec(st, id); err != nil {
				return err
			}
		}
	}
	for _, k := range c.DeleteAttrs {
		if err := exec(stDelAttr, k.DeviceID, k.Name); err != nil {
			return err
		}
	}
	for _, k := range c.DeleteTwins {
		if err := exec(stDelTwin, k.DeviceID, k.Name); err != nil {
			return err
		}
	}
	// Puts of one key run once, at the place of the first, with the
	// values of the last: the rows and their ids end as if each ran, and a
	// batch of updates to one twin costs one statement, not one per update.
	for i := range c.PutDevices {
		r, ok := lastPut(c.PutDevices, i, func(a, b *Device) bool { return a.ID == b.ID })
		if !ok {
			continue
		}
		if err := exec(stPutDevice, r.ID, r.Name, r.Description, r.State, r.LastOnline); err != nil {
			return err
		}
	}
	for i := range c.PutAttrs {
		r, ok := lastPut(c.PutAttrs, i, func(a, b *DeviceAttr) bool { return a.DeviceID == b.DeviceID && a.Name == b.Name })
		if !ok {
			continue
		}
		if err := exec(stPutAttr, r.DeviceID, r.Name, r.Description, r.Value, r.Optional,
			r.AttrType, r.Metadata); err != nil {
			return err
		}
	}
	for i := range c.PutTwins {
		r, ok := lastPut(c.PutTwins, i, func(a, b *DeviceTwin) bool { return a.DeviceID == b.DeviceID && a.Name == b.Name })
		if !ok {
			continue
		}
		if err := exec(stPutTwin, r.DeviceID, r.Name, r.Description, r.Expected, r.Actual,
			r.ExpectedMeta, r.ActualMeta, r.ExpectedVersion, r.ActualVersion, r.Optional,
			r.AttrType, r.Metadata); err != nil {
			return err
		}
	}
	return nil
}

// maxDedup bounds the puts checked for others of the same key; the check
// is quadratic, and beyond this every put runs.
const maxDedup = 256

// lastPut returns the row to write at position i: the last put of the
// key of rows[i], or false if an earlier put of that key wrote it.
func lastPut[T any](rows []T, i int, same func(a, b *T) bool) (*T, bool) {
	if len(rows) > maxDedup {
		return &rows[i], true
	}
	for j := range i {
		if same(&rows[j], &rows[i]) {
			return nil, false
		}
	}
	last := i
	for j := i + 1; j < len(rows); j++ {
		if same(&rows[i], &rows[j]) {
			last = j
		}
	}
	return &rows[last], true
}
