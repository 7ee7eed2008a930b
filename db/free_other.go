//go:build !linux

package db

import "errors"

// freeBytes is not measured here: a full store stays read-only until a
// restart.
func freeBytes(string) (int64, error) { return 0, errors.New("db: free space: not on linux") }
