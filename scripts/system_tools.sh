#!/usr/bin/env bash
# The system tools the tests drive for real, installed from Debian when missing (as root;
# otherwise a warning names them): tcpdump and tshark (sniff), curl (benchmarks, shims),
# iptables and ip (iproute2; the real backend's pod network: `--pod-network netns`), busybox
# (sniff's node-mode PID lookup is also tested under busybox sh/grep, what Alpine-based debug
# images ship),
# chromium (the dashboard test loads Envoy's admin page headless through the dashboard's
# port-forward). Called by `make test`, so the README's test command works on a fresh machine
# and in CI alike.
set -euo pipefail

need=()
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v busybox >/dev/null 2>&1 || need+=(busybox)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "warning: ${need[*]} missing and cannot be installed here (not root with apt);" \
       "the tests that need them will fail" >&2
fi
