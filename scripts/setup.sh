#!/usr/bin/env bash
# microgate: idempotent setup of a fresh Debian 12 machine (run as root).
#   1. Debian packages the lab, the tests and the benchmark need (installed only if missing)
#   2. npm dependencies of the project (skipped when node_modules matches package-lock.json)
#   3. /dev/net/tun (the TAP devices of microgate's NIC drivers)
# Quiet by default: one line per step. MICROGATE_SETUP_VERBOSE=1 (or -v) shows the tools' output.
set -euo pipefail

verbose=${MICROGATE_SETUP_VERBOSE:-0}
[ "${1:-}" = "-v" ] && verbose=1
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
log=$(mktemp /tmp/microgate-setup.XXXXXX.log)
trap 'rm -f "$log"' EXIT

step() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
# Run a command quietly; on failure show what it printed.
run() {
  if [ "$verbose" = 1 ]; then "$@"; return; fi
  if ! "$@" >"$log" 2>&1; then
    printf 'setup: command failed: %s\n' "$*" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

[ "$(id -u)" = 0 ] || die "must run as root"

# ---- 1. Debian packages ----------------------------------------------------
packages=(iproute2 iperf3 nftables iputils-ping traceroute tcpdump procps util-linux kmod ethtool
          hping3 nmap curl python3-scapy netcat-openbsd ca-certificates sockperf arping netsniff-ng
          tshark busybox wireguard-go wireguard-tools
          nginx libnginx-mod-http-dav-ext openssl chromium python3-prometheus-client keepalived
          gcc libc6-dev)  # gcc: scripts/floor/run.sh builds its C forwarder
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  step "debian packages: all ${#packages[@]} present"
else
  step "debian packages: installing ${missing[*]}"
  run apt-get update
  installable=()
  for p in "${missing[@]}"; do
    candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
      printf 'setup: warning: package %s is not available from apt, skipped\n' "$p" >&2
    else
      installable+=("$p")
    fi
  done
  if [ ${#installable[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # tshark (reads back `microgate trace export --format pcapng`) asks whether non-root users may
    # capture; answer no without asking.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    # nginx is the lab's NAS and keepalived the HA lab's VRRP engine, both started by the lab in
    # namespaces: their packages must not start a server on the host. Without a policy-rc.d of the machine's own, one that forbids starting
    # services is in place for the install (the standard Debian mechanism), then removed.
    policy_tmp=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_tmp=1
    fi
    run apt-get install -y --no-install-recommends "${installable[@]}" || { [ -n "$policy_tmp" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
    [ -n "$policy_tmp" ] && rm -f /usr/sbin/policy-rc.d
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl disable nginx >/dev/null 2>&1 || true
      systemctl disable keepalived >/dev/null 2>&1 || true
    fi
  fi
fi

# ---- 2. npm dependencies ---------------------------------------------------
cd "$root"
stamp=node_modules/.microgate-setup-stamp
if [ -f package-lock.json ]; then
  want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    step "npm dependencies: up to date"
  elif [ -d node_modules ] && [ -f node_modules/.package-lock.json ] && npm ls --all >/dev/null 2>&1; then
    # Installed by someone else and consistent with the lockfile: don't wipe it, just record it.
    echo "$want" > "$stamp"
    step "npm dependencies: up to date (stamp recorded)"
  else
    step "npm dependencies: npm ci"
    run npm ci --no-audit --no-fund
    echo "$want" > "$stamp"
  fi
else
  step "npm dependencies: npm install (no package-lock.json)"
  run npm install --no-audit --no-fund
fi

# ---- 3. /dev/net/tun -------------------------------------------------------
if [ -c /dev/net/tun ]; then
  step "/dev/net/tun: present"
else
  modprobe tun >/dev/null 2>&1 || true
  if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net
    mknod /dev/net/tun c 10 200
    chmod 0666 /dev/net/tun
  fi
  [ -c /dev/net/tun ] || die "/dev/net/tun could not be created"
  step "/dev/net/tun: created"
fi

step "done"
