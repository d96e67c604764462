#!/usr/bin/env bash
# The e2e layer of `make test`: brings the local cluster up, runs the given test command with
# KUBECONFIG set, and always brings the cluster down again (on failure and on Ctrl-C too).
# Prints how long each phase took and the machine's peak memory use meanwhile.
#   e2e-ci.sh TEST_COMMAND...
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/common.sh"

# sample_memory FILE: every second, the machine's used memory (total - available) in MiB,
# keeping the highest value in FILE.
sample_memory() {
  local file=$1 peak=0 used
  while true; do
    used=$(awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print int((t-a)/1024)}' /proc/meminfo)
    if ((used > peak)); then
      peak=$used
      echo "$peak" >"$file"
    fi
    sleep 1
  done
}

PEAK_FILE=$(mktemp)
sample_memory "$PEAK_FILE" &
SAMPLER=$!

finish() {
  local rc=$?
  trap - EXIT INT TERM
  local t_down=$SECONDS
  "$SCRIPT_DIR/down.sh" || rc=1
  kill "$SAMPLER" 2>/dev/null || true
  step "e2e-ci: cluster down in $((SECONDS - t_down))s; peak memory used on the machine: $(cat "$PEAK_FILE") MiB"
  rm -f "$PEAK_FILE"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

t_up=$SECONDS
"$SCRIPT_DIR/up.sh"
step "e2e-ci: cluster up in $((SECONDS - t_up))s"
t_test=$SECONDS
KUBECONFIG=$KUBECONFIG_ADMIN "$@"
step "e2e-ci: e2e tests took $((SECONDS - t_test))s"
