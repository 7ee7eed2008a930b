package pod

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"edgenode/bus"
)

// Defaults of Config.
const (
	DefaultRuntimeRoot  = "/run/edgenode/runc"
	DefaultImagesDir    = "/etc/edgenode/images"
	DefaultManifestsDir = "/etc/edgenode/manifests"
	// DefaultSeccompDir holds the Localhost seccomp profiles, as
	// <kubelet root>/seccomp does for the kubelet.
	DefaultSeccompDir     = "/etc/edgenode/seccomp"
	DefaultStatusInterval = 10 * time.Second // v0.3, docs/protocol.md 2.5: at most every 10 s per pod
	// DefaultSyncInterval is the safety resync of each pod. The kubelet's
	// PLEG relists every second (Kubernetes v1.32 pkg/kubelet/kubelet.go
	// genericPlegRelistPeriod); here exits, spec changes, probes and
	// back-offs wake a pod's worker themselves (see worker), so the
	// resync only checks the log sizes and bounds how long a missed event
	// could go unseen.
	DefaultSyncInterval  = time.Minute
	DefaultBackoffBase   = 10 * time.Second // docs/protocol.md 6: backoff 10 s ...
	DefaultBackoffMax    = 300 * time.Second
	DefaultLogMaxSize    = 10 << 20
	DefaultLogMaxFiles   = 2
	DefaultQueryTimeout  = 10 * time.Second
	DefaultGCHighPercent = 80 // docs/protocol.md 6: image-gc-high-threshold
	DefaultGCLowPercent  = 40 // docs/protocol.md 6: image-gc-low-threshold
	DefaultCNIConfDir    = "/etc/cni/net.d"
)

// Config configures the pod module. Zero fields take the defaults.
type Config struct {
	// DataDir is edgenode's data dir; images live in DataDir/images, pods
	// in DataDir/pods. Required.
	DataDir string `yaml:"-"`
	// NodeName is this node's name (downward API spec.nodeName).
	NodeName string `yaml:"-"`
	// Era selects the status message shape: podstatus (v0.3) or podpatch
	// (v1.23) (docs/protocol.md 2.5).
	Era bus.Era `yaml:"-"`

	// Runtime is the OCI runtime binary, a path or a name on PATH. Default runc.
	Runtime string `yaml:"runtime"`
	// RuntimeRoot is the runtime's state dir. Default /run/edgenode/runc.
	RuntimeRoot string `yaml:"runtimeRoot"`
	// ImagesDir holds image archives (*.tar) imported read-only at start.
	ImagesDir string `yaml:"imagesDir"`
	// ManifestsDir holds static pod manifests (YAML or JSON).
	ManifestsDir string `yaml:"manifestsDir"`
	// Platform of the images to run, os/arch[/variant]; default this build's.
	Platform string `yaml:"platform"`
	// InsecureRegistries lets pulls use plain http.
	InsecureRegistries bool `yaml:"insecureRegistries"`
	// Namespace of the pod list query at start (docs/protocol.md 6). Default "default".
	Namespace string `yaml:"namespace"`
	// HostIP is reported as status.hostIP; empty leaves it out.
	HostIP string `yaml:"hostIP"`
	// StatusInterval is the least time between two status messages of one
	// pod. Default 10 s for v0.3, none (every change goes out) for v1.23.
	StatusInterval time.Duration `yaml:"statusInterval"`
	// SyncInterval is the safety resync period of each pod: container
	// exits, spec changes, probes and restart back-offs wake a pod when
	// they happen, so an idle pod syncs only this often. Default 1 min.
	SyncInterval time.Duration `yaml:"syncInterval"`
	// BackoffBase and BackoffMax bound the restart back-off (10 s doubling
	// to 300 s).
	BackoffBase time.Duration `yaml:"backoffBase"`
	BackoffMax  time.Duration `yaml:"backoffMax"`
	// LogMaxSize is the size at which a container log is rotated;
	// LogMaxFiles how many rotated files are kept.
	LogMaxSize  int64 `yaml:"logMaxSize"`
	LogMaxFiles int   `yaml:"logMaxFiles"`
	// QueryTimeout bounds a configmap/secret/token query to meta.
	QueryTimeout time.Duration `yaml:"queryTimeout"`
	// GCHighPercent: disk use above which unused images are removed, down
	// to GCLowPercent.
	GCHighPercent int `yaml:"gcHighPercent"`
	GCLowPercent  int `yaml:"gcLowPercent"`
	// CNIConfDir holds the CNI network configuration (first .conflist,
	// .conf or .json by name); none means pods get loopback only.
	CNIConfDir string `yaml:"cniConfDir"`
	// CNIBinDirs are searched for CNI plugins.
	CNIBinDirs []string `yaml:"cniBinDirs"`
	// SeccompDir holds the seccomp profiles (Docker's JSON format) that
	// pods name with seccompProfile type Localhost.
	SeccompDir string `yaml:"seccompDir"`
}

// Defaults returns c with zero fields filled.
func (c Config) Defaults() Config {
	if c.Runtime == "" {
		c.Runtime = "runc"
	}
	if c.RuntimeRoot == "" {
		c.RuntimeRoot = DefaultRuntimeRoot
	}
	if c.ImagesDir == "" {
		c.ImagesDir = DefaultImagesDir
	}
	if c.ManifestsDir == "" {
		c.ManifestsDir = DefaultManifestsDir
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	// v0.3's status manager sent a pod's status at most every 10 s. The
	// v1.23 edged is the kubelet, whose status manager sends a change at
	// once (KubeEdge v1.23.1 vendors k8s.io/kubernetes pkg/kubelet/status):
	// a pod shows Running in kubectl as soon as it runs.
	if c.StatusInterval == 0 && c.Era == bus.EraV03 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.LogMaxSize == 0 {
		c.LogMaxSize = DefaultLogMaxSize
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = DefaultLogMaxFiles
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.GCHighPercent == 0 {
		c.GCHighPercent = DefaultGCHighPercent
	}
	if c.GCLowPercent == 0 {
		c.GCLowPercent = DefaultGCLowPercent
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = DefaultCNIConfDir
	}
	if c.SeccompDir == "" {
		c.SeccompDir = DefaultSeccompDir
	}
	if len(c.CNIBinDirs) == 0 {
		c.CNIBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}
	}
	return c
}

func (c *Config) podsDir() string   { return filepath.Join(c.DataDir, "pods") }
func (c *Config) imagesDir() string { return filepath.Join(c.DataDir, "images") }

// PodsDir returns where pod bundles, volumes and logs live for dataDir.
func PodsDir(dataDir string) string { return filepath.Join(dataDir, "pods") }

// ImagesStoreDir returns the image store dir for dataDir.
func ImagesStoreDir(dataDir string) string { return filepath.Join(dataDir, "images") }

// Validate returns every problem of the section, each naming its key.
func (c Config) Validate() []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("pod.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	for key, p := range map[string]string{"runtimeRoot": c.RuntimeRoot, "imagesDir": c.ImagesDir, "manifestsDir": c.ManifestsDir, "seccompDir": c.SeccompDir} {
		if p != "" && !filepath.IsAbs(p) {
			bad(key, "%q must be an absolute path", p)
		}
	}
	if c.Platform != "" {
		if _, err := v1.ParsePlatform(c.Platform); err != nil || !strings.Contains(c.Platform, "/") {
			bad("platform", "%q is not os/arch[/variant]", c.Platform)
		}
	}
	if c.HostIP != "" && net.ParseIP(c.HostIP) == nil {
		bad("hostIP", "%q is not an IP address", c.HostIP)
	}
	for key, d := range map[string]time.Duration{"statusInterval": c.StatusInterval, "syncInterval": c.SyncInterval,
		"backoffBase": c.BackoffBase, "backoffMax": c.BackoffMax, "queryTimeout": c.QueryTimeout} {
		if d < 0 {
			bad(key, "%s is negative", d)
		}
	}
	if c.BackoffMax != 0 && c.BackoffBase > c.BackoffMax {
		bad("backoffBase", "%s is above backoffMax %s", c.BackoffBase, c.BackoffMax)
	}
	if c.LogMaxSize != 0 && c.LogMaxSize < 4096 {
		bad("logMaxSize", "%d is below 4096 bytes", c.LogMaxSize)
	}
	if c.LogMaxFiles < 0 || c.LogMaxFiles > 9 {
		bad("logMaxFiles", "%d is not 1..9", c.LogMaxFiles)
	}
	if c.GCHighPercent < 0 || c.GCHighPercent > 100 || c.GCLowPercent < 0 || c.GCLowPercent > 100 {
		bad("gcHighPercent", "percentages must be 0..100")
	} else if c.GCHighPercent != 0 && c.GCLowPercent != 0 && c.GCLowPercent >= c.GCHighPercent {
		bad("gcLowPercent", "%d must be below gcHighPercent %d", c.GCLowPercent, c.GCHighPercent)
	}
	return errs
}

// firstIPv4 returns the first non-loopback IPv4 address of an interface
// that is up, for status.hostIP when none is configured.
func firstIPv4() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return ""
}
