#!/usr/bin/env bash
# Builds the cluster's Go binaries once and caches them outside the checkout, keyed by version:
#   $BIN_DIR        kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#                   kube-proxy, kubectl, kubeadm (Kubernetes $K8S_VERSION, one `go build`;
#                   the kind node image takes kubeadm, kubelet and kubectl from here)
#   $ADDON_BIN_DIR  crictl, coredns, local-path-provisioner
# A warm run finds the `.complete` stamps and returns at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm)

# Static binaries: no cgo, so they also run inside the minimal images built from them.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

# write_k8s_build_module DIR: a tiny module that requires k8s.io/kubernetes and replaces each
# staging module (k8s.io/api, k8s.io/client-go, ...) with its published v0.Y.Z release.
# k8s.io/kubernetes itself points them at ./staging folders that its module download lacks,
# which is why `go install k8s.io/kubernetes/cmd/...@vX` cannot work as is.
write_k8s_build_module() {
  local dir=$1 gomod staging_version=v0.${K8S_VERSION#v1.}
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -f $gomod ]] || fail "go mod download k8s.io/kubernetes@$K8S_VERSION"
  mkdir -p "$dir"
  {
    echo "module replicadb.local/k8s-build"
    echo
    echo "go 1.23.0"
    echo
    # Same runtime defaults as upstream's release builds of this version.
    grep -E '^godebug ' "$gomod"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    local module
    for module in $(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}'); do
      echo "replace $module => $module $(pick_staging_version "$module" "$staging_version")"
    done
  } >"$dir/go.mod"
}

# pick_staging_version MODULE v0.Y.Z: the release of a staging module to build with. The exact
# match when the module proxy serves it; otherwise the newest v0.Y.N below Z (the proxy reached
# from here serves only some patch releases of some staging modules; within one minor release
# the staging APIs do not change).
pick_staging_version() {
  local module=$1 want=$2 minor best=""
  minor=${want%.*}
  local v
  for v in $(go list -m -versions "$module" 2>/dev/null | tr ' ' '\n' | grep -E "^${minor//./\\.}\.[0-9]+$" | sort -t. -k3,3n); do
    if [[ $v == "$want" ]]; then
      echo "$v"
      return
    fi
    if ((${v##*.} < ${want##*.})); then best=$v; fi
  done
  echo "${best:-$want}"
}

build_kubernetes() {
  # The cache is keyed by version and holds one file per binary: a warm run builds only the
  # binaries that a longer list names and the cache lacks (kubeadm came after the others).
  local missing=() b
  for b in "${K8S_BINARIES[@]}"; do
    [[ -f $BIN_DIR/.complete && -x $BIN_DIR/$b ]] || missing+=("$b")
  done
  if ((${#missing[@]} == 0)); then
    step "kubernetes $K8S_VERSION: cached in $BIN_DIR"
    return
  fi
  local src=$K8S_CACHE/src out=$K8S_CACHE/bin.tmp log=$K8S_CACHE/build.log
  step "kubernetes $K8S_VERSION: building ${missing[*]} (cold: about 4 min on 2 cores; log $log)"
  write_k8s_build_module "$src"
  local pkgs=()
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local ver=k8s.io/component-base/version ldflags="-s -w"
  ldflags+=" -X $ver.gitVersion=$K8S_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor"
  ldflags+=" -X $ver.gitTreeState=clean -X $ver.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  rm -rf "$out"
  mkdir -p "$out"
  # One invocation for all of them so that they share every compiled package. -mod=mod lets
  # go fill go.sum (checked against the checksum database) on the first build.
  (
    cd "$src"
    go build -mod=mod -trimpath -tags providerless -ldflags "$ldflags" -o "$out/" "${pkgs[@]}"
  ) >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && step "kubernetes: still compiling ($(du -sh "${GOCACHE:-$HOME/.cache/go-build}" 2>/dev/null | cut -f1) in the Go build cache)"
  done
  wait "$pid" || fail "go build of kubernetes $K8S_VERSION" "$log"
  mkdir -p "$BIN_DIR"
  # Moved in one by one, each an atomic rename: a cluster running from $BIN_DIR meanwhile
  # keeps its binaries.
  for b in "${missing[@]}"; do mv "$out/$b" "$BIN_DIR/$b"; done
  rm -rf "$out"
  touch "$BIN_DIR/.complete"
  step "kubernetes $K8S_VERSION: built ${missing[*]} ($(du -sh "$BIN_DIR" | cut -f1) in $BIN_DIR)"
}

build_addons() {
  if [[ -f $ADDON_BIN_DIR/.complete ]]; then
    step "crictl, coredns, local-path-provisioner: cached in $ADDON_BIN_DIR"
    return
  fi
  local out=$ADDON_BIN_DIR.tmp log=$CACHE_ROOT/addons-build.log
  rm -rf "$out"
  mkdir -p "$out"
  : >"$log"
  step "crictl $CRI_TOOLS_VERSION: building"
  GOBIN=$out go install -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION" >>"$log" 2>&1 || fail "go install crictl" "$log"
  step "coredns $COREDNS_VERSION: building"
  GOBIN=$out go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION" >>"$log" 2>&1 || fail "go install coredns" "$log"
  step "local-path-provisioner $LOCAL_PATH_VERSION: building"
  GOBIN=$out go install -trimpath -ldflags "-s -w" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" >>"$log" 2>&1 ||
    fail "go install local-path-provisioner" "$log"
  rm -rf "$ADDON_BIN_DIR"
  mv "$out" "$ADDON_BIN_DIR"
  touch "$ADDON_BIN_DIR/.complete"
}

main() {
  mkdir -p "$CACHE_ROOT"
  command -v go >/dev/null || fail "Go toolchain" "" "go is not on PATH"
  build_kubernetes
  build_addons
}

main "$@"
