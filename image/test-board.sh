#!/usr/bin/env bash
# test-board.sh IMAGE_DIR: boots the emulated Pi Zero (qemu-system-arm -M
# raspi0, no network device) twice from one SD card and reads the guest
# test's verdicts (image/rootfs/usr/libexec/edgenode/board-test) from the
# serial console and from files on the data partition (debugfs, no mount).
# Boot 1 runs phase 1 and powers off; boot 2 is the reboot with no cloud
# (phase 2). Exits non-zero if any check failed or is missing, or a boot
# did not finish within BOARD_TIMEOUT seconds.
#
# BOARD_BREAK=1 turns one guest check into a failure on purpose: the run
# must then fail (the harness's own test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
img=${1:?usage: test-board.sh IMAGE_DIR}
img=$(cd "$img" && pwd)
timeout_s=${BOARD_TIMEOUT:-540}
run=$img/test-board
for f in vmlinuz rpi0-qemu.dtb initrd.cpio.gz rootfs-test.squashfs base/bin/busybox; do
	[ -e "$img/$f" ] || { echo "test-board: $img/$f missing: run make image with IMAGE_TEST=1" >&2; exit 1; }
done
for c in qemu-system-arm debugfs mke2fs sfdisk timeout; do
	command -v $c >/dev/null || { echo "test-board: $c missing: run image/deps.sh" >&2; exit 1; }
done

# Checks each phase must pass; a check that never reports counts as failed.
phase1="root_ro edgenode_ready check_cmd image_import pod_running pod_memory_limit pod_status twin_update twin_stored bench data_only kill_restart kill_pod_kept kill_twin_kept"
phase2="edgenode_ready pod_running pod_memory_limit pod_status reboot_twin_kept bench data_only"

rm -rf "$run" && mkdir -p "$run/data/edgenode" "$run/data/board-test"
kit=$run/data/board-test
touch "$kit/enable"
echo 1 >"$kit/phase"
[ "${BOARD_BREAK:-0}" = 1 ] && touch "$kit/break"
cat >"$kit/env" <<EOT
POD_NAME=board-pod
POD_MARK=board-pod-sleep
DEVICE_ID=board-sensor
TWIN_NAME=temperature
IMAGE_REF=busybox:board-test
EOT
# The test kit's data: local devices for the twin (edgenode/devices) and
# the test config (edgenode.yaml).
cp -a "$here/testkit/data/." "$run/data/"
mkdir -p "$run/data/images"
"$here/mkimagetar.sh" "$img/base/bin/busybox" "$run/data/images/busybox-board-test.tar"
date +%s >"$run/data/clock"
"$here/mksd.sh" "$img/rootfs-test.squashfs" "$run/data" "$run/sd.img"
rm -rf "$run/data"

# Byte offset of partition 2 for debugfs.
p2=$(sfdisk --dump "$run/sd.img" | awk -F'[=,]' '/sd.img2/{gsub(/ /,"",$2); print $2 * 512}')
guestcat() { debugfs -R "cat $1" "$run/sd.img?offset=$p2" 2>/dev/null; }

status=0
npass=0
nfail=0
for phase in 1 2; do
	echo "== test-board: boot $phase (timeout ${timeout_s}s)"
	t0=$(date +%s)
	# -icount: the guest's clock advances with the instructions it runs, not
	# with host time. Without it, boots froze under a busy host (emulator
	# idle, console silent). Most likely the host descheduled the emulator
	# between the kernel's read of the BCM2835 system timer and its write
	# of the next compare value; the compare then lies in the past and the
	# next timer interrupt comes only after the 32-bit counter wraps (71
	# minutes). No boot froze with -icount.
	set +e
	timeout --foreground -k 10 "$timeout_s" qemu-system-arm -M raspi0 \
		-kernel "$img/vmlinuz" -dtb "$img/rpi0-qemu.dtb" -initrd "$img/initrd.cpio.gz" \
		-append "console=ttyAMA0,115200 root=/dev/mmcblk0p1 rootwait" \
		-drive "file=$run/sd.img,if=sd,format=raw" \
		-icount shift=auto,sleep=on -nographic -no-reboot -monitor none -nic none </dev/null 2>&1 |
		sed -u 's/\r$//' | tee "$run/console-$phase.log" | grep --line-buffered -E 'BOARD-TEST|BENCH|DIAG|edgenode|panic|initramfs:|rcS:'
	rc=${PIPESTATUS[0]}
	set -e
	echo "== test-board: boot $phase ended after $(($(date +%s) - t0))s, qemu exit $rc"
	if [ "$rc" != 0 ]; then
		[ "$rc" = 124 ] && echo "FAIL boot $phase: no poweroff within ${timeout_s}s (console: $run/console-$phase.log)"
		[ "$rc" != 124 ] && echo "FAIL boot $phase: qemu exited $rc"
		status=1
		break
	fi
	guestcat "/board-test/results-$phase" >"$run/results-$phase.txt" || true
	guestcat "/board-test/bench-$phase" >"$run/bench-$phase.txt" || true
	want=phase$phase
	for c in ${!want}; do
		if [ "$c" = bench ]; then
			grep -q '^BENCH ' "$run/bench-$phase.txt" || { echo "FAIL phase $phase bench: no BENCH line in /board-test/bench-$phase"; status=1; }
			continue
		fi
		if ! grep -qx "PASS $c" "$run/results-$phase.txt"; then
			why=$(grep "^FAIL $c:" "$run/results-$phase.txt" | head -1 || true)
			echo "FAIL phase $phase $c: ${why:-no result in /board-test/results-$phase}"
			status=1
			nfail=$((nfail + 1))
		elif ! grep -q "^BOARD-TEST PASS $c\b" "$run/console-$phase.log"; then
			echo "FAIL phase $phase $c: PASS in the results file but not on the console"
			status=1
			nfail=$((nfail + 1))
		else
			npass=$((npass + 1))
		fi
	done
	# A FAIL anywhere (also a check not in the list) fails the run.
	if grep -q '^BOARD-TEST FAIL\|^FAIL' "$run/console-$phase.log" "$run/results-$phase.txt"; then status=1; fi
	if ! grep -q "^BOARD-TEST DONE phase=$phase " "$run/console-$phase.log"; then
		echo "FAIL phase $phase: the guest stopped before its DONE marker (console: $run/console-$phase.log)"
		status=1
		break
	fi
done
cat "$run"/bench-*.txt 2>/dev/null >"$run/bench.txt" || true
# The plain summary line CI reads; a boot that never finished counts as a failure.
[ $status = 0 ] || [ $nfail -gt 0 ] || nfail=1
echo "test-board: $npass passed, $nfail failed"
if [ $status = 0 ]; then
	echo "== test-board: PASS ($(echo $phase1 | wc -w) + $(echo $phase2 | wc -w) checks)"
else
	echo "== test-board: FAIL (logs in $run)"
fi
exit $status
