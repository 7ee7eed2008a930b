package db

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Environment switches of the durability child.
const (
	envChildDB    = "EDGENODE_DURABILITY_DB"    // path: run as the writing child
	envChildStart = "EDGENODE_DURABILITY_START" // first row number the child writes
	envSeed       = "EDGENODE_DURABILITY_SEED"  // replay a failing run
)

const (
	killRounds   = 24
	maxAcksRound = 40
	defaultSeed  = 20261130
)

func durabilityKey(n int) string { return fmt.Sprintf("default/configmap/row%07d", n) }
func durabilityValue(n int) string {
	return fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", n%200))
}

// TestKill9Durability shows that a write the node acknowledged survives
// kill -9: a child process (this test binary again) writes rows one commit
// at a time and prints "ack N" only after the commit returned; the parent
// kills it with SIGKILL at a random point, reopens the file and checks that
// integrity_check is ok and every acknowledged row is there, intact.
func TestKill9Durability(t *testing.T) {
	if path := os.Getenv(envChildDB); path != "" {
		durabilityChild(path)
		return
	}
	if testing.Short() {
		t.Skip("kill -9 durability test skipped in -short mode")
	}
	seed := uint64(defaultSeed)
	if s := os.Getenv(envSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, s, err)
		}
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (rerun with %s=%d): %s", seed, envSeed, seed, fmt.Sprintf(format, args...))
	}

	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	acked := map[int]bool{}
	next := 0
	for round := range killRounds {
		// 0 kills the child while it opens (and, the first time, creates
		// and migrates) the database.
		killAfter := rng.IntN(maxAcksRound + 1)
		got, err := runAndKill(t, path, next, killAfter)
		if errors.Is(err, errSkip) {
			t.Skipf("skipped: %v", err)
		}
		if err != nil {
			fail("round %d: %v", round, err)
		}
		for _, n := range got {
			acked[n] = true
			next = max(next, n+1)
		}
		d, err := Open(ctx, path, Config{})
		if err != nil {
			fail("round %d (killed after %d acks): reopen: %v", round, killAfter, err)
		}
		if res, err := d.IntegrityCheck(ctx); err != nil || res != "ok" {
			d.Close()
			fail("round %d: integrity_check = %q, %v, want ok", round, res, err)
		}
		for n := range acked {
			var v string
			err := d.SQL().QueryRowContext(ctx, `SELECT "value" FROM meta WHERE "key" = ?`, durabilityKey(n)).Scan(&v)
			if err != nil || v != durabilityValue(n) {
				d.Close()
				fail("round %d: acknowledged row %d = %q, %v, want %q", round, n, v, err, durabilityValue(n))
			}
		}
		if err := d.Close(); err != nil {
			fail("round %d: close: %v", round, err)
		}
	}
	if len(acked) < killRounds {
		fail("only %d rows acknowledged in %d rounds: the child hardly wrote", len(acked), killRounds)
	}
	t.Logf("seed %d: %d rounds, %d acknowledged rows all present", seed, killRounds, len(acked))
}

// runAndKill starts the child writing rows from start, SIGKILLs it after it
// acknowledged killAfter rows, and returns every row it acknowledged (the
// lines it completed before it died).
func runAndKill(t *testing.T, path string, start, killAfter int) ([]int, error) {
	t.Helper()
	cmd, err := startChild(path, start)
	if err != nil {
		return nil, err
	}
	stdout := cmd.Stdout.(*os.File)
	defer stdout.Close()
	sc := bufio.NewScanner(stdout)
	var acks []int
	killed := false
	kill := func() error {
		killed = true
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill child: %w", err)
		}
		return nil
	}
	if killAfter == 0 {
		if err := kill(); err != nil {
			return nil, err
		}
	}
	for sc.Scan() {
		line := sc.Text()
		s, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return acks, fmt.Errorf("child printed %q", line)
		}
		acks = append(acks, n)
		if !killed && len(acks) >= killAfter {
			if err := kill(); err != nil {
				return acks, err
			}
		}
	}
	werr := cmd.Wait()
	if !killed {
		return acks, fmt.Errorf("child exited before it was killed: %v (stderr: %s)", werr, cmd.Stderr)
	}
	return acks, nil
}

// childUnderQemu is set once this test binary could not exec itself: an
// ARM binary under qemu-arm-static without binfmt_misc. Each failed exec
// there leaves a forked emulator that must then exit, and once, in a CI
// run, that exit hung for good (qemu-user 7.2, the child on a futex, the
// test in wait4 for it), so the direct exec is tried once, not once a
// round.
var childUnderQemu bool

// startChild runs this test binary as the writing child. Without
// binfmt_misc an ARM test binary running under qemu-arm-static cannot exec
// another ARM binary, so there the child runs under qemu-arm-static too.
func startChild(path string, start int) (*exec.Cmd, error) {
	args := []string{"-test.run=^TestKill9Durability$", "-test.count=1"}
	var err error
	if !childUnderQemu {
		var cmd *exec.Cmd
		cmd, err = startChildWith(os.Args[0], args, path, start)
		if err == nil || runtime.GOARCH != "arm" {
			return cmd, err
		}
	}
	qemu, lerr := exec.LookPath("qemu-arm-static")
	if lerr != nil {
		return nil, fmt.Errorf("exec %s: %v; and qemu-arm-static is not on PATH: %w", os.Args[0], err, errSkip)
	}
	childUnderQemu = true
	return startChildWith(qemu, append([]string{os.Args[0]}, args...), path, start)
}

var errSkip = errors.New("cannot run the child")

func startChildWith(bin string, args []string, path string, start int) (*exec.Cmd, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), envChildDB+"="+path, envChildStart+"="+strconv.Itoa(start))
	cmd.Stdout = w
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	w.Close()
	cmd.Stdout = r // the reading end, for runAndKill
	return cmd, nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func (l *limitedWriter) String() string { return fmt.Sprint(l.w) }

// durabilityChild opens the database and writes rows, one commit each,
// printing "ack N" after each commit returned, until it is killed. It exits
// the process itself so that the test framework prints nothing more.
func durabilityChild(path string) {
	start, _ := strconv.Atoi(os.Getenv(envChildStart))
	ctx := context.Background()
	d, err := Open(ctx, path, Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	for n := start; n < start+100000; n++ {
		// INSERT OR REPLACE: the row being written when the previous child
		// died may have committed without being acknowledged.
		if _, err := d.SQL().ExecContext(ctx, `INSERT OR REPLACE INTO meta ("key", "type", "value") VALUES (?, ?, ?)`,
			durabilityKey(n), "configmap", durabilityValue(n)); err != nil {
			fmt.Fprintln(os.Stderr, "child: write:", err)
			os.Exit(3)
		}
		if _, err := fmt.Fprintf(os.Stdout, "ack %d\n", n); err != nil {
			os.Exit(3)
		}
	}
	os.Exit(4)
}
