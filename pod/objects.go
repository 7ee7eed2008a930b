package pod

import (
	"context"
	"encoding/json"
	"fmt"

	"edgenode/bus"
)

// configMap answers from the cache, else asks meta (docs/protocol.md 6: missing
// objects are fetched synchronously with a query through MetaManager).
func (r *Runner) configMap(ctx context.Context, ns, name string) (*ConfigMap, error) {
	r.mu.Lock()
	cm := r.cms[ns+"/"+name]
	r.mu.Unlock()
	if cm != nil {
		return cm, nil
	}
	var out ConfigMap
	if err := r.query(ctx, ns, bus.KindConfigMap, name, nil, &out); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.cms[ns+"/"+name] = &out
	r.mu.Unlock()
	return &out, nil
}

func (r *Runner) secret(ctx context.Context, ns, name string) (*Secret, error) {
	r.mu.Lock()
	s := r.secrets[ns+"/"+name]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	var out Secret
	if err := r.query(ctx, ns, bus.KindSecret, name, nil, &out); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.secrets[ns+"/"+name] = &out
	r.mu.Unlock()
	return &out, nil
}

// tokenRequest is authentication/v1 TokenRequest, trimmed.
type tokenRequest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name,omitempty"`
		Namespace string `json:"namespace,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Audiences         []string `json:"audiences"`
		ExpirationSeconds *int64   `json:"expirationSeconds,omitempty"`
		BoundObjectRef    *struct {
			Kind       string `json:"kind"`
			APIVersion string `json:"apiVersion"`
			Name       string `json:"name"`
			UID        string `json:"uid"`
		} `json:"boundObjectRef,omitempty"`
	} `json:"spec"`
	Status struct {
		Token string `json:"token"`
	} `json:"status"`
}

// token asks for a service-account token bound to p: a
// <ns>/serviceaccounttoken/<serviceaccount> query (docs/protocol.md 9).
func (r *Runner) token(ctx context.Context, p *Pod, audience string, exp int64) (string, error) {
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	var tr tokenRequest
	tr.APIVersion, tr.Kind = "authentication.k8s.io/v1", "TokenRequest"
	tr.Metadata.Name, tr.Metadata.Namespace = sa, p.Metadata.Namespace
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	tr.Spec.ExpirationSeconds = &exp
	tr.Spec.BoundObjectRef = &struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Name       string `json:"name"`
		UID        string `json:"uid"`
	}{"Pod", "v1", p.Metadata.Name, p.Metadata.UID}
	body, _ := json.Marshal(&tr)
	var out tokenRequest
	if err := r.query(ctx, p.Metadata.Namespace, bus.KindServiceAccountToken, sa, body, &out); err != nil {
		return "", err
	}
	if out.Status.Token == "" {
		return "", fmt.Errorf("%w: empty token for %s/%s", ErrNotFound, p.Metadata.Namespace, sa)
	}
	return out.Status.Token, nil
}

// query sends a query to meta and decodes the answer into out. Meta answers
// a local hit with a JSON array of JSON strings (docs/protocol.md 3.2), a remote one
// with the object or {"Object":...,"Err":...} (docs/protocol.md 2.5); an empty array or
// an error operation means not found.
func (r *Runner) query(ctx context.Context, ns string, kind bus.Kind, name string, body []byte, out any) error {
	if r.b == nil || !r.b.Has(bus.ModuleMeta) {
		return fmt.Errorf("%w: %s/%s/%s: no meta module", ErrNotFound, ns, kind, name)
	}
	if body == nil {
		body = []byte("null")
	}
	m := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, bus.ResourcePath(ns, kind, name), body)
	resp, err := r.b.SendSync(ctx, bus.ModuleMeta, m, r.cfg.QueryTimeout)
	if err != nil {
		return fmt.Errorf("%w: %s/%s/%s: %v", ErrNotFound, ns, kind, name, err)
	}
	if resp.Route.Operation == bus.OpError {
		s, _ := bus.ContentString(resp.Content)
		return fmt.Errorf("%w: %s/%s/%s: %s", ErrNotFound, ns, kind, name, s)
	}
	return decodeAnswer(resp.Content, out)
}

func decodeAnswer(content []byte, out any) error {
	var arr []json.RawMessage
	if json.Unmarshal(content, &arr) == nil {
		if len(arr) == 0 {
			return fmt.Errorf("%w: empty answer", ErrNotFound)
		}
		content = arr[0]
	}
	if s, ok := bus.ContentString(content); ok {
		content = []byte(s)
	}
	var wrapped struct {
		Object json.RawMessage `json:"Object"`
		Err    json.RawMessage `json:"Err"`
	}
	if json.Unmarshal(content, &wrapped) == nil && len(wrapped.Object) > 0 && string(wrapped.Object) != "null" {
		content = wrapped.Object
	} else if len(wrapped.Err) > 0 && string(wrapped.Err) != "null" {
		return fmt.Errorf("%w: %s", ErrNotFound, wrapped.Err)
	}
	if err := json.Unmarshal(content, out); err != nil {
		return fmt.Errorf("%w: answer: %v", ErrNotFound, err)
	}
	return nil
}
