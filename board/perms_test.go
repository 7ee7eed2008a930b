package board

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRestrictPerms(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(dir, 0o755))
	must(os.Chmod(dir, 0o755))
	must(os.WriteFile(filepath.Join(dir, "db"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "db-wal"), []byte("x"), 0o600))
	must(os.Mkdir(filepath.Join(dir, "certs"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "link")))
	changed, err := RestrictPerms(dir, "db", "db-wal", "db-shm", "certs", "link")
	must(err)
	want := []string{dir, filepath.Join(dir, "db"), filepath.Join(dir, "certs")}
	if !slices.Equal(changed, want) {
		t.Errorf("RestrictPerms changed %q, want %q", changed, want)
	}
	for p, mode := range map[string]os.FileMode{"": 0o700, "db": 0o600, "db-wal": 0o600, "certs": 0o700, "other": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, p))
		must(err)
		if fi.Mode().Perm() != mode {
			t.Errorf("mode of %q = %o, want %o", p, fi.Mode().Perm(), mode)
		}
	}
	if fi, _ := os.Stat("/etc/passwd"); fi.Mode().Perm()&0o044 == 0 {
		t.Error("RestrictPerms followed a symbolic link")
	}
	if changed, err := RestrictPerms(dir, "db"); err != nil || len(changed) != 0 {
		t.Errorf("RestrictPerms again = %q, %v, want nothing changed", changed, err)
	}
}
