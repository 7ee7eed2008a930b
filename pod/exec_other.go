//go:build !linux

package pod

import "context"

func (r *ociRuntime) execStream(context.Context, string, []string, stdio, string) (int, error) {
	return -1, errNotLinux
}
