package pod

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"edgenode/pod/image"
)

// containerEnv builds the environment: the image's, then envFrom, then env
// (later wins), with $(VAR) references to earlier variables expanded as
// the kubelet does ($$ escapes). HOSTNAME is the pod's name.
func containerEnv(ctx context.Context, p *Pod, c *Container, img image.RunConfig, objs objects, hf hostFacts) ([]string, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range img.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	set("HOSTNAME", hostnameOf(p))
	ns := p.Metadata.Namespace
	for _, ef := range c.EnvFrom {
		var data map[string][]byte
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := objs.configMap(ctx, ns, ef.ConfigMapRef.Name)
			if err != nil {
				return nil, fmt.Errorf("envFrom configmap %q: %w", ef.ConfigMapRef.Name, err)
			}
			data = cmData(cm)
		case ef.SecretRef != nil:
			s, err := objs.secret(ctx, ns, ef.SecretRef.Name)
			if err != nil {
				return nil, fmt.Errorf("envFrom secret %q: %w", ef.SecretRef.Name, err)
			}
			data = secretData(s)
		}
		for k, v := range data {
			set(ef.Prefix+k, string(v))
		}
	}
	for _, e := range c.Env {
		v := e.Value
		if vf := e.ValueFrom; vf != nil {
			var err error
			var ok bool
			switch {
			case vf.FieldRef != nil:
				v, err = fieldValue(p, vf.FieldRef.FieldPath, hf)
				ok = true
			case vf.ResourceFieldRef != nil:
				v, err = resourceValue(p, c.Name, vf.ResourceFieldRef)
				ok = true
			case vf.ConfigMapKeyRef != nil:
				v, ok, err = keyRef(vf.ConfigMapKeyRef, func(n string) (map[string][]byte, error) {
					cm, err := objs.configMap(ctx, ns, n)
					if err != nil {
						return nil, err
					}
					return cmData(cm), nil
				})
			case vf.SecretKeyRef != nil:
				v, ok, err = keyRef(vf.SecretKeyRef, func(n string) (map[string][]byte, error) {
					s, err := objs.secret(ctx, ns, n)
					if err != nil {
						return nil, err
					}
					return secretData(s), nil
				})
			}
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			if !ok {
				continue // optional and missing
			}
		} else {
			v = expandVars(v, vals)
		}
		set(e.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func keyRef(ks *KeySelector, get func(string) (map[string][]byte, error)) (string, bool, error) {
	optional := ks.Optional != nil && *ks.Optional
	data, err := get(ks.Name)
	if err != nil {
		if optional && errors.Is(err, ErrNotFound) {
			return "", false, nil
		}
		return "", false, err
	}
	v, ok := data[ks.Key]
	if !ok {
		if optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: %s has no key %q", ErrNotFound, ks.Name, ks.Key)
	}
	return string(v), true, nil
}

// expandVars replaces $(NAME) with its value when NAME is defined; $$
// gives a literal $; other text stays.
func expandVars(s string, vals map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vals[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// expandArgs applies $(VAR) expansion to command and args.
func expandArgs(args, env []string) []string {
	vals := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expandVars(a, vals)
	}
	return out
}

func hostnameOf(p *Pod) string {
	h := p.Spec.Hostname
	if h == "" {
		h = p.Metadata.Name
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}
