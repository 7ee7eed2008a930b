package board

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// RuncVersion runs `<runc> --version` (runc is a path or a name looked up
// on PATH) and returns the version, e.g. "1.1.12". It gives up after 10 s.
func RuncVersion(ctx context.Context, runc string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, runc, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("board: %s --version: %w", runc, err)
	}
	v, err := ParseRuncVersion(strings.NewReader(string(out)))
	if err != nil {
		return "", fmt.Errorf("board: %s --version: %w", runc, err)
	}
	return v, nil
}

// ParseRuncVersion reads the output of `runc --version`, whose first line
// is "runc version <v>".
func ParseRuncVersion(r io.Reader) (string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 4096))
	if !sc.Scan() {
		return "", fmt.Errorf("no output: %w", ErrSyntax)
	}
	f := strings.Fields(sc.Text())
	if len(f) != 3 || f[0] != "runc" || f[1] != "version" || !validVersion(f[2]) {
		return "", fmt.Errorf("first line %q is not \"runc version <v>\": %w", trunc(sc.Text()), ErrSyntax)
	}
	return f[2], nil
}

func validVersion(v string) bool {
	if v == "" || len(v) > 64 || v[0] < '0' || v[0] > '9' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '+' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}
