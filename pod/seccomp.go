package pod

import (
	"fmt"
	"path/filepath"
)

// Seccomp profile types of v1.SeccompProfile.
const (
	seccompRuntimeDefault = "RuntimeDefault"
	seccompLocalhost      = "Localhost"
	seccompUnconfined     = "Unconfined"
)

// seccompChoice is the profile a container asks for: its own, else its
// pod's, else none (Unconfined, the kubelet's default without
// --seccomp-default). For Localhost, file is the profile's path under dir.
func seccompChoice(in bundleInput) (kind, file string, err error) {
	var p *SeccompProfile
	if sc := in.c.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		p = sc.SeccompProfile
	} else if psc := in.pod.Spec.SecurityContext; psc != nil {
		p = psc.SeccompProfile
	}
	if p == nil {
		return seccompUnconfined, "", nil
	}
	switch p.Type {
	case seccompUnconfined, seccompRuntimeDefault:
		return p.Type, "", nil
	case seccompLocalhost:
		if p.LocalhostProfile == nil || !filepath.IsLocal(*p.LocalhostProfile) {
			return "", "", fmt.Errorf("%w: container %q: seccompProfile Localhost needs a localhostProfile path inside the profile dir", ErrBadSpec, in.c.Name)
		}
		return p.Type, filepath.Join(in.seccompDir, *p.LocalhostProfile), nil
	}
	return "", "", fmt.Errorf("%w: container %q: seccompProfile type %q is not RuntimeDefault, Localhost or Unconfined", ErrBadSpec, in.c.Name, p.Type)
}
