#!/usr/bin/env bash
# Stops the local cluster and removes everything it put on this machine: processes (the
# components, containerd's shims and every container in the kubepods cgroups), mounts, network
# namespaces, the bridge and veths, iptables chains (KUBE-*, CNI-*, REPLICADB-*), cgroups,
# changed kernel settings and the cluster's state. Caches (binaries, images) stay.
#
# Safe to run at any time, also after a run killed half-way; up.sh runs it first.
#   down.sh [--quiet]   (--quiet: print only what was actually found and removed)
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/common.sh"

QUIET=false
[[ ${1:-} == --quiet ]] && QUIET=true

say() {
  $QUIET || step "$@"
}

found() {
  step "cleanup: $*"
}

# our_pids: processes of this cluster, known by what they run: our built binaries, or
# containerd, its shims, runc and etcd from Debian with the cluster's paths on their command
# line. Never by name alone: other people's etcd or postgres on this machine are not ours.
our_pids() {
  local dir pid exe cmdline
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    exe=$(readlink "$dir/exe" 2>/dev/null || true)
    # Only processes of this cluster (their command lines name its folders): the layer below
    # the cluster (tests/apiserver) runs the same kube-apiserver binary, from /tmp, and may
    # be running for somebody else right now.
    case $exe in
    "$BIN_DIR"/* | "$ADDON_BIN_DIR"/* | */containerd | */containerd-shim-runc-v2 | */runc | */etcd)
      cmdline=$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline" || true)
      case $cmdline in
      *"$STATE_DIR"* | *"$RUN_DIR"*) echo "$pid" ;;
      esac
      ;;
    esac
  done
}

# stop_components NAME...: SIGTERM to each running one at once, up to 10 s for them to exit
# cleanly, then SIGKILL.
stop_components() {
  local name pid pidfile pids=() names=()
  for name in "$@"; do
    pidfile=$STATE_DIR/pids/$name
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    rm -f "$pidfile"
    kill -TERM "$pid" 2>/dev/null || continue
    pids+=("$pid")
    names+=("$name")
  done
  ((${#pids[@]})) || return 0
  say "stopping ${names[*]}"
  local alive
  for _ in $(seq 1 100); do
    alive=()
    for pid in "${pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi
    done
    ((${#alive[@]})) || return 0
    sleep 0.1
  done
  found "killing pids ${alive[*]}: still running 10 s after SIGTERM"
  kill -KILL "${alive[@]}" 2>/dev/null || true
}

# remove_pods: while containerd still runs, stop and remove every pod sandbox through CRI, so
# that the CNI plugins tear down each pod's veth, address and port mappings themselves.
remove_pods() {
  [[ -S $CONTAINERD_SOCK ]] || return 0
  command -v crictl >/dev/null || return 0
  local pods
  pods=$(timeout 10 crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" pods -q 2>/dev/null || true)
  [[ -n $pods ]] || return 0
  say "removing $(wc -w <<<"$pods") pod sandboxes"
  timeout 60 crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" rmp --all --force >/dev/null 2>&1 || true
}

# kill_kubepods: every process left in a kubepods cgroup (containers whose shim is gone), then
# the cgroups themselves, deepest first.
kill_kubepods() {
  local procs
  procs=$(find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true)
  if [[ -n $procs ]]; then
    found "killing $(wc -w <<<"$procs") container processes left in kubepods cgroups"
    # shellcheck disable=SC2086
    kill -KILL $procs 2>/dev/null || true
    sleep 1
  fi
  local dir
  for dir in /sys/fs/cgroup/*/kubepods; do
    [[ -d $dir ]] || continue
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $dir ]] || found "could not remove cgroup $dir (processes still in it?)"
  done
}

stop_everything() {
  # kubelet first, so that it restarts nothing while the pods go; the API server and etcd
  # last, so that the others stop without a storm of connection errors.
  stop_components kube-proxy kubelet kube-scheduler kube-controller-manager
  remove_pods
  stop_components containerd kube-apiserver
  stop_components etcd
  local pid leftovers
  leftovers=$(our_pids)
  if [[ -n $leftovers ]]; then
    found "stopping leftover processes: $(ps -o comm= -p "$(tr ' \n' ',,' <<<"$leftovers" | sed 's/,*$//')" |
      sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')"
    for pid in $leftovers; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 2
    for pid in $leftovers; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  kill_kubepods
}

# our_mounts: mount points under the cluster's folders and caches (containerd, buildah) or pod
# network namespaces, deepest first.
our_mounts() {
  findmnt -rn -o TARGET | sed 's/\\x20/ /g' |
    grep -E "^($STATE_DIR|$RUN_DIR|$CACHE_ROOT|$BUILDAH_RUNROOT|/run/netns/cni-|/var/run/netns/cni-)(/|$|[0-9a-f-]*$)" |
    sort -r || true
}

unmount_all() {
  local ns
  for ns in /run/netns/cni-*; do
    [[ -e $ns ]] || continue
    found "deleting network namespace ${ns##*/}"
    ip netns delete "${ns##*/}" 2>/dev/null || { umount -l "$ns" 2>/dev/null; rm -f "$ns"; }
  done
  local mounts m
  mounts=$(our_mounts)
  [[ -n $mounts ]] || return 0
  found "unmounting $(wc -l <<<"$mounts") mounts (pod volumes, container root filesystems, shm)"
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done <<<"$mounts"
}

remove_links() {
  local link
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    for link in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link delete "$link" 2>/dev/null || true
    done
    say "deleting bridge $BRIDGE"
    ip link delete "$BRIDGE"
  fi
}

# remove_chains: drops every KUBE-*, CNI-* and REPLICADB-* chain and every rule that jumps to
# one, in each table, for IPv4 and IPv6; other rules on this machine are restored untouched.
remove_chains() {
  local family table saved pattern='(KUBE|CNI|REPLICADB)-'
  for family in iptables ip6tables; do
    command -v "$family-save" >/dev/null || continue
    for table in filter nat mangle raw; do
      saved=$("$family-save" -t "$table" 2>/dev/null || true)
      grep -qE "$pattern" <<<"$saved" || continue
      found "removing $(grep -cE "^:$pattern" <<<"$saved") $family $table chains (KUBE-*, CNI-*, REPLICADB-*)"
      grep -vE "^:$pattern|^-A $pattern|-[jg] $pattern" <<<"$saved" | "$family-restore" -w 5 ||
        fail "$family-restore while removing the cluster's $table chains"
    done
  done
}

# containerd 1.6 puts its shims' sockets under /run/containerd whatever its state folder is.
# Remove the sockets nobody listens on any more, then the folders if that left them empty;
# anything of another containerd stays.
remove_shim_sockets() {
  local sock listening
  [[ -d /run/containerd ]] || return 0
  listening=$(ss -Hxl 2>/dev/null | awk '{print $5}')
  for sock in /run/containerd/s/*; do
    [[ -S $sock ]] || continue
    grep -qxF "$sock" <<<"$listening" || rm -f "$sock"
  done
  rmdir /run/containerd/s /run/containerd/fifo /run/containerd/runc/k8s.io /run/containerd/runc \
    /run/containerd 2>/dev/null || true
}

restore_sysctls() {
  local saved=$STATE_DIR/sysctl.saved line
  [[ -f $saved ]] || return 0
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    if [[ $(sysctl -n "${line%%=*}" 2>/dev/null) != "${line#*=}" ]]; then
      sysctl -qw "$line" 2>/dev/null || true
    fi
  done <"$saved"
  rm -f "$saved"
}

remove_state() {
  local left
  left=$(our_mounts)
  if [[ -n $left ]]; then
    # Never rm -rf through a mount: a pod's hostPath volume could point anywhere.
    printf 'error: still mounted, state left in place:\n%s\n' "$left" >&2
    exit 1
  fi
  rm -rf "$STATE_DIR" "$RUN_DIR" "$BUILDAH_RUNROOT"
}

main() {
  require_root
  stop_everything
  unmount_all
  remove_links
  remove_chains
  remove_shim_sockets
  restore_sysctls
  remove_state
  say "cluster down; caches kept in $CACHE_ROOT"
}

main "$@"
