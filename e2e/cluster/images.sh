#!/usr/bin/env bash
# Builds the cluster's images without Docker and imports them into containerd.
#
#   images.sh build    build what is missing (cached by a hash of each image's inputs)
#   images.sh import   import the built images into the running cluster's containerd
#   images.sh          both (import only when the cluster's containerd is running)
#
# The base is a Debian root filesystem made by debootstrap from Debian packages, committed as
# $BASE_IMAGE_REF. Every other image is built by buildah from the same Dockerfile a kind user
# builds with `docker build`, with that base passed as the BASE_IMAGE build argument.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_LOG_DIR=$IMAGE_CACHE/logs

# content_hash INPUT...: one hash over the names (relative, so that every checkout agrees)
# and contents of files and folders; an INPUT that is neither is hashed as a literal string.
# Any change to an image's inputs gives it a new cache key, and nothing else does.
content_hash() {
  local p
  for p in "$@"; do
    if [[ -d $p ]]; then
      echo "dir $(basename "$p")"
      (cd "$p" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 -r sha256sum)
    elif [[ -f $p ]]; then
      echo "file $(basename "$p") $(sha256sum <"$p")"
    else
      echo "text $p"
    fi
  done | sha256sum | cut -c1-16
}

image_id() {
  buildah_ images --quiet --no-trunc "$1" 2>/dev/null | head -n1
}

# build_base: debootstrap a minimal Debian straight into an empty buildah container and commit
# it. The image trusts the same extra CA certificates as this machine, because the image
# builds that start from it fetch packages from the same place this machine does.
build_base() {
  local mirror key stamp=$IMAGE_CACHE/base.key
  mirror=$(debian_mirror)
  key=$(content_hash "$(declare -f build_base)" /usr/local/share/ca-certificates "$DEBIAN_SUITE $mirror")
  if [[ -f $stamp && $(cat "$stamp") == "$key" && -n $(image_id "$BASE_IMAGE_REF") ]]; then
    step "image $BASE_IMAGE_REF: cached"
    return
  fi
  local log=$BUILD_LOG_DIR/base.log ctr mnt
  step "image $BASE_IMAGE_REF: debootstrap $DEBIAN_SUITE (log $log)"
  : >"$log"
  # Every other image and layer cache derives from the base: drop them all with it, so that
  # superseded layers do not pile up in the cache.
  buildah_ rmi --all --force >/dev/null 2>&1 || true
  rm -f "$IMAGE_CACHE"/*.tar
  ctr=$(buildah_ from scratch)
  mnt=$(buildah_ mount "$ctr")
  run_logged "debootstrap of the base image" "$log" \
    debootstrap --variant=minbase --include=ca-certificates "$DEBIAN_SUITE" "$mnt" "$mirror"
  {
    echo "deb $mirror $DEBIAN_SUITE main"
    echo "deb $mirror $DEBIAN_SUITE-updates main"
    local security
    security=$(grep -hoE 'https?://[^ ]+/debian-security/?' /etc/apt/sources.list.d/*.sources \
      /etc/apt/sources.list 2>/dev/null | head -n1 || true)
    [[ -z $security ]] || echo "deb ${security%/} $DEBIAN_SUITE-security main"
  } >"$mnt/etc/apt/sources.list"
  # Slim like Debian's published image: no docs, man pages or translations from later installs.
  cat >"$mnt/etc/dpkg/dpkg.cfg.d/replicadb-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  # And like it, apt keeps no downloaded packages or package caches in image layers.
  cat >"$mnt/etc/apt/apt.conf.d/90replicadb-slim" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
CFG
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$mnt/usr/local/share/ca-certificates/"
    chroot "$mnt" update-ca-certificates >>"$log" 2>&1 || fail "update-ca-certificates in the base image" "$log"
  fi
  rm -rf "$mnt"/var/cache/apt/archives/*.deb "$mnt"/var/lib/apt/lists/* "$mnt"/usr/share/doc/*/changelog* \
    "$mnt"/usr/share/man/* "$mnt"/usr/share/locale/* "$mnt"/etc/resolv.conf "$mnt"/etc/hostname
  : >"$mnt/etc/machine-id"
  buildah_ umount "$ctr" >/dev/null
  buildah_ config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah_ commit --quiet --rm "$ctr" "$BASE_IMAGE_REF" >>"$log" 2>&1 || fail "commit of the base image" "$log"
  echo "$key" >"$stamp"
}

# build_image REF DOCKERFILE CONTEXT [INPUT...]: buildah bud unless an archive with the same
# input hash exists; records REF -> archive for import. An INPUT --build-arg=NAME=VALUE is
# passed to the build (and hashed like the others).
BUILT=()
build_image() {
  local ref=$1 dockerfile=$2 context=$3
  shift 3
  local name=${ref#localhost/}
  name=${name//[\/:]/-}
  local key tar base_id input build_args=()
  for input in "$@"; do
    [[ $input == --build-arg=* ]] && build_args+=(--build-arg "${input#--build-arg=}")
  done
  base_id=$(image_id "$BASE_IMAGE_REF")
  key=$(content_hash "$dockerfile" "$@" "$ref $base_id")
  tar=$IMAGE_CACHE/$name-$key.tar
  if [[ -f $tar ]]; then
    step "image $ref: cached"
  else
    local log=$BUILD_LOG_DIR/$name.log
    step "image $ref: building from ${dockerfile#"$REPO_ROOT"/} (log $log)"
    : >"$log"
    # chroot isolation: RUN steps use the host network and need no CNI or runtime of their own.
    run_logged "image build of $ref" "$log" \
      buildah_ bud --isolation chroot --layers --pull-never \
      --build-arg "BASE_IMAGE=$BASE_IMAGE_REF" "${build_args[@]}" -f "$dockerfile" -t "$ref" "$context"
    rm -f "$IMAGE_CACHE/$name"-*.tar
    run_logged "export of $ref" "$log" buildah_ push "$ref" "docker-archive:$tar.tmp:$ref"
    mv "$tar.tmp" "$tar"
  fi
  BUILT+=("$ref=$tar")
}

build_all() {
  mkdir -p "$IMAGE_CACHE" "$BUILD_LOG_DIR"
  command -v buildah >/dev/null || fail "buildah" "" "not installed (make cluster-deps installs it)"
  # A killed earlier build can leave working containers behind; they hold layers mounted.
  buildah_ rm --all >/dev/null 2>&1 || true
  build_base

  local ctx=$CACHE_ROOT/contexts
  rm -rf "$ctx"
  mkdir -p "$ctx/coredns" "$ctx/local-path-provisioner"
  # Hard links where possible: the contexts only need to name the cached binaries.
  cp -l "$ADDON_BIN_DIR/coredns" "$ctx/coredns/" 2>/dev/null || cp "$ADDON_BIN_DIR/coredns" "$ctx/coredns/"
  cp -l "$ADDON_BIN_DIR/local-path-provisioner" "$ctx/local-path-provisioner/" 2>/dev/null ||
    cp "$ADDON_BIN_DIR/local-path-provisioner" "$ctx/local-path-provisioner/"

  build_image "$PAUSE_IMAGE" "$REPO_ROOT/images/pause/Dockerfile" "$REPO_ROOT/images/pause" \
    "$REPO_ROOT/images/pause"
  build_image "$COREDNS_IMAGE" "$REPO_ROOT/images/coredns/Dockerfile" "$ctx/coredns" "$ctx/coredns"
  build_image "$LOCAL_PATH_IMAGE" "$REPO_ROOT/images/local-path-provisioner/Dockerfile" \
    "$ctx/local-path-provisioner" "$ctx/local-path-provisioner"
  local py_inputs=("$REPO_ROOT/pyproject.toml" "$REPO_ROOT/README.md"
    "$REPO_ROOT/operator/replicadb_operator" "$REPO_ROOT/router_lib")
  build_image "$INSTANCE_IMAGE" "$REPO_ROOT/operator/instance.Dockerfile" "$REPO_ROOT" "${py_inputs[@]}"
  build_image "$OPERATOR_IMAGE" "$REPO_ROOT/operator/Dockerfile" "$REPO_ROOT" "${py_inputs[@]}"
  printf '%s\n' "${BUILT[@]}" >"$IMAGE_CACHE/built.list"
}

containerd_running() {
  [[ -S $CONTAINERD_SOCK ]] && ctr_ version >/dev/null 2>&1
}

# import_all: each archive into containerd's k8s.io namespace (unpacked for the overlayfs
# snapshotter). containerd's store is a cache too, so an archive imported by an earlier run
# whose image is still there is skipped. Writing the layers dominates an import: 13-34 s for
# all of them here (importing several at once was measured no faster).
import_all() {
  containerd_running || fail "image import" "" "the cluster's containerd is not running (make cluster-up)"
  local entry ref tar mark
  mkdir -p "$IMPORTED_DIR" "$LOG_DIR"
  while IFS= read -r entry; do
    ref=${entry%%=*}
    tar=${entry#*=}
    mark=$IMPORTED_DIR/$(basename "$tar")
    if [[ -f $mark ]] && ctr_ images ls -q "name==$ref" | grep -qxF "$ref"; then continue; fi
    step "image $ref: importing into containerd"
    rm -f "$IMPORTED_DIR/${mark##*/}"
    run_logged "import of $ref into containerd" "$LOG_DIR/image-import.log" ctr_ images import "$tar"
    touch "$mark"
  done <"$IMAGE_CACHE/built.list"
  # The instance image's second tag (rolling updates in e2e): a name, no layers copied.
  if ctr_ images ls -q "name==$INSTANCE_IMAGE" | grep -qxF "$INSTANCE_IMAGE"; then
    ctr_ images tag --force "$INSTANCE_IMAGE" "$INSTANCE_NEXT_IMAGE" >/dev/null
  fi
  # Marks of archives that are no longer built name nothing.
  for mark in "$IMPORTED_DIR"/*; do
    [[ -e $mark ]] || continue
    grep -qF "/${mark##*/}" "$IMAGE_CACHE/built.list" || rm -f "$mark"
  done
}

main() {
  require_root
  case ${1:-all} in
  build) build_all ;;
  import) import_all ;;
  all)
    build_all
    if containerd_running; then import_all; fi
    ;;
  *)
    echo "usage: $0 [build|import]" >&2
    exit 2
    ;;
  esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
