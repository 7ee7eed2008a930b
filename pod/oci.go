package pod

import "github.com/opencontainers/runtime-spec/specs-go"

// The OCI runtime spec (config.json, runtime-spec v1.0.2), trimmed to the
// fields edgenode writes. Own structs keep the dependency list short.

type ociSpec struct {
	OCIVersion  string            `json:"ociVersion"`
	Process     *ociProcess       `json:"process"`
	Root        *ociRoot          `json:"root"`
	Hostname    string            `json:"hostname,omitempty"`
	Mounts      []ociMount        `json:"mounts"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *ociLinux         `json:"linux"`
}

type ociProcess struct {
	Terminal        bool             `json:"terminal"`
	User            ociUser          `json:"user"`
	Args            []string         `json:"args"`
	Env             []string         `json:"env,omitempty"`
	Cwd             string           `json:"cwd"`
	Capabilities    *ociCapabilities `json:"capabilities,omitempty"`
	Rlimits         []ociRlimit      `json:"rlimits,omitempty"`
	NoNewPrivileges bool             `json:"noNewPrivileges,omitempty"`
	OOMScoreAdj     *int             `json:"oomScoreAdj,omitempty"`
}

type ociUser struct {
	UID            uint32   `json:"uid"`
	GID            uint32   `json:"gid"`
	AdditionalGids []uint32 `json:"additionalGids,omitempty"`
}

type ociCapabilities struct {
	Bounding    []string `json:"bounding"`
	Effective   []string `json:"effective"`
	Permitted   []string `json:"permitted"`
	Inheritable []string `json:"inheritable,omitempty"`
	Ambient     []string `json:"ambient,omitempty"`
}

type ociRlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

type ociRoot struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly,omitempty"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type,omitempty"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

type ociLinux struct {
	Resources     *ociResources  `json:"resources,omitempty"`
	CgroupsPath   string         `json:"cgroupsPath,omitempty"`
	Namespaces    []ociNamespace `json:"namespaces"`
	MaskedPaths   []string       `json:"maskedPaths,omitempty"`
	ReadonlyPaths []string       `json:"readonlyPaths,omitempty"`
	// Seccomp is the runtime-spec type itself: its profile comes from
	// github.com/moby/profiles/seccomp in that type, and runc reads it.
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
}

type ociNamespace struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

type ociResources struct {
	Devices []ociDeviceRule `json:"devices,omitempty"`
	Memory  *ociMemory      `json:"memory,omitempty"`
	CPU     *ociCPU         `json:"cpu,omitempty"`
	Pids    *ociPids        `json:"pids,omitempty"`
}

type ociDeviceRule struct {
	Allow  bool   `json:"allow"`
	Access string `json:"access,omitempty"`
}

type ociMemory struct {
	Limit *int64 `json:"limit,omitempty"`
	Swap  *int64 `json:"swap,omitempty"`
}

type ociCPU struct {
	Shares *uint64 `json:"shares,omitempty"`
	Quota  *int64  `json:"quota,omitempty"`
	Period *uint64 `json:"period,omitempty"`
}

type ociPids struct {
	Limit int64 `json:"limit"`
}

// ociState is the output of `runc state` and one entry of `runc list -f json`.
type ociState struct {
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"` // creating, created, running, paused, stopped
	Bundle      string            `json:"bundle"`
	Created     string            `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
}
