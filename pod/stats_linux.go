package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// cgroupRoot is where the cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// nodeUsage reads the node's CPU time and working set from /proc.
func nodeUsage() (usage, error) {
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return usage{}, fmt.Errorf("pod: stats: %w", err)
	}
	mi, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return usage{}, fmt.Errorf("pod: stats: %w", err)
	}
	cpu, ok1 := procCPU(st)
	ws, ok2 := memWorkingSet(mi)
	if !ok1 || !ok2 {
		return usage{}, errors.New("pod: stats: /proc/stat or /proc/meminfo not understood")
	}
	return usage{cpuNanos: cpu, workingSet: ws}, nil
}

// cgroupUsage reads a container's cgroup (path as in the OCI spec's
// cgroupsPath, see cgroupParent). cgroup v2: cpu.stat usage_usec and
// memory.current minus memory.stat inactive_file; v1: cpuacct.usage and
// memory.usage_in_bytes minus total_inactive_file. This is the working
// set as the kubelet (cadvisor) computes it.
func cgroupUsage(path string) (usage, error) {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return cgroupUsage2(filepath.Join(cgroupRoot, path))
	}
	return cgroupUsage1(path)
}

func cgroupUsage2(dir string) (usage, error) {
	cs, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return usage{}, fmt.Errorf("pod: stats: %w", err)
	}
	usec, ok := statValue(cs, "usage_usec")
	if !ok {
		return usage{}, fmt.Errorf("pod: stats: no usage_usec in %s/cpu.stat", dir)
	}
	mem, err := readUint(filepath.Join(dir, "memory.current"))
	if err != nil {
		return usage{}, err
	}
	ms, _ := os.ReadFile(filepath.Join(dir, "memory.stat"))
	inactive, _ := statValue(ms, "inactive_file")
	return usage{cpuNanos: usec * 1000, workingSet: mem - min(mem, inactive)}, nil
}

func cgroupUsage1(path string) (usage, error) {
	cpu, err := readUint(filepath.Join(cgroupRoot, "cpuacct", path, "cpuacct.usage"))
	if err != nil {
		if cpu, err = readUint(filepath.Join(cgroupRoot, "cpu,cpuacct", path, "cpuacct.usage")); err != nil {
			return usage{}, err
		}
	}
	mdir := filepath.Join(cgroupRoot, "memory", path)
	mem, err := readUint(filepath.Join(mdir, "memory.usage_in_bytes"))
	if err != nil {
		return usage{}, err
	}
	ms, _ := os.ReadFile(filepath.Join(mdir, "memory.stat"))
	inactive, _ := statValue(ms, "total_inactive_file")
	return usage{cpuNanos: cpu, workingSet: mem - min(mem, inactive)}, nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pod: stats: %w", err)
	}
	var v uint64
	if _, err := fmt.Sscan(string(b), &v); err != nil {
		return 0, fmt.Errorf("pod: stats: %s: %w", path, err)
	}
	return v, nil
}
