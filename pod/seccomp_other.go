//go:build !linux

package pod

import "github.com/opencontainers/runtime-spec/specs-go"

// seccompProfile: seccomp is Linux's; elsewhere a profile other than
// Unconfined cannot be had.
func seccompProfile(in bundleInput, _ []string) (*specs.LinuxSeccomp, error) {
	kind, _, err := seccompChoice(in)
	if err != nil || kind == seccompUnconfined {
		return nil, err
	}
	return nil, errNotLinux
}
