#!/usr/bin/env bash
# Installs the host packages that `make image` and `make test-board` need.
# Runs as root (apt-get). Everything comes from Debian's own archive; the
# armel architecture is added so that the guest's kernel and user-space
# packages (linux-image-*-rpi, busybox-static, runc, mosquitto-clients)
# can be downloaded with apt.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx armel; then
	dpkg --add-architecture armel
	apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends \
	qemu-system-arm qemu-user-static mmdebstrap squashfs-tools e2fsprogs \
	fdisk cpio device-tree-compiler kmod xz-utils >/dev/null
