package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		data []byte
		perm fs.FileMode
	}{
		{"new file", nil, []byte("hello"), 0o600},
		{"replace", []byte("a much longer old content"), []byte("new"), 0o644},
		{"empty", []byte("x"), nil, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f.json")
			if tt.old != nil {
				if err := os.WriteFile(p, tt.old, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(p, tt.data, tt.perm); err != nil {
				t.Fatalf("WriteFile() = %v, want nil", err)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != string(tt.data) {
				t.Errorf("ReadFile() = %q, %v, want %q", got, err, tt.data)
			}
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != tt.perm {
				t.Errorf("mode = %v, %v, want %v", fi.Mode().Perm(), err, tt.perm)
			}
			onlyFile(t, dir, "f.json")
		})
	}
}

// TestWriteFileFails checks that a failed write leaves the old file and
// no temp file behind.
func TestWriteFileFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "target")
	if err := os.Mkdir(p, 0o700); err != nil { // rename onto a folder fails
		t.Fatal(err)
	}
	err := WriteFile(p, []byte("x"), 0o600)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "write" || pe.Path != p {
		t.Fatalf("WriteFile(onto a folder) = %v, want a *fs.PathError for write %s", err, p)
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		t.Errorf("target after failure: %v, %v, want the folder untouched", fi, err)
	}
	onlyFile(t, dir, "target")

	missing := filepath.Join(dir, "no", "such", "f")
	if err := WriteFile(missing, []byte("x"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile(missing folder) = %v, want fs.ErrNotExist", err)
	}
}

func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != name {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only %s", names, name)
	}
}
