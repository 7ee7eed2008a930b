#!/usr/bin/env bash
# build.sh builds the emulated Pi Zero image in cached steps:
#
#   kernel    Debian's Pi Zero / Pi 1 kernel (linux-image-*-rpi, armel), modules
#   dtb       bcm2835-rpi-zero.dtb patched for QEMU (see patch_dtb)
#   base      Debian armel user space (busybox-static, runc, mosquitto-clients,
#             sqlite3) extracted with mmdebstrap, no maintainer scripts run
#   rootfs    base + modules + image/rootfs + edgenode -> read-only squashfs (zstd)
#   initramfs busybox + squashfs.ko: mounts the squashfs root, switch_root
#   sd        sd.img: p1 squashfs root, p2 ext4 data (power-of-two size)
#
# Usage: image/build.sh EDGENODE_ARMV6_BINARY [OUT_DIR]
# Needs root for mmdebstrap and the chroot that runs the armel ldconfig
# through qemu-arm-static (step "base" only, cached afterwards).
# Network: only Debian's archive through apt (apt-get download, mmdebstrap).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: build.sh EDGENODE_ARMV6_BINARY [OUT_DIR]}
out=${2:-bin/image}
suite=${IMAGE_SUITE:-bookworm}
# Packages of the root filesystem (armel). Their dependencies come along.
packages=${IMAGE_PACKAGES:-busybox-static,runc,mosquitto-clients,sqlite3,libc-bin}
# Module folders left out of the image: hardware a Pi Zero does not have
# or edgenode does not use. Everything else of the kernel's tree is kept.
# zstd: ~10x faster to build than xz here and faster to read on an ARM1176,
# for a root ~25% larger (about 40 MB).
comp=${IMAGE_COMP:--comp zstd -Xcompression-level 6}
skip_modules="sound drivers/media drivers/iio drivers/infiniband drivers/staging drivers/gpu drivers/target drivers/isdn"

mkdir -p "$out"
out=$(cd "$out" && pwd)
log() { printf '== image: %s\n' "$*" >&2; }
die() { printf 'image: %s\n' "$*" >&2; exit 1; }

# stamp NAME INPUT... : true if step NAME already ran with the same inputs.
# The inputs are hashed; a step records its hash when it succeeds.
hash_of() { { for x in "$@"; do if [ -e "$x" ]; then find "$x" -type f -print0 | sort -z | xargs -0 sha256sum; else echo "$x"; fi; done; } | sha256sum | cut -c1-16; }
fresh() { local name=$1; shift; [ -f "$out/.$name.stamp" ] && [ "$(cat "$out/.$name.stamp")" = "$(hash_of "$@")" ]; }
done_step() { local name=$1; shift; hash_of "$@" >"$out/.$name.stamp"; }

need() { for c in "$@"; do command -v "$c" >/dev/null || die "$c missing: run image/deps.sh (as root)"; done; }
need apt-get dpkg-deb depmod fdtput mmdebstrap mksquashfs mke2fs sfdisk cpio qemu-arm-static xz gzip
dpkg --print-foreign-architectures | grep -qx armel || die "armel architecture missing: run image/deps.sh (as root)"
[ -f "$bin" ] || die "$bin missing: run make armv6"

# --- kernel -----------------------------------------------------------------
# The metapackage linux-image-rpi names the current ABI package.
kpkg=$(apt-cache depends linux-image-rpi:armel 2>/dev/null | awk '/Depends: linux-image-[0-9]/{sub(":armel","",$2); print $2; exit}')
[ -n "$kpkg" ] || die "cannot resolve linux-image-rpi:armel (apt-get update after dpkg --add-architecture armel)"
kver=${kpkg#linux-image-}
kdir=$out/kernel
if ! fresh kernel "$kpkg" "$skip_modules"; then
	log "kernel $kpkg"
	rm -rf "$out/dl" "$kdir" && mkdir -p "$out/dl" "$kdir"
	(cd "$out/dl" && apt-get download -q "$kpkg:armel" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
	deb=$(ls "$out"/dl/"$kpkg"_*_armel.deb 2>/dev/null | head -1)
	[ -n "$deb" ] || die "download of $kpkg:armel failed"
	dpkg-deb -x "$deb" "$kdir/pkg"
	for m in $skip_modules; do rm -rf "$kdir/pkg/lib/modules/$kver/kernel/$m"; done
	depmod -b "$kdir/pkg" "$kver"
	cp "$kdir/pkg/boot/vmlinuz-$kver" "$out/vmlinuz"
	cp "$kdir/pkg/usr/lib/linux-image-$kver/bcm2835-rpi-zero.dtb" "$kdir/bcm2835-rpi-zero.dtb"
	rm -f "$deb"
	done_step kernel "$kpkg" "$skip_modules"
fi

# --- device tree ---------------------------------------------------------------
# QEMU's raspi0 lacks the ASB registers at 0x7e00a000: the stock DTB panics in
# bcm2835_power_probe, so the pm node keeps only its "pm" range. A
# /chosen/rng-seed lets the kernel's random pool start at once; without it
# getrandom() blocks Go programs and runc for ~80 s. A real board's firmware
# passes its own device tree; this one is for the emulator only.
patch_dtb() {
	local src=$1 dst=$2 node
	node=$(fdtget -l "$src" /soc | grep '^watchdog@7e100000$') || die "pm node not found in $src"
	cp "$src" "$dst"
	fdtput -t x "$dst" "/soc/$node" reg 7e100000 114
	fdtput -t s "$dst" "/soc/$node" reg-names pm
	fdtput -t bx "$dst" /chosen rng-seed $(od -An -tx1 -N64 /dev/urandom)
}
if ! fresh dtb "$kdir/bcm2835-rpi-zero.dtb"; then
	log "dtb"
	patch_dtb "$kdir/bcm2835-rpi-zero.dtb" "$out/rpi0-qemu.dtb"
	done_step dtb "$kdir/bcm2835-rpi-zero.dtb"
fi

# --- base root filesystem -----------------------------------------------------
base=$out/base
if ! fresh base "$suite" "$packages"; then
	log "base: mmdebstrap $suite armel ($packages)"
	[ "$(id -u)" = 0 ] || die "the base root filesystem needs root (mmdebstrap, chroot)"
	rm -rf "$base"
	sources=/etc/apt/sources.list.d/debian.sources
	[ -f "$sources" ] || sources=http://deb.debian.org/debian
	mmdebstrap --quiet --variant=extract --arch=armel --include="$packages" "$suite" "$base" "$sources" </dev/null
	# Busybox applets as links, skipping names a package already provides.
	for a in $(qemu-arm-static "$base/bin/busybox" --list-full); do
		[ -e "$base/$a" ] || [ -L "$base/$a" ] || ln -s /bin/busybox "$base/$a"
	done
	# runc links libseccomp, mosquitto-clients libmosquitto: the loader
	# needs ld.so.cache for the multiarch folders. Run the armel ldconfig.
	cp /usr/bin/qemu-arm-static "$base/qemu-arm-static"
	chroot "$base" /qemu-arm-static /sbin/ldconfig
	rm -f "$base/qemu-arm-static"
	rm -rf "$base"/usr/share/{doc,man,info,locale,lintian,bash-completion} "$base"/var/cache/* "$base"/var/lib/apt
	done_step base "$suite" "$packages"
fi

# --- root filesystem (squashfs) -----------------------------------------------
# build_rootfs NAME OVERLAY...: base + modules + overlays + edgenode ->
# NAME.squashfs. "rootfs" is the product; "rootfs-test" adds image/testkit
# (the board test's static pod) for make test-board.
build_rootfs() {
	local name=$1 stage=$out/stage-$1
	shift
	fresh "$name" "$@" "$bin" "$comp" "$out/.kernel.stamp" "$out/.base.stamp" && return
	log "$name"
	rm -rf "$stage" && cp -a "$base" "$stage"
	mkdir -p "$stage/lib/modules"
	cp -a "$kdir/pkg/lib/modules/$kver" "$stage/lib/modules/"
	rm -f "$stage/etc/resolv.conf" "$stage/etc/hostname"
	for o in "$@"; do cp -a "$o/." "$stage/"; done
	install -m 0755 "$bin" "$stage/usr/bin/edgenode"
	# Mount points must exist on a read-only root (also for runc).
	for d in proc sys dev run tmp data var/lib/edgenode etc/edgenode/manifests; do mkdir -p "$stage/$d"; done
	chmod 1777 "$stage/tmp"
	rm -f "$out/$name.squashfs"
	mksquashfs "$stage" "$out/$name.squashfs" $comp -all-root -noappend -quiet -no-progress >/dev/null
	rm -rf "$stage"
	done_step "$name" "$@" "$bin" "$comp" "$out/.kernel.stamp" "$out/.base.stamp"
}
# IMAGE_TEST=1 (make test-board) builds only the test variant.
if [ "${IMAGE_TEST:-0}" = 1 ]; then
	build_rootfs rootfs-test "$here/rootfs" "$here/testkit/rootfs"
else
	build_rootfs rootfs "$here/rootfs"
fi

# --- initramfs ----------------------------------------------------------------
if ! fresh initramfs "$here/initramfs-init" "$out/.kernel.stamp" "$out/.base.stamp"; then
	log "initramfs"
	ir=$out/initramfs
	rm -rf "$ir" && mkdir -p "$ir"/{bin,dev,proc,sys,newroot,lib/modules}
	cp "$base/bin/busybox" "$ir/bin/busybox"
	for a in sh mount umount switch_root insmod sleep cat echo mkdir poweroff; do ln -s busybox "$ir/bin/$a"; done
	# squashfs.ko and what it needs, in load order (modules.dep).
	mods=$(awk -v m="kernel/fs/squashfs/squashfs.ko:" '$1==m{for(i=NF;i>1;i--)print $i; print substr($1,1,length($1)-1)}' "$kdir/pkg/lib/modules/$kver/modules.dep")
	[ -n "$mods" ] || die "squashfs.ko not in modules.dep"
	: >"$ir/lib/modules/order"
	for m in $mods; do
		cp "$kdir/pkg/lib/modules/$kver/$m" "$ir/lib/modules/"
		basename "$m" >>"$ir/lib/modules/order"
	done
	install -m 0755 "$here/initramfs-init" "$ir/init"
	(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9n) >"$out/initrd.cpio.gz"
	rm -rf "$ir"
	done_step initramfs "$here/initramfs-init" "$out/.kernel.stamp" "$out/.base.stamp"
fi

# --- SD image -----------------------------------------------------------------
# sd.img: 1 MiB of partition table, p1 = squashfs root (rounded up to MiB, with
# room to grow), p2 = ext4 data, total a power of two (QEMU's SD card
# model requires it). image/mksd.sh also builds the test-board copies.
if [ "${IMAGE_TEST:-0}" != 1 ] && ! fresh sd "$out/rootfs.squashfs" "$here/mksd.sh"; then
	log "sd image"
	empty=$out/data-empty
	rm -rf "$empty" && mkdir -p "$empty/edgenode"
	"$here/mksd.sh" "$out/rootfs.squashfs" "$empty" "$out/sd.img"
	rm -rf "$empty"
	done_step sd "$out/rootfs.squashfs" "$here/mksd.sh"
fi
log "ready: $out/{vmlinuz,rpi0-qemu.dtb,initrd.cpio.gz,sd.img}"
