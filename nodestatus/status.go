package nodestatus

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"edgenode/board"
)

// The Kubernetes shapes below carry only what an edge node reports, with
// Kubernetes' JSON field names (k8s.io/api/core/v1, coordination/v1); the
// binary does not depend on k8s.io.

// NodeStatus is v1.NodeStatus.
type NodeStatus struct {
	Capacity    ResourceList    `json:"capacity,omitempty"`
	Allocatable ResourceList    `json:"allocatable,omitempty"`
	Phase       string          `json:"phase,omitempty"`
	Conditions  []NodeCondition `json:"conditions,omitempty"`
	Addresses   []NodeAddress   `json:"addresses,omitempty"`
	// DaemonEndpoints is nil in v1.23 nodepatches: cloudstream sets the
	// port there (to its stream port) when the node's tunnel connects.
	DaemonEndpoints *NodeDaemonEndpoints `json:"daemonEndpoints,omitempty"`
	NodeInfo        NodeSystemInfo       `json:"nodeInfo"`
}

// ResourceList maps a resource name (cpu, memory, pods, ephemeral-storage)
// to a quantity in Kubernetes' string form.
type ResourceList map[string]string

// NodeCondition is v1.NodeCondition. Times are RFC 3339 in seconds
// (metav1.Time).
type NodeCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	LastHeartbeatTime  string `json:"lastHeartbeatTime,omitempty"`
	LastTransitionTime string `json:"lastTransitionTime,omitempty"`
	Reason             string `json:"reason,omitempty"`
	Message            string `json:"message,omitempty"`
}

// NodeAddress is v1.NodeAddress.
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// NodeDaemonEndpoints is v1.NodeDaemonEndpoints.
type NodeDaemonEndpoints struct {
	KubeletEndpoint DaemonEndpoint `json:"kubeletEndpoint"`
}

// DaemonEndpoint is v1.DaemonEndpoint.
type DaemonEndpoint struct {
	Port int `json:"Port"`
}

// NodeSystemInfo is v1.NodeSystemInfo.
type NodeSystemInfo struct {
	MachineID               string `json:"machineID"`
	SystemUUID              string `json:"systemUUID"`
	BootID                  string `json:"bootID"`
	KernelVersion           string `json:"kernelVersion"`
	OSImage                 string `json:"osImage"`
	ContainerRuntimeVersion string `json:"containerRuntimeVersion"`
	KubeletVersion          string `json:"kubeletVersion"`
	KubeProxyVersion        string `json:"kubeProxyVersion"`
	OperatingSystem         string `json:"operatingSystem"`
	Architecture            string `json:"architecture"`
}

// KubeNode is v1.Node, as the v1.23 edge registers it (the node insert
// that KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go registerNode takes).
type KubeNode struct {
	Kind       string     `json:"kind"`
	APIVersion string     `json:"apiVersion"`
	Metadata   ObjectMeta `json:"metadata"`
	Spec       struct{}   `json:"spec"`
	Status     NodeStatus `json:"status"`
}

// ObjectMeta is the part of metav1.ObjectMeta the node and lease use.
type ObjectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	UID             string            `json:"uid,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	OwnerReferences []OwnerReference  `json:"ownerReferences,omitempty"`
}

// OwnerReference is metav1.OwnerReference.
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
}

// Lease is coordination/v1 Lease, the node's heartbeat in v1.23 (KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go
// createOrUpdateLease).
type Lease struct {
	Kind       string     `json:"kind,omitempty"`
	APIVersion string     `json:"apiVersion,omitempty"`
	Metadata   ObjectMeta `json:"metadata"`
	Spec       LeaseSpec  `json:"spec"`
}

// LeaseSpec is coordination/v1 LeaseSpec. RenewTime is a metav1.MicroTime.
type LeaseSpec struct {
	HolderIdentity       string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds int    `json:"leaseDurationSeconds,omitempty"`
	RenewTime            string `json:"renewTime,omitempty"`
}

// Condition types and statuses (v1.NodeConditionType).
const (
	CondReady          = "Ready"
	CondMemoryPressure = "MemoryPressure"
	CondDiskPressure   = "DiskPressure"
	CondPIDPressure    = "PIDPressure"
	condTrue           = "True"
	condFalse          = "False"
)

// Time formats of metav1.Time and metav1.MicroTime.
const (
	timeFormat      = time.RFC3339
	microTimeFormat = "2006-01-02T15:04:05.000000Z07:00"
)

// Thresholds decide the pressure conditions. The zero value gives the
// kubelet's hard eviction defaults (memory.available<100Mi,
// nodefs.available<10%, nodefs.inodesFree<5%) and a PID threshold of 10% of
// pid_max free.
type Thresholds struct {
	MemoryAvailable   uint64 `yaml:"memoryAvailable"`   // bytes; default 100 MiB
	DiskFreePercent   int    `yaml:"diskFreePercent"`   // default 10
	InodesFreePercent int    `yaml:"inodesFreePercent"` // default 5
	PIDsFreePercent   int    `yaml:"pidsFreePercent"`   // default 10
}

func (t *Thresholds) defaults() {
	if t.MemoryAvailable == 0 {
		t.MemoryAvailable = 100 << 20
	}
	if t.DiskFreePercent == 0 {
		t.DiskFreePercent = 10
	}
	if t.InodesFreePercent == 0 {
		t.InodesFreePercent = 5
	}
	if t.PIDsFreePercent == 0 {
		t.PIDsFreePercent = 10
	}
}

// Inputs is everything one status round is built from.
type Inputs struct {
	Facts   board.Facts
	IP      net.IP // InternalIP; nil if none was found
	Runtime string // runc version, "" when runc is missing
	// Unhealthy lists modules that are not healthy; a non-empty list makes
	// the node NotReady.
	Unhealthy []string
}

// conditionState is one condition's status, reason and message before
// the times are stamped.
type conditionState struct{ typ, status, reason, message string }

// BuildStatus returns the node status for in at now. prev is the status
// sent before (nil at first); a condition keeps its lastTransitionTime
// while its status stays the same.
func BuildStatus(cfg Config, in Inputs, prev *NodeStatus, now time.Time) NodeStatus {
	f := in.Facts
	mem := f.Memory.Total
	capacity := ResourceList{
		"cpu":    strconv.Itoa(f.CPUs),
		"memory": kib(mem),
		"pods":   strconv.Itoa(cfg.MaxPods),
	}
	alloc := ResourceList{
		"cpu":    milli(max(f.CPUs*1000-cfg.ReservedCPU, 0)),
		"memory": kib(mem - min(mem, cfg.ReservedMemory)),
		"pods":   strconv.Itoa(cfg.MaxPods),
	}
	if f.Disk.Total > 0 {
		capacity["ephemeral-storage"] = kib(f.Disk.Total)
		alloc["ephemeral-storage"] = kib(f.Disk.Total)
	}
	st := NodeStatus{
		Capacity:    capacity,
		Allocatable: alloc,
		// The v0.3 edge reports phase Running (KubeEdge v0.3.0 edge/pkg/edged/edged_status.go).
		Phase:           "Running",
		DaemonEndpoints: &NodeDaemonEndpoints{KubeletEndpoint: DaemonEndpoint{Port: cfg.KubeletPort}},
		NodeInfo: NodeSystemInfo{
			MachineID:               f.MachineID,
			SystemUUID:              f.MachineID,
			BootID:                  f.BootID,
			KernelVersion:           f.Uname.Release,
			OSImage:                 f.OSImage,
			ContainerRuntimeVersion: runtimeVersion(in.Runtime),
			KubeletVersion:          cfg.KubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            f.Arch,
		},
	}
	// Addresses are [InternalIP, Hostname], as the edge sends them.
	if in.IP != nil {
		st.Addresses = append(st.Addresses, NodeAddress{Type: "InternalIP", Address: in.IP.String()})
	}
	st.Addresses = append(st.Addresses, NodeAddress{Type: "Hostname", Address: cmpOr(cfg.NodeName, f.Hostname)})
	stamp := now.UTC().Format(timeFormat)
	conds := conditions(cfg.Thresholds, in)
	st.Conditions = make([]NodeCondition, 0, len(conds))
	for _, c := range conds {
		nc := NodeCondition{Type: c.typ, Status: c.status, Reason: c.reason, Message: c.message,
			LastHeartbeatTime: stamp, LastTransitionTime: stamp}
		if p := findCondition(prev, c.typ); p != nil && p.Status == c.status {
			nc.LastTransitionTime = p.LastTransitionTime
		}
		st.Conditions = append(st.Conditions, nc)
	}
	return st
}

// conditions evaluates the four node conditions in the kubelet's order.
// They are an array, compared whole by statusKey.
func conditions(t Thresholds, in Inputs) (c [4]conditionState) {
	f := in.Facts
	if f.Memory.Available < t.MemoryAvailable {
		c[0] = conditionState{CondMemoryPressure, condTrue, "EdgeHasInsufficientMemory",
			fmt.Sprintf("available memory %s is below %s", kib(f.Memory.Available), kib(t.MemoryAvailable))}
	} else {
		c[0] = conditionState{CondMemoryPressure, condFalse, "EdgeHasSufficientMemory", "edge has sufficient memory available"}
	}
	diskLow := f.Disk.Total > 0 && f.Disk.Free*100 < f.Disk.Total*uint64(t.DiskFreePercent)
	inodesLow := f.Disk.Inodes > 0 && f.Disk.InodesFree*100 < f.Disk.Inodes*uint64(t.InodesFreePercent)
	switch {
	case diskLow:
		c[1] = conditionState{CondDiskPressure, condTrue, "EdgeHasDiskPressure",
			fmt.Sprintf("data dir has %s free of %s, below %d%%", kib(f.Disk.Free), kib(f.Disk.Total), t.DiskFreePercent)}
	case inodesLow:
		c[1] = conditionState{CondDiskPressure, condTrue, "EdgeHasDiskPressure",
			fmt.Sprintf("data dir has %d inodes free of %d, below %d%%", f.Disk.InodesFree, f.Disk.Inodes, t.InodesFreePercent)}
	default:
		c[1] = conditionState{CondDiskPressure, condFalse, "EdgeHasNoDiskPressure", "edge has no disk pressure"}
	}
	if f.PIDMax > 0 && (f.PIDMax-f.Tasks)*100 < f.PIDMax*t.PIDsFreePercent {
		c[2] = conditionState{CondPIDPressure, condTrue, "EdgeHasInsufficientPID",
			fmt.Sprintf("%d of %d process ids in use", f.Tasks, f.PIDMax)}
	} else {
		c[2] = conditionState{CondPIDPressure, condFalse, "EdgeHasSufficientPID", "edge has sufficient PID available"}
	}
	// Ready with reason EdgeReady / EdgeNotReady (KubeEdge v0.3.0 edge/pkg/edged/edged_status.go
	// setNodeReadyCondition).
	switch {
	case in.Runtime == "":
		c[3] = conditionState{CondReady, condFalse, "EdgeNotReady", "container runtime (runc) is not available"}
	case len(in.Unhealthy) > 0:
		c[3] = conditionState{CondReady, condFalse, "EdgeNotReady", fmt.Sprintf("modules not healthy: %v", in.Unhealthy)}
	default:
		c[3] = conditionState{CondReady, condTrue, "EdgeReady", "edge is posting ready status"}
	}
	return c
}

// statusKey is everything BuildStatus makes a status of, but the time and
// the previous status: two rounds with equal keys build statuses that
// differ only in their heartbeat times (sameStatus). The status round
// compares keys to leave a status it would not send unbuilt: an idle
// node's facts change (free memory, tasks) but its status does not, and
// building it made 2 KiB of garbage every 10 s.
type statusKey struct {
	cpus              int
	memory, disk      uint64 // capacity
	ip                netip.Addr
	machineID, bootID string
	kernel, osImage   string
	arch, hostname    string
	runtime           string
	conditions        [4]conditionState
}

// keyOf returns in's statusKey under cfg.
func keyOf(cfg Config, in Inputs) statusKey {
	f := in.Facts
	ip, _ := netip.AddrFromSlice(in.IP)
	return statusKey{cpus: f.CPUs, memory: f.Memory.Total, disk: f.Disk.Total, ip: ip,
		machineID: f.MachineID, bootID: f.BootID, kernel: f.Uname.Release, osImage: f.OSImage,
		arch: f.Arch, hostname: cmpOr(cfg.NodeName, f.Hostname), runtime: in.Runtime, conditions: conditions(cfg.Thresholds, in)}
}

func findCondition(s *NodeStatus, typ string) *NodeCondition {
	if s == nil {
		return nil
	}
	for i := range s.Conditions {
		if s.Conditions[i].Type == typ {
			return &s.Conditions[i]
		}
	}
	return nil
}

// sameStatus reports whether a and b differ only in heartbeat times.
func sameStatus(a, b *NodeStatus) bool {
	if a == nil || b == nil {
		return false
	}
	if len(a.Conditions) != len(b.Conditions) || len(a.Addresses) != len(b.Addresses) ||
		a.Phase != b.Phase || a.NodeInfo != b.NodeInfo || !sameEndpoints(a.DaemonEndpoints, b.DaemonEndpoints) ||
		!sameList(a.Capacity, b.Capacity) || !sameList(a.Allocatable, b.Allocatable) {
		return false
	}
	for i := range a.Addresses {
		if a.Addresses[i] != b.Addresses[i] {
			return false
		}
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		x.LastHeartbeatTime, y.LastHeartbeatTime = "", ""
		if x != y {
			return false
		}
	}
	return true
}

func sameList(a, b ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func runtimeVersion(v string) string {
	if v == "" {
		return ""
	}
	return "runc://" + v
}

// kib writes bytes as a Kubernetes quantity in Ki, as the kubelet does.
func kib(b uint64) string { return strconv.FormatUint(b>>10, 10) + "Ki" }

// milli writes millicores as a quantity: whole cores plainly, else "m".
func milli(m int) string {
	if m%1000 == 0 {
		return strconv.Itoa(m / 1000)
	}
	return strconv.Itoa(m) + "m"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sameEndpoints(a, b *NodeDaemonEndpoints) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}
