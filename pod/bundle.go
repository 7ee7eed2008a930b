package pod

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"edgenode/pod/image"
)

// defaultCaps is the capability set a container gets without a security
// context: the one Docker and containerd use, which images are written for.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCaps is every capability of Linux 6.x, for privileged containers.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// maskedPaths and readonlyPaths are containerd's defaults for a container
// that is not privileged (containerd v2.0.0, pkg/oci/spec.go
// populateDefaultUnixSpec); powercap hides the energy counters of
// CVE-2020-8694.
var (
	maskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
		"/sys/devices/virtual/powercap", "/proc/scsi"}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// Annotations edgenode writes into config.json; `runc state` returns them,
// which is how a restarted edgenode knows whose container it finds.
const (
	annPodUID    = "io.edgenode.pod.uid"
	annPodName   = "io.edgenode.pod.name"
	annPodNS     = "io.edgenode.pod.namespace"
	annContainer = "io.edgenode.container.name"
	annStarted   = "io.edgenode.container.started"
	annRestarts  = "io.edgenode.container.restarts"
	annImageID   = "io.edgenode.image.id"
	// annPodsDir names the pods dir of the edgenode that made the
	// container: a runner adopts and removes only its own containers, so
	// two nodes sharing a runc root (a test run beside a real node) never
	// take each other's. Containers without it are from before it existed
	// and count as the runner's own.
	annPodsDir = "io.edgenode.pods.dir"
)

// bundleInput is everything buildSpec needs for one container.
type bundleInput struct {
	pod      *Pod
	c        *Container
	img      image.Image
	rootfs   string
	env      []string
	mounts   []ociMount
	nsPaths  map[string]string // network, ipc, uts -> bind-mounted ns file; nil: host's
	cgroup   string
	annotate map[string]string
	// seccompDir holds the Localhost seccomp profiles (Config.SeccompDir).
	seccompDir string
}

// buildSpec returns the OCI config of one container.
func buildSpec(in bundleInput) (*ociSpec, error) {
	args := containerArgs(in.c, in.img.Config)
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: container %q: no command and the image has none", ErrBadSpec, in.c.Name)
	}
	user, err := containerUser(in.pod, in.c, in.img.Config, in.rootfs)
	if err != nil {
		return nil, err
	}
	sc := in.c.SecurityContext
	privileged := sc != nil && sc.Privileged != nil && *sc.Privileged
	cwd := in.c.WorkingDir
	if cwd == "" {
		cwd = in.img.Config.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	s := &ociSpec{
		OCIVersion: "1.0.2",
		Process: &ociProcess{
			User: user, Args: args, Env: in.env, Cwd: cwd,
			Capabilities:    capabilities(sc, privileged),
			NoNewPrivileges: sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
		},
		Root:        &ociRoot{Path: in.rootfs, Readonly: sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
		Annotations: in.annotate,
		Mounts:      append(baseMounts(privileged), in.mounts...),
		Linux: &ociLinux{
			CgroupsPath: in.cgroup,
			Resources:   resources(in.c, privileged),
			Namespaces:  []ociNamespace{{Type: "pid"}, {Type: "mount"}},
		},
	}
	if !privileged {
		s.Linux.MaskedPaths = slices.Clone(maskedPaths)
		s.Linux.ReadonlyPaths = slices.Clone(readonlyPaths)
		if s.Linux.Seccomp, err = seccompProfile(in, s.Process.Capabilities.Bounding); err != nil {
			return nil, err
		}
	}
	// Containers of one pod share network, IPC and UTS namespaces, held by
	// bind mounts that outlive edgenode (see ns_linux.go). No entry means
	// the host's namespace (hostNetwork, hostIPC).
	for _, t := range []string{"network", "ipc", "uts"} {
		if p, ok := in.nsPaths[t]; ok {
			s.Linux.Namespaces = append(s.Linux.Namespaces, ociNamespace{Type: t, Path: p})
		}
	}
	return s, nil
}

// containerArgs applies Kubernetes' rule: command replaces the image's
// entrypoint (and drops its cmd); args replace the image's cmd.
func containerArgs(c *Container, ic image.RunConfig) []string {
	var out []string
	switch {
	case len(c.Command) > 0:
		out = append(out, c.Command...)
		out = append(out, c.Args...)
	case len(c.Args) > 0:
		out = append(out, ic.Entrypoint...)
		out = append(out, c.Args...)
	default:
		out = append(out, ic.Entrypoint...)
		out = append(out, ic.Cmd...)
	}
	return out
}

// containerUser picks uid/gid from the security contexts, then the image's
// USER ("name", "uid", "uid:gid", "name:group"), read against the image's
// /etc/passwd and /etc/group.
func containerUser(p *Pod, c *Container, ic image.RunConfig, rootfs string) (ociUser, error) {
	var u ociUser
	var uid, gid *int64
	if psc := p.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
		for _, g := range psc.SupplementalGroups {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
		if psc.FSGroup != nil {
			u.AdditionalGids = append(u.AdditionalGids, uint32(*psc.FSGroup))
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	if ic.User != "" && uid == nil {
		name, group, _ := strings.Cut(ic.User, ":")
		id, pgid, err := lookupID(filepath.Join(rootfs, "etc/passwd"), name)
		if err != nil {
			return u, fmt.Errorf("%w: image user %q: %v", ErrBadSpec, ic.User, err)
		}
		uid = &id
		if gid == nil {
			gid = &pgid
		}
		if group != "" {
			g, _, err := lookupID(filepath.Join(rootfs, "etc/group"), group)
			if err != nil {
				return u, fmt.Errorf("%w: image group %q: %v", ErrBadSpec, group, err)
			}
			gid = &g
		}
	}
	if uid != nil {
		if *uid < 0 || *uid > 1<<31 {
			return u, fmt.Errorf("%w: runAsUser %d out of range", ErrBadSpec, *uid)
		}
		u.UID = uint32(*uid)
	}
	if gid != nil {
		if *gid < 0 || *gid > 1<<31 {
			return u, fmt.Errorf("%w: runAsGroup %d out of range", ErrBadSpec, *gid)
		}
		u.GID = uint32(*gid)
	}
	nonRoot := false
	if psc := p.Spec.SecurityContext; psc != nil && psc.RunAsNonRoot != nil {
		nonRoot = *psc.RunAsNonRoot
	}
	if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		nonRoot = *sc.RunAsNonRoot
	}
	if nonRoot && u.UID == 0 {
		return u, fmt.Errorf("%w: container %q: runAsNonRoot and the image runs as root", ErrBadSpec, c.Name)
	}
	return u, nil
}

// lookupID reads a numeric id, or finds name in a passwd/group file and
// returns its id (third field) and, for passwd, the group id (fourth).
func lookupID(file, name string) (int64, int64, error) {
	if n, err := strconv.ParseInt(name, 10, 64); err == nil {
		return n, 0, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) < 3 || fs[0] != name {
			continue
		}
		id, err := strconv.ParseInt(fs[2], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bad id %q", fs[2])
		}
		var g int64
		if len(fs) > 3 {
			g, _ = strconv.ParseInt(fs[3], 10, 64)
		}
		return id, g, nil
	}
	return 0, 0, fmt.Errorf("%s: no entry %q", filepath.Base(file), name)
}

func capabilities(sc *SecurityContext, privileged bool) *ociCapabilities {
	set := map[string]bool{}
	base := defaultCaps
	if privileged {
		base = allCaps
	}
	for _, c := range base {
		set[c] = true
	}
	if sc != nil && sc.Capabilities != nil && !privileged {
		for _, c := range sc.Capabilities.Drop {
			if strings.EqualFold(c, "ALL") {
				clear(set)
			}
			delete(set, capName(c))
		}
		for _, c := range sc.Capabilities.Add {
			if strings.EqualFold(c, "ALL") {
				for _, a := range allCaps {
					set[a] = true
				}
				continue
			}
			set[capName(c)] = true
		}
	}
	list := make([]string, 0, len(set))
	for c := range set {
		list = append(list, c)
	}
	sort.Strings(list)
	return &ociCapabilities{Bounding: list, Effective: list, Permitted: list}
}

func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// resources turns limits and requests into cgroup settings; runc writes
// them to cgroup v1 files or converts them for v2 (cpu.weight, memory.max).
func resources(c *Container, privileged bool) *ociResources {
	r := &ociResources{Devices: []ociDeviceRule{{Allow: privileged, Access: "rwm"}}}
	if q, ok := c.Resources.Limits["memory"]; ok {
		if v, err := ParseQuantity(q); err == nil && v > 0 {
			b := v / 1000
			r.Memory = &ociMemory{Limit: &b}
		}
	}
	cpu := &ociCPU{}
	if q, ok := c.Resources.Limits["cpu"]; ok {
		if m, err := ParseQuantity(q); err == nil && m > 0 {
			// ParseQuantity gives millicores; quota per 100 ms period as the
			// kubelet computes it (millicores * period / 1000, at least 1 ms).
			period := uint64(100000)
			quota := max(m*int64(period)/1000, 1000)
			cpu.Period, cpu.Quota = &period, &quota
		}
	}
	req, ok := c.Resources.Requests["cpu"]
	if !ok {
		req, ok = c.Resources.Limits["cpu"]
	}
	if ok {
		if m, err := ParseQuantity(req); err == nil && m > 0 {
			shares := uint64(max(m*1024/1000, 2)) // kubelet MilliCPUToShares
			cpu.Shares = &shares
		}
	}
	if cpu.Quota != nil || cpu.Shares != nil {
		r.CPU = cpu
	}
	return r
}

// baseMounts are the file systems every container gets.
func baseMounts(privileged bool) []ociMount {
	sys := []string{"nosuid", "noexec", "nodev", "ro"}
	if privileged {
		sys = []string{"nosuid", "noexec", "nodev", "rw"}
	}
	return []ociMount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sys},
	}
}
