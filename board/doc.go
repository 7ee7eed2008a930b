// Package board knows the host edgenode runs on and reports it as a
// Kubernetes node.
//
// What it owns:
//   - Facts: CPU count and model (including the BCM2835 /proc/cpuinfo format
//     of ARMv6 boards), memory, architecture with ARM variant, kernel, OS
//     image, machine and boot ids, hostname, the node's addresses and the
//     free space of the data dir. The parsers take an io.Reader or an fs.FS so
//     tests feed them files captured on real boards (testdata/).
//   - Node status (spec 2.5, 6): a v1.NodeStatus with capacity, allocatable,
//     conditions and nodeInfo, sent through MetaManager to the cloud in the
//     shape of the configured era: a nodestatus update every 10 s (v0.3), or
//     a node insert followed by nodepatch and lease messages (v1.23, spec 9).
//   - Health: a Registry where modules report liveness, and a Watchdog that
//     keeps /dev/watchdog alive while every module is healthy.
//   - Start-up checks for a read-only root: CheckDataDir and the preflight
//     checks behind `edgenode check`.
//
// What flows in: responses from MetaManager to the module's sync requests,
// and the hub's connection events: a new link starts a round at once, so
// the node is registered (or found registered) and Ready within a round
// trip of the link coming up.
// What flows out: nodestatus / node / nodepatch / lease messages with source
// edged and group meta, sent to bus.ModuleMeta.
//
// Goroutines: Node.Run and Watchdog.Run each run one loop on the caller's
// goroutine and start no others. Nothing is persisted; the node's state is
// rebuilt from /proc and the cloud on every start.
package board
