# shellcheck shell=bash disable=SC2034
# Shared settings and helpers for the local single-node cluster scripts. Sourced, not run.
#
# Everything the cluster builds or runs lives OUTSIDE the checkout:
#   CACHE_DIR  built binaries, base rootfs and images, keyed by version / content hash
#   STATE_DIR  the running cluster (certs, kubeconfigs, etcd data, logs, pids); wiped by down
#   RUN_DIR    containerd's state and sockets (tmpfs-like, wiped by down)

# Pinned versions. Only versions the Go module proxy serves whole are usable here.
K8S_VERSION=${K8S_VERSION:-v1.32.13}
CRI_TOOLS_VERSION=${CRI_TOOLS_VERSION:-v1.34.0}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
LOCAL_PATH_VERSION=${LOCAL_PATH_VERSION:-v0.0.30}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}

CACHE_ROOT=${REPLICADB_CACHE:-/var/cache/replicadb}
K8S_CACHE=$CACHE_ROOT/k8s-$K8S_VERSION
BIN_DIR=$K8S_CACHE/bin
ADDON_BIN_DIR=$CACHE_ROOT/addons-crictl-$CRI_TOOLS_VERSION-coredns-$COREDNS_VERSION-lpp-$LOCAL_PATH_VERSION/bin
IMAGE_CACHE=$CACHE_ROOT/images
STATE_DIR=${REPLICADB_CLUSTER_STATE:-/var/lib/replicadb-cluster}
RUN_DIR=/run/replicadb-cluster
LOG_DIR=$STATE_DIR/logs
KUBECONFIG_ADMIN=$STATE_DIR/admin.kubeconfig

# Networks. All of them exist only on this machine: the bridge is created by up.sh and the
# pods hang off it. The API server listens on the bridge's own address so that pods reach it
# directly (the `kubernetes` Service endpoint may not be loopback).
BRIDGE=replicadb0
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
BRIDGE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
NODE_NAME=replicadb-node
CONTAINERD_SOCK=$RUN_DIR/containerd/containerd.sock
# containerd's root holds the imported images, so it is a cache: a warm start then imports
# nothing. Containers and pod sandboxes never outlive a run (down.sh and up.sh remove them).
CONTAINERD_ROOT=$CACHE_ROOT/containerd
IMPORTED_DIR=$CACHE_ROOT/containerd.imported
KUBELET_ROOT=$STATE_DIR/kubelet
CNI_CONF_DIR=$STATE_DIR/cni/net.d
CNI_BIN_DIR=/usr/lib/cni

# The components this cluster runs, in start order; down.sh stops them in reverse.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

# Debian packages the cluster needs at run time and for building images.
CLUSTER_PACKAGES=(etcd-server containerd runc containernetworking-plugins iptables conntrack
  buildah debootstrap openssl iproute2 util-linux ca-certificates curl
  # kind's provider here, and the CNI plugin that lets kind's nodes find each other by name
  podman golang-github-containernetworking-plugin-dnsname)

export PATH=$BIN_DIR:$ADDON_BIN_DIR:/usr/local/go/bin:$PATH

# Seconds on progress lines count from the first script of a run (up.sh passes it down).
export _t0=${_t0:-$(date +%s)}

# step MESSAGE: one progress line, with seconds since the script started.
step() {
  printf '==> [%4ss] %s\n' "$(($(date +%s) - _t0))" "$*"
}

# fail COMPONENT [LOGFILE [WHY]]: a clear error that names what failed, plus the tail of its
# log.
fail() {
  local component=$1 log=${2:-} why=${3:-}
  printf '\nerror: %s failed%s\n' "$component" "${why:+: $why}" >&2
  if [[ -n $log && -s $log ]]; then
    printf -- '--- last 40 lines of %s ---\n' "$log" >&2
    tail -n 40 "$log" >&2
    printf -- '---\n' >&2
  fi
  exit 1
}

# run_logged COMPONENT LOGFILE CMD...: runs a long command with its output appended to a log
# file, and fails naming the component if it does not succeed.
run_logged() {
  local component=$1 log=$2
  shift 2
  mkdir -p "$(dirname "$log")"
  "$@" >>"$log" 2>&1 || fail "$component" "$log"
}

require_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: the local cluster needs root (network namespaces, mounts, iptables)" >&2
    exit 1
  fi
}

# debian_mirror: the Debian archive this machine's apt already uses, so image builds reach the
# same registry (no host name is hard-coded here).
debian_mirror() {
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    grep -v -- '-security' | grep -oE 'https?://[^ ]+/debian/?' | head -n1 || true)
  if [[ -z $uri ]]; then
    echo "error: no Debian mirror found in /etc/apt sources" >&2
    exit 1
  fi
  echo "${uri%/}"
}

# Images. The same names serve the kind path (e2e/kind.mk loads them with `kind load`).
BASE_IMAGE_REF=localhost/debian:$DEBIAN_SUITE
PAUSE_IMAGE=localhost/replicadb/pause:local
COREDNS_IMAGE=localhost/replicadb/coredns:$COREDNS_VERSION
LOCAL_PATH_IMAGE=localhost/replicadb/local-path-provisioner:$LOCAL_PATH_VERSION
INSTANCE_IMAGE=${REPLICADB_INSTANCE_IMAGE:-localhost/replicadb/instance:dev}
OPERATOR_IMAGE=${REPLICADB_OPERATOR_IMAGE:-localhost/replicadb/operator:dev}
# The instance image under a second tag, for rolling updates in e2e: tagged in containerd
# after import (images.sh), never built or stored twice.
INSTANCE_NEXT_IMAGE=${REPLICADB_INSTANCE_NEXT_IMAGE:-localhost/replicadb/instance:dev-next}

# buildah keeps its images and layer cache beside the other caches; its run-time state lives
# under /run so that down.sh can drop it together with any mount a killed build left.
BUILDAH_ROOT=$CACHE_ROOT/buildah
BUILDAH_RUNROOT=/run/replicadb-buildah
buildah_() {
  buildah --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT" --storage-driver overlay "$@"
}

# ctr_ ARGS...: containerd's own client, on the cluster's socket and Kubernetes' namespace.
ctr_() {
  ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"
}

# kind on this machine (e2e/cluster/kind-image.sh, e2e/kind_cluster.py): the kind binary, and
# the image store of the podman that kind drives (node images are a cache like the others).
KIND_VERSION=${KIND_VERSION:-v0.30.0}
KIND_CACHE=$CACHE_ROOT/kind
KIND_BIN_DIR=$CACHE_ROOT/kind-$KIND_VERSION/bin
KIND_GRAPHROOT=$KIND_CACHE/storage
KIND_RUNROOT=/run/replicadb-kind/storage
KIND_STORAGE_CONF=$KIND_CACHE/storage.conf
KIND_NODE_REPO=localhost/replicadb/kind-node
