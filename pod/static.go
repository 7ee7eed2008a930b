package pod

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// loadStatic runs the pods of the manifests folder: each *.yaml, *.yml or
// *.json file holds one pod. They run with no cloud at all; as with the
// kubelet, the name gets "-<nodeName>" appended and the uid is derived
// from the file's content, so an edited manifest replaces its pod.
func (r *Runner) loadStatic() {
	ents, err := os.ReadDir(r.cfg.ManifestsDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("manifests folder unreadable", "dir", r.cfg.ManifestsDir, "err", err)
		}
		return
	}
	want := map[string]bool{}
	for _, e := range ents {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.cfg.ManifestsDir, e.Name()))
		if err != nil {
			r.log.Warn("static pod unreadable", "file", e.Name(), "err", err)
			continue
		}
		p, err := StaticPod(b, r.cfg.NodeName)
		if p == nil {
			r.log.Warn("static pod invalid", "file", e.Name(), "err", err)
			continue
		}
		if err != nil {
			r.log.Warn("static pod cannot run", "file", e.Name(), "err", err)
		}
		want[p.Metadata.UID] = true
		r.upsert(p, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for uid, w := range r.workers {
		if w.static && !want[uid] {
			w.remove(nil)
		}
	}
}

// StaticPod decodes a manifest (YAML or JSON) into a static pod.
func StaticPod(b []byte, nodeName string) (*Pod, error) {
	js := b
	if t := strings.TrimSpace(string(b)); !strings.HasPrefix(t, "{") {
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("%w: yaml: %v", ErrBadSpec, err)
		}
		var err error
		if js, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("%w: yaml: %v", ErrBadSpec, err)
		}
	}
	p, err := DecodePod(js)
	if p == nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	p.Metadata.UID = "static-" + hex.EncodeToString(sum[:12])
	if nodeName != "" && p.Metadata.Name != "" {
		p.Metadata.Name += "-" + nodeName
	}
	if p.Metadata.Annotations == nil {
		p.Metadata.Annotations = map[string]string{}
	}
	p.Metadata.Annotations[annConfigSource] = "file"
	p.Spec.NodeName = nodeName
	if err == nil {
		err = p.validate()
	}
	return p, err
}
