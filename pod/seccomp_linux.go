package pod

import (
	"fmt"
	"os"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// seccompProfile returns the seccomp filter of a container that is not
// privileged (containerd v2.0.0 internal/cri/server/
// container_create_linux.go gives privileged ones none), or nil for none.
// RuntimeDefault is Docker's and containerd's default profile, taken from
// github.com/moby/profiles/seccomp rather than written here, fitted to the
// container's bounding capabilities, this build's architecture and the
// kernel, as containerd does. Localhost profiles are files in Docker's
// format under Config.SeccompDir.
func seccompProfile(in bundleInput, bounding []string) (*specs.LinuxSeccomp, error) {
	kind, file, err := seccompChoice(in)
	if err != nil || kind == seccompUnconfined {
		return nil, err
	}
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: bounding}}}
	if kind == seccompRuntimeDefault {
		p, err := seccomp.GetDefaultProfile(rs)
		if err != nil {
			return nil, fmt.Errorf("pod: container %q: default seccomp profile: %w", in.c.Name, err)
		}
		return p, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: container %q: seccomp profile: %w", ErrBadSpec, in.c.Name, err)
	}
	p, err := seccomp.LoadProfile(string(b), rs)
	if err != nil {
		return nil, fmt.Errorf("%w: container %q: seccomp profile %s: %w", ErrBadSpec, in.c.Name, file, err)
	}
	return p, nil
}
