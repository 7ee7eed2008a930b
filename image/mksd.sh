#!/usr/bin/env bash
# mksd.sh ROOTFS.squashfs DATA_DIR OUT.img [DATA_MIB]
# Writes an SD card image: an MBR with p1 = the read-only squashfs root and
# p2 = an ext4 data partition filled from DATA_DIR (mke2fs -d: no mount, no
# root). The total size is a power of two, as QEMU's SD card model requires;
# the data partition gets at least DATA_MIB (default 64) MiB.
set -euo pipefail
sq=${1:?usage: mksd.sh ROOTFS.squashfs DATA_DIR OUT.img [DATA_MIB]}
data=${2:?}
img=${3:?}
data_min=${4:-64}
mib=$((1024 * 1024))
sq_bytes=$(stat -c %s "$sq")
# p1: the squashfs rounded up to MiB plus 8 MiB, so that a slightly larger
# root still fits the same layout.
p1=$(((sq_bytes + mib - 1) / mib + 8))
total=1
while [ $total -lt $((1 + p1 + data_min)) ]; do total=$((total * 2)); done
p2=$((total - 1 - p1))
tmp=$img.tmp
rm -f "$tmp" "$tmp.data"
truncate -s "${total}M" "$tmp"
printf 'label: dos\nstart=%d, size=%d, type=83\nstart=%d, size=%d, type=83\n' \
	2048 $((p1 * 2048)) $(((1 + p1) * 2048)) $((p2 * 2048)) | sfdisk --quiet "$tmp"
dd if="$sq" of="$tmp" bs=1M seek=1 conv=notrunc status=none
out=$(mke2fs -q -F -t ext4 -L edgenode-data -d "$data" -E root_owner=0:0 "$tmp.data" "${p2}M" 2>&1) || {
	echo "mksd: mke2fs: $out" >&2
	exit 1
}
dd if="$tmp.data" of="$tmp" bs=1M seek=$((1 + p1)) conv=notrunc status=none
rm -f "$tmp.data"
mv "$tmp" "$img"
