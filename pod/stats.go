package pod

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// usage is one sample of a cgroup or of the node.
type usage struct {
	cpuNanos   uint64 // cumulative CPU time, ns
	workingSet uint64 // memory in use minus inactive file cache, bytes
}

// ctrSample and podSample are what /metrics/resource and /stats/summary
// report for the running containers.
type ctrSample struct {
	name  string
	start time.Time
	u     usage
}

type podSample struct {
	ns, name, uid string
	start         time.Time
	ctrs          []ctrSample
}

// sample reads the node and every running container now. A container
// whose cgroup cannot be read is left out (it may be stopping).
func (r *Runner) sample() (usage, []podSample, time.Time, error) {
	now := time.Now()
	node, err := nodeUsage()
	if err != nil {
		return usage{}, nil, now, err
	}
	r.mu.Lock()
	ws := make([]*worker, 0, len(r.workers))
	for _, w := range r.workers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	var pods []podSample
	for _, w := range ws {
		p := w.snapshot()
		ps := podSample{ns: p.Metadata.Namespace, name: p.Metadata.Name, uid: w.uid}
		ps.start, _ = time.Parse(time.RFC3339, p.Status.StartTime)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil {
				continue
			}
			u, err := cgroupUsage(w.cgroupParent() + "/" + cs.Name)
			if err != nil {
				continue
			}
			start, _ := time.Parse(time.RFC3339, cs.State.Running.StartedAt)
			ps.ctrs = append(ps.ctrs, ctrSample{name: cs.Name, start: start, u: u})
		}
		if len(ps.ctrs) > 0 {
			sort.Slice(ps.ctrs, func(i, j int) bool { return ps.ctrs[i].name < ps.ctrs[j].name })
			pods = append(pods, ps)
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].ns+"/"+pods[i].name < pods[j].ns+"/"+pods[j].name })
	return node, pods, now, nil
}

// serveMetrics is the kubelet's /metrics/resource: the series
// metrics-server reads (metrics-server pkg/scraper/client/resource/decode.go;
// names and help from k8s pkg/kubelet/metrics/collectors/resource_metrics.go),
// in the Prometheus text format.
func (k *kubeletServer) serveMetrics(rw http.ResponseWriter, _ *http.Request) {
	node, pods, now, err := k.r.sample()
	if err != nil {
		textError(rw, http.StatusInternalServerError, "edgenode: "+err.Error())
		return
	}
	rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	writeResourceMetrics(rw, node, pods, now)
}

func writeResourceMetrics(w io.Writer, node usage, pods []podSample, now time.Time) {
	bw := bufio.NewWriter(w)
	ts := now.UnixMilli()
	head := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s [STABLE] %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	each := func(f func(p *podSample, c *ctrSample, labels string)) {
		for i := range pods {
			p := &pods[i]
			for j := range p.ctrs {
				c := &p.ctrs[j]
				f(p, c, fmt.Sprintf(`{container="%s",namespace="%s",pod="%s"}`, escLabel(c.name), escLabel(p.ns), escLabel(p.name)))
			}
		}
	}
	head("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds")
	each(func(_ *podSample, c *ctrSample, l string) {
		fmt.Fprintf(bw, "container_cpu_usage_seconds_total%s %s %d\n", l, seconds(c.u.cpuNanos), ts)
	})
	head("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes")
	each(func(_ *podSample, c *ctrSample, l string) {
		fmt.Fprintf(bw, "container_memory_working_set_bytes%s %d %d\n", l, c.u.workingSet, ts)
	})
	head("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds")
	each(func(_ *podSample, c *ctrSample, l string) {
		if !c.start.IsZero() {
			fmt.Fprintf(bw, "container_start_time_seconds%s %d %d\n", l, c.start.Unix(), ts)
		}
	})
	head("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds")
	fmt.Fprintf(bw, "node_cpu_usage_seconds_total %s %d\n", seconds(node.cpuNanos), ts)
	head("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes")
	fmt.Fprintf(bw, "node_memory_working_set_bytes %d %d\n", node.workingSet, ts)
	fmt.Fprintf(bw, "# HELP scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0\n")
	bw.Flush()
}

func seconds(ns uint64) string { return strconv.FormatFloat(float64(ns)/1e9, 'f', 9, 64) }

// escLabel escapes a Prometheus label value.
func escLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s // the usual label: nothing to escape, nothing allocated
	}
	return labelEscaper.Replace(s)
}

// labelEscaper escapes a Prometheus label value; a Replacer builds its
// tables once, on first use.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// The /stats/summary shapes: the fields of k8s.io/kubelet/pkg/apis/stats/v1alpha1
// that kubectl and metrics-server before v0.6 read (KubeEdge v1.23.1 serves them from its kubelet fork, edged server.go).
type (
	summary struct {
		Node nodeStats  `json:"node"`
		Pods []podStats `json:"pods"`
	}
	nodeStats struct {
		NodeName string    `json:"nodeName"`
		CPU      *cpuStats `json:"cpu,omitempty"`
		Memory   *memStats `json:"memory,omitempty"`
	}
	podStats struct {
		PodRef     podRef     `json:"podRef"`
		StartTime  string     `json:"startTime,omitempty"`
		Containers []ctrStats `json:"containers"`
		CPU        *cpuStats  `json:"cpu,omitempty"`
		Memory     *memStats  `json:"memory,omitempty"`
	}
	podRef struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	}
	ctrStats struct {
		Name      string    `json:"name"`
		StartTime string    `json:"startTime"`
		CPU       *cpuStats `json:"cpu,omitempty"`
		Memory    *memStats `json:"memory,omitempty"`
	}
	cpuStats struct {
		Time                 string  `json:"time"`
		UsageNanoCores       *uint64 `json:"usageNanoCores,omitempty"`
		UsageCoreNanoSeconds uint64  `json:"usageCoreNanoSeconds"`
	}
	memStats struct {
		Time            string `json:"time"`
		WorkingSetBytes uint64 `json:"workingSetBytes"`
	}
)

// cpuPoint is the last CPU sample of a node or container, for the rate.
type cpuPoint struct {
	nanos uint64
	at    time.Time
}

// rate returns the CPU rate in nano-cores since the last summary of key
// and remembers this sample in next; nil on the first.
func (k *kubeletServer) rate(next map[string]cpuPoint, key string, nanos uint64, now time.Time) *uint64 {
	next[key] = cpuPoint{nanos, now}
	prev, ok := k.cpuPrev[key]
	if !ok || !now.After(prev.at) || nanos < prev.nanos {
		return nil
	}
	v := uint64(float64(nanos-prev.nanos) / now.Sub(prev.at).Seconds())
	return &v
}

// serveSummary is the kubelet's /stats/summary with node and container
// CPU and memory. usageNanoCores is the rate since the previous summary,
// so the first answer leaves it out, as the kubelet does before its
// second housekeeping.
func (k *kubeletServer) serveSummary(rw http.ResponseWriter, _ *http.Request) {
	node, pods, now, err := k.r.sample()
	if err != nil {
		textError(rw, http.StatusInternalServerError, "edgenode: "+err.Error())
		return
	}
	t := now.UTC().Format(time.RFC3339)
	k.mu.Lock()
	next := map[string]cpuPoint{} // also forgets containers that are gone
	s := summary{Node: nodeStats{NodeName: k.r.cfg.NodeName,
		CPU:    &cpuStats{Time: t, UsageCoreNanoSeconds: node.cpuNanos, UsageNanoCores: k.rate(next, "", node.cpuNanos, now)},
		Memory: &memStats{Time: t, WorkingSetBytes: node.workingSet}}, Pods: []podStats{}}
	for _, p := range pods {
		ps := podStats{PodRef: podRef{Name: p.name, Namespace: p.ns, UID: p.uid}, Containers: []ctrStats{}}
		if !p.start.IsZero() {
			ps.StartTime = p.start.UTC().Format(time.RFC3339)
		}
		var pc, pm uint64
		for _, c := range p.ctrs {
			cs := ctrStats{Name: c.name, StartTime: c.start.UTC().Format(time.RFC3339),
				CPU:    &cpuStats{Time: t, UsageCoreNanoSeconds: c.u.cpuNanos, UsageNanoCores: k.rate(next, p.uid+"/"+c.name, c.u.cpuNanos, now)},
				Memory: &memStats{Time: t, WorkingSetBytes: c.u.workingSet}}
			pc, pm = pc+c.u.cpuNanos, pm+c.u.workingSet
			ps.Containers = append(ps.Containers, cs)
		}
		ps.CPU = &cpuStats{Time: t, UsageCoreNanoSeconds: pc, UsageNanoCores: k.rate(next, p.uid, pc, now)}
		ps.Memory = &memStats{Time: t, WorkingSetBytes: pm}
		s.Pods = append(s.Pods, ps)
	}
	k.cpuPrev = next
	k.mu.Unlock()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		textError(rw, http.StatusInternalServerError, "edgenode: "+err.Error())
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Write(append(b, '\n'))
}

// statValue returns the number after key in a "key value" per line file
// (cpu.stat, memory.stat); ok is false when the key is missing.
func statValue(b []byte, key string) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		f := bytes.Fields(line)
		if len(f) >= 2 && string(f[0]) == key {
			v, err := strconv.ParseUint(string(f[1]), 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// procCPU parses the "cpu" line of /proc/stat: busy time (user, nice,
// system, irq, softirq, steal) in ns; /proc counts in USER_HZ, 100 on
// every Linux architecture.
func procCPU(b []byte) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		f := strings.Fields(string(line))
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		var ticks uint64
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return 0, false
			}
			ticks += v
		}
		return ticks * (1e9 / 100), true
	}
	return 0, false
}

// memWorkingSet parses /proc/meminfo: MemTotal minus MemAvailable, in
// bytes (the node's memory that cannot be reclaimed at once).
func memWorkingSet(b []byte) (uint64, bool) {
	total, ok1 := statValue(bytes.ReplaceAll(b, []byte(":"), []byte(" ")), "MemTotal")
	avail, ok2 := statValue(bytes.ReplaceAll(b, []byte(":"), []byte(" ")), "MemAvailable")
	if !ok1 || !ok2 || avail > total {
		return 0, false
	}
	return (total - avail) * 1024, true
}
