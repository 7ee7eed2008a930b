package pod

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
)

// Restart policies and pull policies of v1.PodSpec and v1.Container.
const (
	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
	RestartNever     = "Never"

	PullAlways       = "Always"
	PullIfNotPresent = "IfNotPresent"
	PullNever        = "Never"
)

// MaxSpecSize bounds the bytes DecodePod accepts (etcd's object limit is
// 1.5 MB; a pod spec is far smaller).
const MaxSpecSize = 1 << 20

// UnmarshalJSON decodes a volume and records the names of sources edgenode
// does not serve in Other.
func (v *Volume) UnmarshalJSON(b []byte) error {
	type plain Volume
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return err
	}
	for k := range keys {
		switch k {
		case "name", "hostPath", "emptyDir", "secret", "configMap", "downwardAPI", "projected":
		default:
			p.Other = append(p.Other, k)
		}
	}
	*v = Volume(p)
	return nil
}

// DecodePod decodes a v1.Pod from JSON and checks what edgenode needs to run
// it. The error wraps ErrBadSpec and names the field at fault.
func DecodePod(data []byte) (*Pod, error) {
	if len(data) > MaxSpecSize {
		return nil, fmt.Errorf("%w: %d bytes is over %d", ErrBadSpec, len(data), MaxSpecSize)
	}
	var p Pod
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSpec, err)
	}
	if p.Metadata.Namespace == "" {
		p.Metadata.Namespace = "default"
	}
	if err := p.validate(); err != nil {
		return &p, err
	}
	return &p, nil
}

// validate reports every problem of the spec at once.
func (p *Pod) validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrBadSpec, field, fmt.Sprintf(format, a...)))
	}
	m := p.Metadata
	if !validName(m.Name) {
		bad("metadata.name", "%q is not a DNS subdomain", m.Name)
	}
	if !validLabel(m.Namespace) {
		bad("metadata.namespace", "%q is not a DNS label", m.Namespace)
	}
	if m.UID != "" && !validUID(m.UID) {
		bad("metadata.uid", "%q has characters other than [0-9a-zA-Z-]", m.UID)
	}
	switch p.Spec.RestartPolicy {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		bad("spec.restartPolicy", "%q is not Always, OnFailure or Never", p.Spec.RestartPolicy)
	}
	if len(p.Spec.Containers) == 0 {
		bad("spec.containers", "at least one container is required")
	}
	vols := map[string]bool{}
	for i, v := range p.Spec.Volumes {
		f := fmt.Sprintf("spec.volumes[%d]", i)
		if !validLabel(v.Name) {
			bad(f+".name", "%q is not a DNS label", v.Name)
		}
		if vols[v.Name] {
			bad(f+".name", "%q is used twice", v.Name)
		}
		vols[v.Name] = true
		if n := v.sources(); n != 1 {
			bad(f, "has %d sources, want exactly one", n)
		}
		if len(v.Other) > 0 {
			bad(f, "source %q is not supported on this node", strings.Join(v.Other, ","))
		}
		if v.HostPath != nil && !path.IsAbs(v.HostPath.Path) {
			bad(f+".hostPath.path", "%q is not absolute", v.HostPath.Path)
		}
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != "" {
			if _, err := ParseQuantity(v.EmptyDir.SizeLimit); err != nil {
				bad(f+".emptyDir.sizeLimit", "%v", err)
			}
		}
		for _, it := range v.items() {
			if !validRelPath(it) {
				bad(f, "item path %q must be relative without '..'", it)
			}
		}
	}
	names := map[string]bool{}
	check := func(kind string, cs []Container) {
		for i, c := range cs {
			f := fmt.Sprintf("spec.%s[%d]", kind, i)
			if !validLabel(c.Name) {
				bad(f+".name", "%q is not a DNS label", c.Name)
			}
			if names[c.Name] {
				bad(f+".name", "%q is used twice", c.Name)
			}
			names[c.Name] = true
			if c.Image == "" {
				bad(f+".image", "empty")
			}
			switch c.ImagePullPolicy {
			case "", PullAlways, PullIfNotPresent, PullNever:
			default:
				bad(f+".imagePullPolicy", "%q is not Always, IfNotPresent or Never", c.ImagePullPolicy)
			}
			for k, q := range c.Resources.Limits {
				if err := checkResource(k, q); err != nil {
					bad(f+".resources.limits."+k, "%v", err)
				}
			}
			for k, q := range c.Resources.Requests {
				if err := checkResource(k, q); err != nil {
					bad(f+".resources.requests."+k, "%v", err)
				}
			}
			for j, vm := range c.VolumeMounts {
				g := fmt.Sprintf("%s.volumeMounts[%d]", f, j)
				if !vols[vm.Name] {
					bad(g+".name", "no volume %q in spec.volumes", vm.Name)
				}
				if !path.IsAbs(vm.MountPath) {
					bad(g+".mountPath", "%q is not absolute", vm.MountPath)
				}
				if vm.SubPath != "" && !validRelPath(vm.SubPath) {
					bad(g+".subPath", "%q must be relative without '..'", vm.SubPath)
				}
			}
			for j, e := range c.Env {
				if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") {
					bad(fmt.Sprintf("%s.env[%d].name", f, j), "%q is not a valid name", e.Name)
				}
			}
			for _, pr := range []*Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if pr == nil {
					continue
				}
				n := 0
				for _, set := range []bool{pr.Exec != nil, pr.HTTPGet != nil, pr.TCPSocket != nil} {
					if set {
						n++
					}
				}
				if n != 1 {
					bad(f, "a probe needs exactly one of exec, httpGet, tcpSocket")
				}
				if pr.HTTPGet != nil {
					if _, err := c.resolvePort(pr.HTTPGet.Port); err != nil {
						bad(f+".httpGet.port", "%v", err)
					}
				}
				if pr.TCPSocket != nil {
					if _, err := c.resolvePort(pr.TCPSocket.Port); err != nil {
						bad(f+".tcpSocket.port", "%v", err)
					}
				}
			}
		}
	}
	check("initContainers", p.Spec.InitContainers)
	check("containers", p.Spec.Containers)
	return errors.Join(errs...)
}

func (v *Volume) sources() int {
	n := len(v.Other)
	for _, set := range []bool{v.HostPath != nil, v.EmptyDir != nil, v.Secret != nil, v.ConfigMap != nil, v.DownwardAPI != nil, v.Projected != nil} {
		if set {
			n++
		}
	}
	return n
}

// items lists the relative paths a volume writes.
func (v *Volume) items() []string {
	var out []string
	add := func(s *SecretVolumeSource, c *ConfigMapVolumeSource, d *DownwardAPIVolumeSource, t *ServiceAccountTokenProjection) {
		if s != nil {
			for _, it := range s.Items {
				out = append(out, it.Path)
			}
		}
		if c != nil {
			for _, it := range c.Items {
				out = append(out, it.Path)
			}
		}
		if d != nil {
			for _, it := range d.Items {
				out = append(out, it.Path)
			}
		}
		if t != nil {
			out = append(out, t.Path)
		}
	}
	add(v.Secret, v.ConfigMap, v.DownwardAPI, nil)
	if v.Projected != nil {
		for _, s := range v.Projected.Sources {
			add(s.Secret, s.ConfigMap, s.DownwardAPI, s.ServiceAccountToken)
		}
	}
	return out
}

// resolvePort reads an IntOrString port: a number, or the name of one of
// the container's ports.
func (c *Container) resolvePort(raw json.RawMessage) (int, error) {
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		if n < 1 || n > 65535 {
			return 0, fmt.Errorf("%d is out of range", n)
		}
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("%s is neither a number nor a name", raw)
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65536 {
		return n, nil
	}
	for _, p := range c.Ports {
		if p.Name == s && p.ContainerPort > 0 && p.ContainerPort < 65536 {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", s)
}

func checkResource(name, q string) error {
	v, err := ParseQuantity(q)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", q)
	}
	return nil
}

// ParseQuantity reads a Kubernetes resource quantity ("500m", "1.5",
// "128Mi", "1G", "2e3") and returns its value in thousandths, so that cpu
// "500m" is 500 and memory "1Ki" is 1024000. Values that overflow are an
// error.
func ParseQuantity(s string) (int64, error) {
	if s == "" || len(s) > 64 {
		return 0, fmt.Errorf("quantity %q: %w", s, ErrBadQuantity)
	}
	num := s
	mult := 1.0
	suffixes := []struct {
		s string
		m float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
		{"n", 1e-9}, {"u", 1e-6}, {"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
	}
	for _, sf := range suffixes {
		if strings.HasSuffix(s, sf.s) {
			num, mult = strings.TrimSuffix(s, sf.s), sf.m
			break
		}
	}
	for _, r := range num {
		if !(r >= '0' && r <= '9' || r == '.' || r == '+' || r == '-' || r == 'e' || r == 'E') {
			return 0, fmt.Errorf("quantity %q: %w", s, ErrBadQuantity)
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("quantity %q: %w", s, ErrBadQuantity)
	}
	v := math.Ceil(f * mult * 1000)
	if v > math.MaxInt64/2 || v < math.MinInt64/2 {
		return 0, fmt.Errorf("quantity %q: too large: %w", s, ErrBadQuantity)
	}
	return int64(v), nil
}

// validName: a DNS-1123 subdomain (metadata.name).
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !validLabel(part) {
			return false
		}
	}
	return true
}

// validLabel: a DNS-1123 label (namespaces, container and volume names).
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validUID(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// validRelPath: relative, no "..", no empty result.
func validRelPath(p string) bool {
	if p == "" || path.IsAbs(p) || strings.ContainsRune(p, 0) {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return false
		}
	}
	return path.Clean(p) != "."
}
