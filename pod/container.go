package pod

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"edgenode/pod/image"
)

// annConfigSource marks static pods, as the kubelet does.
const annConfigSource = "kubernetes.io/config.source"

// prepare makes what all containers of the pod share: namespaces, volumes,
// and /etc/hosts, /etc/hostname, /etc/resolv.conf.
func (w *worker) prepare(ctx context.Context, p *Pod) error {
	if err := os.MkdirAll(filepath.Join(w.dir, "logs"), 0o700); err != nil {
		return err
	}
	if w.nsPaths == nil {
		ns, fresh, err := podNamespaces(filepath.Join(w.dir, "ns"), hostnameOf(p), !p.Spec.HostNetwork, !p.Spec.HostIPC)
		if err != nil {
			return err
		}
		if p.Spec.HostNetwork {
			delete(ns, "uts") // hostNetwork pods see the node's hostname
		}
		w.nsPaths = ns
		if !p.Spec.HostNetwork {
			if err := w.networkUp(ctx, p, fresh); err != nil {
				releaseNamespaces(filepath.Join(w.dir, "ns"))
				w.nsPaths = nil
				return err
			}
		}
	}
	vols, err := prepareVolumes(ctx, p, w.dir, w.objects(), w.facts())
	if err != nil {
		return err
	}
	w.vols = vols
	etc := filepath.Join(w.dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	host := hostnameOf(p)
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if ip := w.r.cfg.HostIP; ip != "" && p.Spec.HostNetwork {
		hosts += ip + "\t" + host + "\n"
	} else {
		hosts += "127.0.1.1\t" + host + "\n"
	}
	for _, a := range p.Spec.HostAliases {
		hosts += a.IP + "\t" + strings.Join(a.Hostnames, " ") + "\n"
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolv = nil
	}
	files := map[string][]byte{"hosts": []byte(hosts), "hostname": []byte(host + "\n"), "resolv.conf": resolv}
	w.etcMounts = w.etcMounts[:0]
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(etc, n), b, 0o644); err != nil {
			return err
		}
		w.etcMounts = append(w.etcMounts, ociMount{Destination: "/etc/" + n, Type: "bind",
			Source: filepath.Join(etc, n), Options: []string{"rbind", "rprivate", "rw"}})
	}
	w.prepared = true
	return nil
}

func (w *worker) objects() objects { return projectedObjects{w.r, w} }

func (w *worker) facts() hostFacts {
	return hostFacts{nodeName: w.r.cfg.NodeName, hostIP: w.r.cfg.HostIP}
}

// projectedObjects serves the runner's objects; a missing token falls back
// to the one written before, so a pod restarts with no cloud (autonomy).
type projectedObjects struct {
	r *Runner
	w *worker
}

func (o projectedObjects) configMap(ctx context.Context, ns, name string) (*ConfigMap, error) {
	return o.r.configMap(ctx, ns, name)
}

func (o projectedObjects) secret(ctx context.Context, ns, name string) (*Secret, error) {
	return o.r.secret(ctx, ns, name)
}

func (o projectedObjects) token(ctx context.Context, p *Pod, aud string, exp int64) (string, error) {
	tok, err := o.r.token(ctx, p, aud, exp)
	if err == nil {
		return tok, nil
	}
	for _, v := range p.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken == nil {
				continue
			}
			if b, rerr := os.ReadFile(filepath.Join(o.w.dir, "volumes", v.Name, s.ServiceAccountToken.Path)); rerr == nil {
				return string(b), nil
			}
		}
	}
	o.r.log.Warn("service account token unavailable: empty token", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "err", err)
	return "", nil
}

// start creates and starts one container. Failures leave it waiting with
// a reason and back-off; they never end the worker.
func (w *worker) start(ctx context.Context, p *Pod, st *ctr) {
	fail := func(reason string, err error) {
		st.waiting = &ContainerStateWaiting{Reason: reason, Message: err.Error()}
		if st.backoff == 0 {
			st.backoff = w.r.cfg.BackoffBase
		} else {
			st.backoff = min(2*st.backoff, w.r.cfg.BackoffMax)
		}
		st.nextStart = time.Now().Add(st.backoff)
		w.wakeAt(st.nextStart)
		w.r.log.Warn("container not started", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name,
			"container", st.spec.Name, "reason", reason, "err", err)
	}
	c := &st.spec
	st.image = c.Image
	img, err := w.image(ctx, p, c)
	if err != nil {
		reason := "ErrImagePull"
		if errors.Is(err, ErrImageNotFound) && c.ImagePullPolicy == PullNever {
			reason = "ErrImageNeverPull"
		} else if st.waiting != nil && (st.waiting.Reason == "ErrImagePull" || st.waiting.Reason == "ImagePullBackOff") {
			reason = "ImagePullBackOff"
		}
		fail(reason, err)
		return
	}
	st.imageID = img.ID
	env, err := containerEnv(ctx, p, c, img.Config, w.objects(), w.facts())
	if err != nil {
		fail("CreateContainerConfigError", err)
		return
	}
	bdir := filepath.Join(w.dir, "containers", c.Name)
	if w.r.rt.exists(st.id) {
		_ = w.r.rt.remove(ctx, st.id)
	}
	rootfs, err := mountRootfs(w.r.images.Rootfs(img.ID), bdir)
	if err != nil {
		fail("CreateContainerError", err)
		return
	}
	mounts, err := w.mounts(c)
	if err != nil {
		fail("CreateContainerConfigError", err)
		return
	}
	cc := *c
	cc.Command, cc.Args = expandArgs(c.Command, env), expandArgs(c.Args, env)
	now := time.Now()
	spec, err := buildSpec(bundleInput{
		pod: p, c: &cc, img: img, rootfs: rootfs, env: env, mounts: mounts, nsPaths: w.nsPaths, seccompDir: w.r.cfg.SeccompDir,
		cgroup: w.cgroupParent() + "/" + c.Name,
		annotate: map[string]string{
			annPodUID: w.uid, annPodName: p.Metadata.Name, annPodNS: p.Metadata.Namespace,
			annContainer: c.Name, annStarted: fmtTime(now), annRestarts: strconv.Itoa(int(st.restarts)),
			annImageID: img.ID, annPodsDir: w.r.cfg.podsDir(), annLogFormat: "cri",
		},
	})
	if err != nil {
		fail("CreateContainerConfigError", err)
		return
	}
	b, _ := json.MarshalIndent(spec, "", " ")
	// Written on every start, so no fsync: after a power loss it is
	// written again.
	if err := os.WriteFile(filepath.Join(bdir, "config.json"), b, 0o600); err != nil {
		fail("CreateContainerError", err)
		return
	}
	outw, errw, err := w.output(c.Name).begin(w.r.ctx)
	if err != nil {
		fail("CreateContainerError", err)
		return
	}
	var in *os.File
	if c.Stdin {
		in, err = w.output(c.Name).stdinEnd()
		if err != nil {
			outw.Close()
			errw.Close()
			fail("CreateContainerError", err)
			return
		}
	}
	pid, err := w.r.rt.run(ctx, st.id, bdir, in, outw, errw)
	outw.Close()
	errw.Close()
	if in != nil {
		in.Close()
	}
	if err != nil {
		_ = w.r.rt.remove(context.Background(), st.id)
		fail("RunContainerError", err)
		return
	}
	w.r.images.Touch(img.ID)
	st.pid, st.running, st.adopted = pid, true, false
	st.startedAt, st.waiting = now, nil
	st.started = c.StartupProbe == nil
	st.ready = c.ReadinessProbe == nil && st.started
	st.live, st.readyP, st.startP = probeState{}, probeState{}, probeState{}
	w.watch(st)
	if c.StartupProbe != nil || c.LivenessProbe != nil || c.ReadinessProbe != nil {
		w.wakeAt(now) // the next sync schedules the probes
	}
	w.r.log.Info("container started", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "container", c.Name, "pid", pid)
}

// image finds or pulls the container's image per imagePullPolicy. With
// Always, a failed pull falls back to a stored image: an edge node without
// its registry keeps running what it has.
func (w *worker) image(ctx context.Context, p *Pod, c *Container) (image.Image, error) {
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = PullIfNotPresent
		if r, err := name.ParseReference(c.Image); err == nil {
			if t, ok := r.(name.Tag); ok && t.TagStr() == "latest" {
				policy = PullAlways
			}
		}
	}
	local, have := w.r.images.Lookup(c.Image)
	switch policy {
	case PullNever:
		if !have {
			return image.Image{}, fmt.Errorf("%w: %s (imagePullPolicy Never)", ErrImageNotFound, c.Image)
		}
		return local, nil
	case PullIfNotPresent:
		if have {
			return local, nil
		}
	}
	img, err := w.r.images.Pull(ctx, c.Image, w.pullAuths(ctx, p, c.Image))
	if err != nil {
		if have {
			w.r.log.Warn("pull failed, using the stored image", "image", c.Image, "err", err)
			return local, nil
		}
		return image.Image{}, err
	}
	return img, nil
}

// pullAuths reads the registry credentials of the pod's imagePullSecrets
// (kubernetes.io/dockerconfigjson or the older dockercfg) for the image's
// registry.
func (w *worker) pullAuths(ctx context.Context, p *Pod, image string) []authn.AuthConfig {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil
	}
	host := ref.Context().RegistryStr()
	var out []authn.AuthConfig
	for _, ps := range p.Spec.ImagePullSecrets {
		s, err := w.r.secret(ctx, p.Metadata.Namespace, ps.Name)
		if err != nil {
			w.r.log.Warn("imagePullSecret unavailable", "secret", ps.Name, "err", err)
			continue
		}
		out = append(out, dockerAuths(s, host)...)
	}
	return out
}

func dockerAuths(s *Secret, host string) []authn.AuthConfig {
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	var auths map[string]entry
	if b, ok := s.Data[".dockerconfigjson"]; ok {
		var cfg struct {
			Auths map[string]entry `json:"auths"`
		}
		if json.Unmarshal(b, &cfg) == nil {
			auths = cfg.Auths
		}
	} else if b, ok := s.Data[".dockercfg"]; ok {
		_ = json.Unmarshal(b, &auths)
	}
	var out []authn.AuthConfig
	for k, e := range auths {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
		k, _, _ = strings.Cut(k, "/")
		if k != host && !(host == name.DefaultRegistry && k == "docker.io") {
			continue
		}
		a := authn.AuthConfig{Username: e.Username, Password: e.Password}
		if e.Auth != "" && a.Username == "" {
			if b, err := base64.StdEncoding.DecodeString(e.Auth); err == nil {
				a.Username, a.Password, _ = strings.Cut(string(b), ":")
			}
		}
		out = append(out, a)
	}
	return out
}

// mounts returns the container's volume mounts plus the pod's /etc files.
func (w *worker) mounts(c *Container) ([]ociMount, error) {
	out := make([]ociMount, 0, len(c.VolumeMounts)+len(w.etcMounts))
	out = append(out, w.etcMounts...)
	for _, m := range c.VolumeMounts {
		src, ok := w.vols[m.Name]
		if !ok {
			return nil, fmt.Errorf("%w: no volume %q", ErrBadSpec, m.Name)
		}
		if m.SubPath != "" {
			src = filepath.Join(src, filepath.FromSlash(m.SubPath))
			if _, err := os.Stat(src); err != nil {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, err
				}
			}
		}
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		out = append(out, ociMount{Destination: m.MountPath, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", opt}})
	}
	return out, nil
}

// cgroupParent is the pod's cgroup, below the edgenode cgroup.
func (w *worker) cgroupParent() string { return "/edgenode/pod" + w.uid }

// grace is the time a container gets between SIGTERM and SIGKILL.
func grace(p *Pod) time.Duration {
	if g := p.Metadata.DeletionGrace; g != nil && *g >= 0 {
		return time.Duration(*g) * time.Second
	}
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil && *g >= 0 {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// teardown deletes the pod's files once its containers have stopped. It
// is short and finishes even when edgenode is stopping.
func (w *worker) teardown(ctx context.Context, p *Pod) {
	ctx = context.WithoutCancel(ctx)
	// Containers of this pod runc knows that the table does not (adopted
	// but renamed, or left from a crash).
	if states, err := w.r.rt.list(ctx); err == nil {
		for _, s := range states {
			if s.Annotations[annPodUID] == w.uid && w.r.owns(s) {
				_ = w.r.rt.remove(ctx, s.ID)
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(w.dir, "containers"))
	for _, e := range ents {
		unmountRootfs(filepath.Join(w.dir, "containers", e.Name()))
	}
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.Medium == "Memory" {
			unmountAll(filepath.Join(w.dir, "volumes", v.Name))
		}
	}
	if !p.Spec.HostNetwork {
		w.networkDown(ctx, p)
	}
	removePodCgroups(w.cgroupParent())
	releaseNamespaces(filepath.Join(w.dir, "ns"))
	if err := os.RemoveAll(w.dir); err != nil {
		w.r.log.Warn("pod dir not removed", "pod", w.uid, "err", err)
	}
	w.r.log.Info("pod deleted", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name)
}
