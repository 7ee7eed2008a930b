package pod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// objects gives the configmaps, secrets and service-account tokens a pod's
// volumes and environment refer to. The runner answers from its cache and
// asks meta for what it lacks (docs/protocol.md 6 "ConfigMap / Secret messages", 9).
type objects interface {
	configMap(ctx context.Context, ns, name string) (*ConfigMap, error)
	secret(ctx context.Context, ns, name string) (*Secret, error)
	token(ctx context.Context, p *Pod, audience string, expSeconds int64) (string, error)
}

// hostFacts are the node facts the downward API and /etc/hosts use.
type hostFacts struct {
	nodeName string
	hostIP   string
}

// prepareVolumes makes every volume of p ready under dir/volumes and
// returns the host path of each by name.
func prepareVolumes(ctx context.Context, p *Pod, dir string, objs objects, hf hostFacts) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range p.Spec.Volumes {
		vd := filepath.Join(dir, "volumes", v.Name)
		var err error
		switch {
		case v.HostPath != nil:
			err = hostPath(v.HostPath)
			vd = v.HostPath.Path
		case v.EmptyDir != nil:
			err = makeEmptyDir(vd, v.EmptyDir)
		default:
			var files map[string]fileData
			files, err = volumeFiles(ctx, p, &v, objs, hf)
			if err == nil {
				err = writeAtomicDir(vd, files)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		out[v.Name] = vd
	}
	return out, nil
}

func hostPath(h *HostPathVolumeSource) error {
	fi, err := os.Stat(h.Path)
	switch h.Type {
	case "", "Unset":
		return nil
	case "DirectoryOrCreate":
		if err != nil {
			return os.MkdirAll(h.Path, 0o755)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", h.Path)
		}
	case "FileOrCreate":
		if err != nil {
			if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	case "Directory":
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("%s: no such directory", h.Path)
		}
	case "File":
		if err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: no such file", h.Path)
		}
	case "Socket", "CharDevice", "BlockDevice":
		if err != nil {
			return fmt.Errorf("%s: %w", h.Path, err)
		}
	default:
		return fmt.Errorf("hostPath type %q is unknown", h.Type)
	}
	return nil
}

func makeEmptyDir(dir string, e *EmptyDirVolumeSource) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	if e.Medium == "Memory" && !isMountPoint(dir) {
		var size int64
		if e.SizeLimit != "" {
			q, _ := ParseQuantity(e.SizeLimit)
			size = q / 1000
		}
		return mountTmpfs(dir, size)
	}
	return nil
}

func isMountPoint(dir string) bool {
	a, err1 := os.Stat(dir)
	b, err2 := os.Stat(filepath.Dir(dir))
	if err1 != nil || err2 != nil {
		return false
	}
	return !os.SameFile(a, b) && devOf(a) != devOf(b)
}

type fileData struct {
	data []byte
	mode fs.FileMode
}

// volumeFiles computes the files of a configMap, secret, downwardAPI or
// projected volume.
func volumeFiles(ctx context.Context, p *Pod, v *Volume, objs objects, hf hostFacts) (map[string]fileData, error) {
	files := map[string]fileData{}
	mode := func(def *int32, fallback fs.FileMode) fs.FileMode {
		if def != nil {
			return fs.FileMode(*def) & 0o777
		}
		return fallback
	}
	addKeys := func(data map[string][]byte, items []KeyToPath, m fs.FileMode, what string) error {
		if len(items) == 0 {
			for k, d := range data {
				files[k] = fileData{d, m}
			}
			return nil
		}
		for _, it := range items {
			d, ok := data[it.Key]
			if !ok {
				return fmt.Errorf("%s has no key %q", what, it.Key)
			}
			files[it.Path] = fileData{d, mode(it.Mode, m)}
		}
		return nil
	}
	addCM := func(s *ConfigMapVolumeSource, m fs.FileMode) error {
		cm, err := objs.configMap(ctx, p.Metadata.Namespace, s.Name)
		if err != nil {
			if s.Optional != nil && *s.Optional && errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		return addKeys(cmData(cm), s.Items, mode(s.DefaultMode, m), "configmap "+s.Name)
	}
	addSecret := func(s *SecretVolumeSource, m fs.FileMode) error {
		sec, err := objs.secret(ctx, p.Metadata.Namespace, s.SecretName)
		if err != nil {
			if s.Optional != nil && *s.Optional && errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		return addKeys(secretData(sec), s.Items, mode(s.DefaultMode, m), "secret "+s.SecretName)
	}
	addDown := func(s *DownwardAPIVolumeSource, m fs.FileMode) error {
		for _, it := range s.Items {
			var val string
			var err error
			switch {
			case it.FieldRef != nil:
				val, err = fieldValue(p, it.FieldRef.FieldPath, hf)
			case it.ResourceFieldRef != nil:
				val, err = resourceValue(p, "", it.ResourceFieldRef)
			default:
				err = fmt.Errorf("downwardAPI item %q has no source", it.Path)
			}
			if err != nil {
				return err
			}
			files[it.Path] = fileData{[]byte(val), mode(it.Mode, m)}
		}
		return nil
	}
	switch {
	case v.ConfigMap != nil:
		return files, addCM(v.ConfigMap, 0o644)
	case v.Secret != nil:
		return files, addSecret(v.Secret, 0o644)
	case v.DownwardAPI != nil:
		return files, addDown(v.DownwardAPI, mode(v.DownwardAPI.DefaultMode, 0o644))
	case v.Projected != nil:
		m := mode(v.Projected.DefaultMode, 0o644)
		for _, s := range v.Projected.Sources {
			var err error
			switch {
			case s.ConfigMap != nil:
				err = addCM(s.ConfigMap, m)
			case s.Secret != nil:
				err = addSecret(s.Secret, m)
			case s.DownwardAPI != nil:
				err = addDown(s.DownwardAPI, m)
			case s.ServiceAccountToken != nil:
				// docs/protocol.md 9: the token comes from a serviceaccounttoken query.
				exp := int64(3607)
				if s.ServiceAccountToken.ExpirationSeconds != nil {
					exp = *s.ServiceAccountToken.ExpirationSeconds
				}
				var tok string
				tok, err = objs.token(ctx, p, s.ServiceAccountToken.Audience, exp)
				files[s.ServiceAccountToken.Path] = fileData{[]byte(tok), m}
			}
			if err != nil {
				return nil, err
			}
		}
		return files, nil
	}
	return nil, fmt.Errorf("no source")
}

func cmData(cm *ConfigMap) map[string][]byte {
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	copyBytes(out, cm.BinaryData)
	return out
}

func secretData(s *Secret) map[string][]byte {
	out := make(map[string][]byte, len(s.Data)+len(s.StringData))
	copyBytes(out, s.Data)
	for k, v := range s.StringData {
		out[k] = []byte(v)
	}
	return out
}

func copyBytes(dst, src map[string][]byte) {
	for k, v := range src {
		dst[k] = v
	}
}

// writeAtomicDir publishes files in dir the way the kubelet does, so a
// running container sees an update all at once: the files live in a fresh
// ..<timestamp> directory, ..data points at it, and each top-level name is
// a symlink through ..data. The swap of ..data is a rename.
func writeAtomicDir(dir string, files map[string]fileData) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := filepath.Join(dir, ".."+strconv.FormatInt(time.Now().UnixNano(), 10))
	for name, f := range files {
		if !validRelPath(name) {
			return fmt.Errorf("%w: key path %q", ErrBadSpec, name)
		}
		p := filepath.Join(ts, filepath.FromSlash(path.Clean(name)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(ts, 0o755); err != nil {
		return err
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	tops := map[string]bool{}
	for name := range files {
		tops[strings.Split(path.Clean(name), "/")[0]] = true
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "..") {
			continue
		}
		if !tops[n] {
			_ = os.RemoveAll(filepath.Join(dir, n))
		}
	}
	for t := range tops {
		link := filepath.Join(dir, t)
		if dst, err := os.Readlink(link); err == nil && dst == "..data/"+t {
			continue
		}
		_ = os.RemoveAll(link)
		if err := os.Symlink("..data/"+t, link); err != nil {
			return err
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// fieldValue answers a downward API fieldRef.
func fieldValue(p *Pod, fp string, hf hostFacts) (string, error) {
	m := p.Metadata
	switch fp {
	case "metadata.name":
		return m.Name, nil
	case "metadata.namespace":
		return m.Namespace, nil
	case "metadata.uid":
		return m.UID, nil
	case "metadata.labels":
		return formatMap(m.Labels), nil
	case "metadata.annotations":
		return formatMap(m.Annotations), nil
	case "spec.nodeName":
		return hf.nodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.podIP":
		return hf.hostIP, nil
	}
	for _, pre := range []string{"metadata.labels['", "metadata.annotations['"} {
		if strings.HasPrefix(fp, pre) && strings.HasSuffix(fp, "']") {
			k := strings.TrimSuffix(strings.TrimPrefix(fp, pre), "']")
			if strings.HasPrefix(pre, "metadata.labels") {
				return m.Labels[k], nil
			}
			return m.Annotations[k], nil
		}
	}
	return "", fmt.Errorf("%w: fieldPath %q is not supported", ErrBadSpec, fp)
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.String()
}

// resourceValue answers a resourceFieldRef (limits.cpu, limits.memory, ...).
func resourceValue(p *Pod, self string, r *ResourceFieldSelector) (string, error) {
	name := r.ContainerName
	if name == "" {
		name = self
	}
	for _, c := range append(append([]Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name != name {
			continue
		}
		kind, res, _ := strings.Cut(r.Resource, ".")
		src := c.Resources.Limits
		if kind == "requests" {
			src = c.Resources.Requests
		}
		q, ok := src[res]
		if !ok {
			return "0", nil
		}
		v, err := ParseQuantity(q)
		if err != nil {
			return "", err
		}
		div := int64(1000)
		if r.Divisor != "" {
			if div, err = ParseQuantity(r.Divisor); err != nil || div == 0 {
				return "", fmt.Errorf("%w: divisor %q", ErrBadSpec, r.Divisor)
			}
		}
		return strconv.FormatInt((v+div-1)/div, 10), nil
	}
	return "", fmt.Errorf("%w: resourceFieldRef: no container %q", ErrBadSpec, name)
}

// copyTree copies a root filesystem (files, dirs, symlinks, modes, owners).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(t, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			_ = os.Remove(t)
			if err := os.Symlink(l, t); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			out, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
			if err != nil {
				in.Close()
				return err
			}
			_, err = io.Copy(out, in)
			in.Close()
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Chmod(t, fi.Mode()); err != nil {
				return err
			}
		default:
			return nil
		}
		if uid, gid, ok := ownerOf(fi); ok && os.Geteuid() == 0 {
			_ = os.Lchown(t, uid, gid)
		}
		return nil
	})
}
