// Package board knows the host edgenode runs on.
//
// What it owns:
//   - Facts: CPU count and model (including the BCM2835 /proc/cpuinfo format
//     of ARMv6 boards), memory, architecture with ARM variant, kernel, OS
//     image, machine and boot ids, hostname, the node's addresses and the
//     free space of the data dir. The parsers take an io.Reader or an fs.FS so
//     tests feed them files captured on real boards (testdata/). The
//     nodestatus module turns these facts into the node's status.
//   - The Watchdog, which keeps /dev/watchdog alive while every module is
//     healthy, as main's health registry says (the Health interface).
//   - Start-up checks for a read-only root: CheckDataDir, RestrictPerms and
//     the preflight checks behind `edgenode check`.
//
// What flows in and out: nothing on the bus; board is a library for main
// and nodestatus.
//
// Goroutines: Watchdog.Run runs one loop on the caller's goroutine and
// starts no others. Nothing is persisted; facts are read from /proc and
// /sys each time they are asked for.
package board
