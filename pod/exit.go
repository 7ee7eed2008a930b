package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

var (
	// errPidGone: the pid is not, or no longer, the container's process.
	errPidGone = errors.New("pod: container process gone")
	// errNoPidfd: pidfds cannot be used here; exits are polled.
	errNoPidfd = errors.New("pod: no pidfd")
)

// runcStartTime reads the start time runc saved for the init process of
// container id (state.json under the runtime root: init_process_pid and
// init_process_start, in clock ticks since boot). ok is false when there
// is no such record for pid (another runtime, such as crun, keeps its
// state elsewhere): then runc's own list, which checks the same, is
// trusted.
func runcStartTime(root, id string, pid int) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err != nil {
		return 0, false
	}
	return parseRuncState(b, pid)
}

// parseRuncState reads init_process_start from runc's state.json b if its
// init_process_pid is pid.
func parseRuncState(b []byte, pid int) (uint64, bool) {
	var s struct {
		Pid   int             `json:"init_process_pid"`
		Start json.RawMessage `json:"init_process_start"`
	}
	if json.Unmarshal(b, &s) != nil || s.Pid != pid {
		return 0, false
	}
	// A number in runc 1.x; some older versions wrote a string.
	v, err := strconv.ParseUint(strings.Trim(string(s.Start), `"`), 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// parseStartTime reads starttime from the text of /proc/<pid>/stat. The
// command name (field 2) may hold spaces and parentheses, so the fields
// are counted from its last closing parenthesis.
func parseStartTime(b []byte) (uint64, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("pod: /proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, errors.New("pod: /proc stat: too few fields")
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("pod: /proc stat: starttime: %w", err)
	}
	return v, nil
}
