#!/bin/sh
# Started as /usr/local/bin/kube-proxy: picks the iptables backend with more rules in the
# node's network namespace (as kind's node entrypoint and upstream's iptables-wrapper do),
# then runs the real kube-proxy with the same arguments.
set -eu
legacy=$( (iptables-legacy-save || true) 2>/dev/null | grep -c '^-' || true)
nft=$( (iptables-nft-save || true) 2>/dev/null | grep -c '^-' || true)
mode=nft
if [ "$legacy" -ge "$nft" ]; then mode=legacy; fi
update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
exec /usr/local/bin/kube-proxy.bin "$@"
