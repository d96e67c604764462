#!/usr/bin/env bash
# Installs the Debian packages the local cluster needs (only those missing) and checks for the
# Go toolchain that builds the Kubernetes components.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/common.sh"

"$SCRIPT_DIR/../../scripts/install-system-packages.sh" "${CLUSTER_PACKAGES[@]}" ||
  fail "apt install of the cluster packages (${CLUSTER_PACKAGES[*]})"
if ! command -v go >/dev/null; then
  fail "Go toolchain (go is not on PATH; the Kubernetes components are built from source with it)"
fi
