#!/usr/bin/env bash
# Builds what `make e2e-kind` needs on a machine without a registry, all cached by inputs:
#   - the kind binary (sigs.k8s.io/kind $KIND_VERSION, from the Go module proxy)
#   - the images kubeadm expects, under exactly the names `kubeadm config images list` prints
#     (control-plane components and kube-proxy from the Kubernetes build, etcd from Debian,
#     CoreDNS and pause from images.sh), the pod network (images/kind-cni) and the storage
#     provisioner (images.sh's local-path-provisioner)
#   - the kind node image $KIND_NODE_REF (images/kind-node/Dockerfile) with all of those
#     imported into its containerd, in the image store of the podman that kind drives.
# Prints nothing but progress; e2e/kind_cluster.py runs it before `kind create cluster`.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/common.sh"
source "$SCRIPT_DIR/images.sh"

KIND_DIR=$REPO_ROOT/e2e/kind
KIND_CNI_IMAGE=localhost/replicadb/kind-cni:dev
IMPORT_STATE=/run/replicadb-kind-import

build_kind() {
  if [[ -x $KIND_BIN_DIR/kind ]]; then
    step "kind $KIND_VERSION: cached in $KIND_BIN_DIR"
    return
  fi
  step "kind $KIND_VERSION: building"
  mkdir -p "$KIND_BIN_DIR"
  GOBIN=$KIND_BIN_DIR CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION" ||
    fail "go install sigs.k8s.io/kind@$KIND_VERSION"
}

# build_etcd VERSION: etcd as kubeadm's static pod expects it (its probes use /livez and
# /readyz, which Debian's etcd 3.4 lacks), built from the module proxy through a generated
# module (etcd's own go.mod points its sibling modules at ../ folders that a download lacks).
build_etcd() {
  local version=$1 dir=$CACHE_ROOT/etcd-$1 log=$CACHE_ROOT/etcd-$1.log
  ETCD_BIN_DIR=$dir/bin
  if [[ -x $ETCD_BIN_DIR/etcd ]]; then
    step "etcd $version: cached in $ETCD_BIN_DIR"
    return
  fi
  step "etcd $version: building (log $log)"
  mkdir -p "$dir/src"
  printf 'module replicadb.local/etcd-build\n\ngo 1.23.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$version" >"$dir/src/go.mod"
  (
    cd "$dir/src"
    CGO_ENABLED=0 GOTOOLCHAIN=local go build -mod=mod -trimpath -ldflags "-s -w" \
      -o "$dir/bin.tmp/etcd" go.etcd.io/etcd/server/v3
  ) >"$log" 2>&1 || fail "go build of etcd $version" "$log"
  mv "$dir/bin.tmp" "$ETCD_BIN_DIR"
}

# kind_module_dir: kind's module in the Go module cache (downloaded if missing); its
# images/base/files are the entrypoint, units and configs of kind's own base image.
kind_module_dir() {
  local dir
  dir=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir/images/base/files ]] || fail "go mod download sigs.k8s.io/kind@$KIND_VERSION"
  echo "$dir"
}

# kubeadm_image NAME: the reference kubeadm expects for a component (kube-apiserver, etcd,
# coredns, pause, ...), from kubeadm itself.
KUBEADM_IMAGES=()
kubeadm_image() {
  local ref
  for ref in "${KUBEADM_IMAGES[@]}"; do
    local base=${ref##*/}
    if [[ ${base%%:*} == "$1" ]]; then
      echo "$ref"
      return
    fi
  done
  fail "kubeadm image list" "" "no image named $1 in: ${KUBEADM_IMAGES[*]}"
}

build_component_images() {
  mapfile -t KUBEADM_IMAGES < <("$BIN_DIR/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
  local ctx=$CACHE_ROOT/contexts component
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    mkdir -p "$ctx/$component"
    ln -f "$BIN_DIR/$component" "$ctx/$component/" 2>/dev/null || cp "$BIN_DIR/$component" "$ctx/$component/"
    build_image "$(kubeadm_image "$component")" "$REPO_ROOT/images/kube-component/Dockerfile" \
      "$ctx/$component" "$ctx/$component" "--build-arg=BINARY=$component"
  done
  mkdir -p "$ctx/kube-proxy"
  ln -f "$BIN_DIR/kube-proxy" "$ctx/kube-proxy/" 2>/dev/null || cp "$BIN_DIR/kube-proxy" "$ctx/kube-proxy/"
  cp "$REPO_ROOT/images/kube-proxy/iptables-select.sh" "$ctx/kube-proxy/"
  build_image "$(kubeadm_image kube-proxy)" "$REPO_ROOT/images/kube-proxy/Dockerfile" \
    "$ctx/kube-proxy" "$ctx/kube-proxy"
  local etcd_ref etcd_version
  etcd_ref=$(kubeadm_image etcd)
  etcd_version=v${etcd_ref##*:}
  build_etcd "${etcd_version%-*}"
  mkdir -p "$ctx/etcd"
  ln -f "$ETCD_BIN_DIR/etcd" "$ctx/etcd/" 2>/dev/null || cp "$ETCD_BIN_DIR/etcd" "$ctx/etcd/"
  build_image "$etcd_ref" "$REPO_ROOT/images/kube-component/Dockerfile" "$ctx/etcd" "$ctx/etcd" \
    "--build-arg=BINARY=etcd"
  build_image "$KIND_CNI_IMAGE" "$REPO_ROOT/images/kind-cni/Dockerfile" "$REPO_ROOT/images/kind-cni" \
    "$REPO_ROOT/images/kind-cni"
}

# render TEMPLATE KEY=VALUE...: the template with each @KEY@ replaced.
render() {
  local text pair
  text=$(<"$1")
  shift
  for pair in "$@"; do text=${text//@${pair%%=*}@/${pair#*=}}; done
  printf '%s\n' "$text"
}

# node_context DIR: the node image's build context (see images/kind-node/Dockerfile).
node_context() {
  local dir=$1 module
  module=$(kind_module_dir)
  rm -rf "$dir"
  mkdir -p "$dir/bin" "$dir/manifests"
  cp -r "$module/images/base/files" "$dir/kind-files"
  chmod -R u+w "$dir/kind-files"
  local b
  for b in kubeadm kubelet kubectl; do ln -f "$BIN_DIR/$b" "$dir/bin/" 2>/dev/null || cp "$BIN_DIR/$b" "$dir/bin/"; done
  cp "$ADDON_BIN_DIR/crictl" "$dir/bin/"
  cp "$REPO_ROOT/images/kind-node/Dockerfile" "$dir/Dockerfile"
  render "$KIND_DIR/default-cni.yaml" "KIND_CNI_IMAGE=$KIND_CNI_IMAGE" >"$dir/manifests/default-cni.yaml"
  render "$REPO_ROOT/e2e/cluster/addons/local-path.yaml" "LOCAL_PATH_IMAGE=$LOCAL_PATH_IMAGE" \
    "VOLUME_DIR=/var/local-path-provisioner" >"$dir/manifests/default-storage.yaml"
  echo "$K8S_VERSION" >"$dir/version"
}

kind_buildah() {
  CONTAINERS_STORAGE_CONF=$KIND_STORAGE_CONF buildah --storage-driver overlay "$@"
}

# import_into_node MOUNTED_ROOT: every built image into the node's containerd store, under
# its own name and, for CoreDNS and pause, the names kubeadm and the node's containerd ask
# for. A containerd of the same Debian version as the node's writes the store.
import_into_node() {
  local mnt=$1 log=$IMAGE_CACHE/logs/kind-node-import.log
  rm -rf "$IMPORT_STATE"
  mkdir -p "$IMPORT_STATE" "$mnt/var/lib/containerd"
  render "$KIND_DIR/containerd-import.toml" "ROOT=$mnt/var/lib/containerd" "STATE=$IMPORT_STATE" \
    >"$IMPORT_STATE/config.toml"
  containerd --config "$IMPORT_STATE/config.toml" >"$IMPORT_STATE/containerd.log" 2>&1 &
  local pid=$!
  local ctr_=(ctr --address "$IMPORT_STATE/containerd.sock" --namespace k8s.io)
  local tries=0
  until "${ctr_[@]}" version >/dev/null 2>&1; do
    ((++tries < 50)) || fail "containerd for the image import" "$IMPORT_STATE/containerd.log"
    sleep 0.2
  done
  local entry ref
  : >"$log"
  while IFS= read -r entry; do
    ref=${entry%%=*}
    case $ref in "$INSTANCE_IMAGE" | "$OPERATOR_IMAGE") continue ;; esac # loaded per run
    step "kind node image: importing $ref"
    "${ctr_[@]}" images import --label=io.cri-containerd.pinned=pinned --all-platforms \
      --no-unpack --digests "${entry#*=}" >>"$log" 2>&1 || {
      kill "$pid"
      fail "import of $ref into the node image" "$log"
    }
  done < <(printf '%s\n' "${BUILT[@]}")
  {
    "${ctr_[@]}" images tag --force "$COREDNS_IMAGE" "$(kubeadm_image coredns)"
    "${ctr_[@]}" images tag --force "$PAUSE_IMAGE" "$(kubeadm_image pause)"
    "${ctr_[@]}" images ls -q
  } >>"$log"
  kill "$pid"
  wait "$pid" || true
  rm -rf "$IMPORT_STATE"
}

build_node_image() {
  local ctx=$CACHE_ROOT/contexts/kind-node key inputs=()
  node_context "$ctx"
  local entry
  for entry in "${BUILT[@]}"; do
    case ${entry%%=*} in "$INSTANCE_IMAGE" | "$OPERATOR_IMAGE") continue ;; esac # loaded per run
    inputs+=("${entry#*=}")
  done
  key=$(content_hash "$ctx" "$(declare -f build_node_image import_into_node)" "$KIND_DIR/containerd-import.toml" "${inputs[@]##*/}")
  KIND_NODE_REF=$KIND_NODE_REPO:$K8S_VERSION-$key
  if [[ -n $(kind_buildah images --quiet "$KIND_NODE_REF" 2>/dev/null) ]]; then
    step "kind node image $KIND_NODE_REF: cached"
    return
  fi
  local log=$IMAGE_CACHE/logs/kind-node.log
  step "kind node image: building $KIND_NODE_REF (log $log)"
  : >"$log"
  # Superseded node images go first: each holds a copy of every image.
  kind_buildah rmi --all --force >/dev/null 2>&1 || true
  # The base comes over from the other images' store.
  run_logged "copy of $BASE_IMAGE_REF into kind's image store" "$log" \
    buildah_ push "$BASE_IMAGE_REF" "containers-storage:[overlay@$KIND_GRAPHROOT+$KIND_RUNROOT]$BASE_IMAGE_REF"
  run_logged "build of the kind node image" "$log" \
    kind_buildah bud --isolation chroot --pull-never --build-arg "BASE_IMAGE=$BASE_IMAGE_REF" \
    -f "$ctx/Dockerfile" -t "$KIND_NODE_REPO:base" "$ctx"
  local ctr mnt
  ctr=$(kind_buildah from --pull-never "$KIND_NODE_REPO:base")
  mnt=$(kind_buildah mount "$ctr")
  import_into_node "$mnt"
  kind_buildah umount "$ctr" >/dev/null
  run_logged "commit of the kind node image" "$log" kind_buildah commit --rm "$ctr" "$KIND_NODE_REF"
  kind_buildah rmi "$KIND_NODE_REPO:base" >/dev/null 2>&1 || true
}

main() {
  require_root
  "$SCRIPT_DIR/deps.sh"
  "$SCRIPT_DIR/build.sh" # Kubernetes (kubeadm, kubelet, kubectl, components), crictl, CoreDNS, ...
  build_kind
  build_all
  build_component_images
  mkdir -p "$KIND_GRAPHROOT" "$KIND_RUNROOT"
  render "$KIND_DIR/podman-storage.conf" "GRAPHROOT=$KIND_GRAPHROOT" "RUNROOT=$KIND_RUNROOT" >"$KIND_STORAGE_CONF"
  build_node_image
  echo "$KIND_NODE_REF" >"$KIND_CACHE/node-image"
  step "kind node image: $KIND_NODE_REF"
}

main "$@"
