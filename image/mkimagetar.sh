#!/usr/bin/env bash
# mkimagetar.sh BUSYBOX OUT.tar [REF]
# Writes a one-layer container image of a static busybox as a tarball that
# is both an OCI image layout (oci-layout, index.json, blobs/sha256) and a
# `docker save` archive (manifest.json), the two forms image import tools
# read. Reproducible: fixed times, owners and order.
set -euo pipefail
bb=${1:?usage: mkimagetar.sh BUSYBOX OUT.tar [REF]}
out=${2:?}
ref=${3:-docker.io/library/busybox:board-test}
tag=${ref##*:}
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/rootfs/bin" "$w/rootfs/tmp" "$w/rootfs/proc" "$w/rootfs/sys" "$w/rootfs/dev" "$w/rootfs/etc" "$w/oci/blobs/sha256"
install -m 0755 "$bb" "$w/rootfs/bin/busybox"
for a in sh sleep echo cat ls ps true false env id mount df free top; do ln -s busybox "$w/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/:/bin/sh\n' >"$w/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$w/rootfs/etc/group"
tarf() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf - .; }
tarf "$w/rootfs" >"$w/layer.tar"
diffid=$(sha256sum <"$w/layer.tar" | cut -c1-64)
gzip -9n <"$w/layer.tar" >"$w/layer.tar.gz"
layer=$(sha256sum <"$w/layer.tar.gz" | cut -c1-64)
lsize=$(stat -c %s "$w/layer.tar.gz")
mv "$w/layer.tar.gz" "$w/oci/blobs/sha256/$layer"
printf '{"architecture":"arm","variant":"v6","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"mkimagetar.sh"}]}' "$diffid" >"$w/config.json"
config=$(sha256sum <"$w/config.json" | cut -c1-64)
csize=$(stat -c %s "$w/config.json")
mv "$w/config.json" "$w/oci/blobs/sha256/$config"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
	"$config" "$csize" "$layer" "$lsize" >"$w/manifest.json"
manifest=$(sha256sum <"$w/manifest.json" | cut -c1-64)
msize=$(stat -c %s "$w/manifest.json")
mv "$w/manifest.json" "$w/oci/blobs/sha256/$manifest"
printf '{"imageLayoutVersion":"1.0.0"}' >"$w/oci/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"arm","os":"linux","variant":"v6"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
	"$manifest" "$msize" "$ref" "$tag" >"$w/oci/index.json"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s"]}]' "$config" "$ref" "$layer" >"$w/oci/manifest.json"
tarf "$w/oci" >"$out"
