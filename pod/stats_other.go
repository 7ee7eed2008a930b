//go:build !linux

package pod

import "errors"

var errNoStats = errors.New("pod: stats: only on Linux")

func nodeUsage() (usage, error) { return usage{}, errNoStats }

func cgroupUsage(string) (usage, error) { return usage{}, errNoStats }
