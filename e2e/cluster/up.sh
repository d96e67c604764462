#!/usr/bin/env bash
# Brings up the local single-node Kubernetes cluster:
#   clear leftovers -> build (cached) -> images (cached) -> bridge + certs -> containerd ->
#   etcd -> kube-apiserver -> controller-manager + scheduler -> kubelet + kube-proxy ->
#   CoreDNS + local-path-provisioner -> node Ready, DNS and storage serving.
# Prints the admin kubeconfig path at the end. e2e/cluster/down.sh undoes all of it.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/common.sh"
source "$SCRIPT_DIR/pki.sh"

# Kernel settings the components change; down.sh puts back the values saved here.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
  net.netfilter.nf_conntrack_max)

# start NAME CMD...: runs a component in its own session (so that it outlives this script and
# make), logging to $LOG_DIR/NAME.log, its pid in $STATE_DIR/pids/NAME.
start() {
  local name=$1
  shift
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/pids/$name"
}

# wait_until NAME TIMEOUT CMD...: polls CMD until it succeeds. Fails naming NAME with the tail
# of its log when NAME's process exits or TIMEOUT seconds pass.
wait_until() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout)) pidfile=$STATE_DIR/pids/$name
  until "$@" >/dev/null 2>&1; do
    if [[ -f $pidfile ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      fail "$name" "$LOG_DIR/$name.log" "the process exited"
    fi
    if ((SECONDS >= deadline)); then
      fail "$name" "$LOG_DIR/$name.log" "not ready after ${timeout}s"
    fi
    sleep 0.5
  done
}

kubectl_() {
  kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"
}

check_ports_free() {
  local port
  for port in 2379 2380 6443 10248 10249 10250 10256 10257 10259; do
    if ss -Htln "sport = :$port" | grep -q .; then
      fail "port check" "" "port $port is already in use: $(ss -Htlnp "sport = :$port" | head -n1)"
    fi
  done
}

# check_networks_free: the pod and service ranges must not already be routed on this machine,
# or the cluster would shadow (or be shadowed by) a real network.
check_networks_free() {
  local cidr routes
  for cidr in "$POD_CIDR" "$SERVICE_CIDR"; do
    routes=$(ip -4 route show match "$cidr" | grep -v '^default' || true)
    if [[ -n $routes ]]; then
      fail "network check" "" "$cidr overlaps a route of this machine: $routes"
    fi
  done
}

save_sysctls() {
  local key
  for key in "${SYSCTLS[@]}"; do
    if [[ -e /proc/sys/${key//.//} ]]; then
      echo "$key=$(sysctl -n "$key")"
    fi
  done >"$STATE_DIR/sysctl.saved"
}

# setup_network: the node's bridge. The API server, kubelet and kube-proxy use its address, and
# the CNI bridge plugin attaches every pod to it, so pods reach the API server directly. A
# filter chain of ours keeps pod traffic on this machine: nothing is forwarded between the
# bridge and any other interface.
setup_network() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$BRIDGE_IP/${NODE_POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
    net.bridge.bridge-nf-call-ip6tables=1
  iptables -N REPLICADB-ISOLATE
  iptables -A REPLICADB-ISOLATE -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
  iptables -A REPLICADB-ISOLATE -o "$BRIDGE" ! -i "$BRIDGE" -j DROP
  iptables -I FORWARD 1 -j REPLICADB-ISOLATE

  mkdir -p "$CNI_CONF_DIR"
  cat >"$CNI_CONF_DIR/10-replicadb.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "replicadb",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$BRIDGE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE_DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
}

start_containerd() {
  step "containerd: starting ($(containerd --version | awk '{print $3}'))"
  mkdir -p "$CONTAINERD_ROOT" "$RUN_DIR/containerd"
  cat >"$STATE_DIR/containerd.toml" <<TOML
version = 2
root = "$CONTAINERD_ROOT"
state = "$RUN_DIR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$RUN_DIR/containerd/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_cdi = false
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower its OOM
  # score: clamp the scores kubelet asks for (-998 for sandboxes) to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE_DIR/containerd-opt"
TOML
  start containerd containerd --config "$STATE_DIR/containerd.toml"
  wait_until containerd 30 ctr_ version
  remove_stale_containers
}

# remove_stale_containers: a run killed before down.sh leaves its pod sandboxes and containers
# in containerd's metadata (its root is a cache). Remove them before kubelet starts, so that a
# new cluster starts with no pods but its own.
remove_stale_containers() {
  local left
  left=$(ctr_ containers ls -q)
  [[ -n $left ]] || return 0
  step "containerd: removing $(wc -l <<<"$left") containers left by an earlier run"
  timeout 60 crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" rmp --all --force >>"$LOG_DIR/containerd.log" 2>&1 || true
  local id
  for id in $(ctr_ containers ls -q); do
    ctr_ tasks kill -s KILL "$id" >/dev/null 2>&1 || true
    ctr_ tasks rm -f "$id" >/dev/null 2>&1 || true
    ctr_ containers rm "$id" >>"$LOG_DIR/containerd.log" 2>&1 || true
  done
}

start_etcd() {
  step "etcd: starting ($(etcd --version | awk 'NR==1{print $3}'))"
  start etcd etcd --name replicadb --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster replicadb=http://127.0.0.1:2380 --listen-metrics-urls "" \
    --snapshot-count 10000 --quota-backend-bytes 2147483648
  wait_until etcd 30 curl -sf http://127.0.0.1:2379/health
}

start_apiserver() {
  step "kube-apiserver: starting on https://$BRIDGE_IP:6443"
  start kube-apiserver kube-apiserver \
    --advertise-address="$BRIDGE_IP" --bind-address="$BRIDGE_IP" --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 \
    --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --tls-cert-file="$PKI_DIR/kube-apiserver.crt" --tls-private-key-file="$PKI_DIR/kube-apiserver.key" \
    --kubelet-certificate-authority="$PKI_DIR/ca.crt" \
    --kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$PKI_DIR/sa.pub" \
    --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI_DIR/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI_DIR/front-proxy-client.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false --event-ttl=1h
  wait_until kube-apiserver 90 kubectl_ get --raw /readyz
}

start_controllers() {
  step "kube-controller-manager, kube-scheduler: starting"
  start kube-controller-manager kube-controller-manager \
    --kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI_DIR/sa.key" --root-ca-file="$PKI_DIR/ca.crt" \
    --cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
    --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false
  start kube-scheduler kube-scheduler \
    --kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false
  wait_until kube-controller-manager 60 curl -skf https://127.0.0.1:10257/healthz
  wait_until kube-scheduler 60 curl -skf https://127.0.0.1:10259/healthz
}

start_kubelet() {
  step "kubelet: starting (cgroupfs driver, containerd at $CONTAINERD_SOCK)"
  mkdir -p "$KUBELET_ROOT"
  # resolvConf "": pods get only the cluster DNS, never this machine's resolver.
  # Eviction thresholds near zero: a test cluster should not evict because a shared disk is full.
  cat >"$STATE_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $BRIDGE_IP
healthzBindAddress: $BRIDGE_IP
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_SVC_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: ""
failSwapOn: false
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
syncFrequency: 10s
fileCheckFrequency: 10s
YAML
  start kubelet kubelet --config="$STATE_DIR/kubelet.yaml" \
    --kubeconfig="$STATE_DIR/kubelet.kubeconfig" --root-dir="$KUBELET_ROOT" \
    --hostname-override="$NODE_NAME" --node-ip="$BRIDGE_IP" --cert-dir="$KUBELET_ROOT/pki"
}

start_kube_proxy() {
  step "kube-proxy: starting (iptables mode)"
  cat >"$STATE_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $BRIDGE_IP
healthzBindAddress: $BRIDGE_IP:10256
metricsBindAddress: $BRIDGE_IP:10249
nodePortAddresses: [$BRIDGE_IP/32]
iptables: {localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 1s}
# Zero: leave this machine's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  start kube-proxy kube-proxy --config="$STATE_DIR/kube-proxy.yaml"
}

# apply_addon FILE: a manifest from addons/ with its @PLACEHOLDERS@ filled in.
apply_addon() {
  sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" -e "s|@LOCAL_PATH_IMAGE@|$LOCAL_PATH_IMAGE|g" \
    -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@DNS_SVC_IP@|$DNS_SVC_IP|g" \
    -e "s|@VOLUME_DIR@|$STATE_DIR/volumes|g" "$SCRIPT_DIR/addons/$1" |
    kubectl_ apply -f - >>"$LOG_DIR/addons.log" 2>&1 || fail "kubectl apply of addons/$1" "$LOG_DIR/addons.log"
}

# wait_rollout NAMESPACE DEPLOYMENT: fails naming the deployment, with its pods' state and
# the kubelet log, when it does not become available.
wait_rollout() {
  local ns=$1 name=$2
  if ! kubectl_ -n "$ns" rollout status "deployment/$name" --timeout=120s >>"$LOG_DIR/addons.log" 2>&1; then
    kubectl_ -n "$ns" get pods -o wide >>"$LOG_DIR/addons.log" 2>&1 || true
    kubectl_ -n "$ns" describe pods >>"$LOG_DIR/addons.log" 2>&1 || true
    fail "$ns/$name rollout" "$LOG_DIR/addons.log" "not available after 120s (see also $LOG_DIR/kubelet.log)"
  fi
}

# on_exit: after a failure, say where the logs are and how to clean up; what was started stays
# so that it can be inspected.
on_exit() {
  local rc=$?
  if ((rc != 0)); then
    echo "logs: $LOG_DIR; \`make cluster-down\` removes what was started" >&2
  fi
}

main() {
  require_root
  trap on_exit EXIT
  step "clearing whatever an earlier run left behind"
  "$SCRIPT_DIR/down.sh" --quiet

  "$SCRIPT_DIR/deps.sh"
  "$SCRIPT_DIR/build.sh"
  "$SCRIPT_DIR/images.sh" build

  step "network: bridge $BRIDGE ($BRIDGE_IP), pods $NODE_POD_CIDR, services $SERVICE_CIDR"
  mkdir -p "$STATE_DIR/pids" "$LOG_DIR" "$STATE_DIR/volumes"
  check_ports_free
  check_networks_free
  save_sysctls
  setup_network
  step "certificates and kubeconfigs (openssl)"
  make_pki

  start_containerd
  # Image import runs beside the control plane's start; pods wait for it below.
  "$SCRIPT_DIR/images.sh" import >"$LOG_DIR/images.log" 2>&1 &
  local import_pid=$!
  start_etcd
  start_apiserver
  start_controllers
  start_kubelet
  start_kube_proxy
  step "waiting for image import"
  wait "$import_pid" || fail "image import" "$LOG_DIR/images.log"
  step "waiting for node $NODE_NAME to be Ready"
  wait_until kubelet 90 kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  wait_until kube-proxy 30 curl -sf "http://$BRIDGE_IP:10256/healthz"

  step "addons: CoreDNS and local-path-provisioner"
  apply_addon coredns.yaml
  apply_addon local-path.yaml
  wait_rollout kube-system coredns
  wait_rollout local-path-storage local-path-provisioner

  step "cluster ready: Kubernetes $K8S_VERSION, node $NODE_NAME"
  echo
  echo "    export KUBECONFIG=$KUBECONFIG_ADMIN"
  echo
}

main "$@"
