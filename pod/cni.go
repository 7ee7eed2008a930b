package pod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"edgenode/internal/durable"
)

// CNI: when a network configuration is installed (e.g. bridge + host-local
// + portmap from the distribution's containernetworking-plugins, with a
// conflist in /etc/cni/net.d), each non-host pod's network namespace is
// attached with it: ADD at prepare, DEL at teardown, per the CNI spec
// (github.com/containernetworking/cni SPEC.md: environment CNI_COMMAND,
// CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH, CNI_ARGS; the network
// config on stdin; chained plugins get prevResult). Without a config a pod
// has loopback only.

// cniList is a loaded network configuration list.
type cniList struct {
	Name       string            `json:"name"`
	CNIVersion string            `json:"cniVersion"`
	Plugins    []json.RawMessage `json:"plugins"`
}

// cniResult is the part of a CNI result edgenode reads.
type cniResult struct {
	IPs []struct {
		Address string `json:"address"`
	} `json:"ips"`
	IP4 *struct {
		IP string `json:"ip"`
	} `json:"ip4"` // CNI 0.2
}

// podIP returns the first address of the result, without its prefix length.
func (r *cniResult) podIP() string {
	a := ""
	switch {
	case len(r.IPs) > 0:
		a = r.IPs[0].Address
	case r.IP4 != nil:
		a = r.IP4.IP
	}
	ip, _, _ := strings.Cut(a, "/")
	return ip
}

// loadCNI returns the first configuration (by file name) of dir: a
// .conflist, or a single-plugin .conf/.json. None gives nil.
func loadCNI(dir string) (*cniList, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("pod: cni: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		switch filepath.Ext(n) {
		case ".conflist":
			var l cniList
			if err := json.Unmarshal(b, &l); err != nil || len(l.Plugins) == 0 {
				return nil, fmt.Errorf("pod: cni: %s: not a network list", n)
			}
			return &l, nil
		case ".conf", ".json":
			var one struct {
				Name       string `json:"name"`
				CNIVersion string `json:"cniVersion"`
			}
			if err := json.Unmarshal(b, &one); err != nil {
				return nil, fmt.Errorf("pod: cni: %s: %w", n, err)
			}
			return &cniList{Name: one.Name, CNIVersion: one.CNIVersion, Plugins: []json.RawMessage{b}}, nil
		}
	}
	return nil, nil
}

// cniPortMapping is the runtimeConfig.portMappings entry of the portmap
// plugin (CONVENTIONS.md).
type cniPortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// cniAttach runs the list's plugins in order with command ADD, or DEL in
// reverse order, and returns the final result of ADD.
func (r *Runner) cniAttach(ctx context.Context, l *cniList, cmd string, p *Pod, netns string, prev json.RawMessage) (json.RawMessage, error) {
	var ports []cniPortMapping
	for _, c := range p.Spec.Containers {
		for _, pt := range c.Ports {
			if pt.HostPort > 0 {
				proto := strings.ToLower(pt.Protocol)
				if proto == "" {
					proto = "tcp"
				}
				ports = append(ports, cniPortMapping{HostPort: pt.HostPort, ContainerPort: pt.ContainerPort, Protocol: proto, HostIP: pt.HostIP})
			}
		}
	}
	order := make([]int, len(l.Plugins))
	for i := range order {
		order[i] = i
		if cmd == "DEL" {
			order[i] = len(l.Plugins) - 1 - i
		}
	}
	result := prev
	for _, i := range order {
		var conf map[string]any
		if err := json.Unmarshal(l.Plugins[i], &conf); err != nil {
			return nil, fmt.Errorf("pod: cni: plugin %d: %w", i, err)
		}
		typ, _ := conf["type"].(string)
		if typ == "" || strings.ContainsAny(typ, "/\\") {
			return nil, fmt.Errorf("pod: cni: plugin %d: bad type %q", i, typ)
		}
		conf["name"], conf["cniVersion"] = l.Name, l.CNIVersion
		if len(result) > 0 {
			conf["prevResult"] = json.RawMessage(result)
		}
		if caps, ok := conf["capabilities"].(map[string]any); ok && caps["portMappings"] == true && len(ports) > 0 {
			conf["runtimeConfig"] = map[string]any{"portMappings": ports}
		}
		stdin, _ := json.Marshal(conf)
		bin, err := r.cniPlugin(typ)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c := exec.CommandContext(cctx, bin)
		c.Stdin = bytes.NewReader(stdin)
		c.Env = []string{
			"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + p.Metadata.UID, "CNI_NETNS=" + netns,
			"CNI_IFNAME=eth0", "CNI_PATH=" + strings.Join(r.cfg.CNIBinDirs, ":"),
			"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=" + p.Metadata.Namespace + ";K8S_POD_NAME=" + p.Metadata.Name +
				";K8S_POD_INFRA_CONTAINER_ID=" + p.Metadata.UID + ";K8S_POD_UID=" + p.Metadata.UID,
			"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		}
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err = runWait(c)
		cancel()
		if err != nil {
			msg := strings.TrimSpace(out.String() + " " + errb.String())
			var e struct {
				Msg     string `json:"msg"`
				Details string `json:"details"`
			}
			if json.Unmarshal(out.Bytes(), &e) == nil && e.Msg != "" {
				msg = e.Msg + " " + e.Details
			}
			return nil, fmt.Errorf("pod: cni %s %s: %s", cmd, typ, strings.TrimSpace(msg))
		}
		if cmd == "ADD" {
			result = bytes.TrimSpace(out.Bytes())
		}
	}
	return result, nil
}

func (r *Runner) cniPlugin(typ string) (string, error) {
	for _, d := range r.cfg.CNIBinDirs {
		p := filepath.Join(d, typ)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("pod: cni: plugin %q not found in %v", typ, r.cfg.CNIBinDirs)
}

// networkUp attaches the pod's fresh network namespace with CNI, caching
// the result in cni.json (for DEL and for the pod IP after a restart).
// After a reboot the old attachment is deleted first, best effort.
func (w *worker) networkUp(ctx context.Context, p *Pod, fresh bool) error {
	l, err := loadCNI(w.r.cfg.CNIConfDir)
	if err != nil || l == nil {
		return err
	}
	cache := filepath.Join(w.dir, "cni.json")
	old, _ := os.ReadFile(cache)
	if !fresh && len(old) > 0 {
		w.setPodIP(old)
		return nil
	}
	if len(old) > 0 {
		_, _ = w.r.cniAttach(ctx, l, "DEL", p, w.nsPaths["network"], old)
	}
	res, err := w.r.cniAttach(ctx, l, "ADD", p, w.nsPaths["network"], nil)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(cache, res, 0o600); err != nil {
		return err
	}
	w.setPodIP(res)
	return nil
}

// networkDown runs DEL with the cached result.
func (w *worker) networkDown(ctx context.Context, p *Pod) {
	old, err := os.ReadFile(filepath.Join(w.dir, "cni.json"))
	if err != nil {
		return
	}
	l, err := loadCNI(w.r.cfg.CNIConfDir)
	if err != nil || l == nil {
		return
	}
	if _, err := w.r.cniAttach(ctx, l, "DEL", p, filepath.Join(w.dir, "ns", "net"), old); err != nil {
		w.r.log.Warn("cni del", "pod", p.Metadata.Name, "err", err)
	}
}

func (w *worker) setPodIP(res []byte) {
	var r cniResult
	if json.Unmarshal(res, &r) == nil {
		w.podIP = r.podIP()
	}
}
