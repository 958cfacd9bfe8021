#!/usr/bin/env bash
# The floor of a userspace gateway on this machine (docs/PERFORMANCE.md, issue
# 17 round 4c): sockperf ping-pong between two namespaces through a third,
# alternately forwarded by Linux (ip_forward) and by forwarder.c (one C
# process on two AF_PACKET sockets, nothing else), ROUNDS times each; prints
# each p50 and the ratios. Root; needs cc, sockperf, ethtool. Makes the
# namespaces mgfw-a, mgfw-b, mgfw-f and removes them (and its processes) on exit.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/mg-floor.XXXXXX)
A=mgfw-a; B=mgfw-b; F=mgfw-f; GW=02:00:00:00:00:01
FP=''; SP=''
cleanup() {
  [ -n "$FP" ] && kill "$FP" 2>/dev/null || true
  [ -n "$SP" ] && kill "$SP" 2>/dev/null || true
  for n in $A $B $F; do ip netns del $n 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/forwarder" "$here/forwarder.c"
for n in $A $B $F; do ip netns del $n 2>/dev/null || true; ip netns add $n; ip -n $n link set lo up; done
ip -n $A link add mgfwa0 type veth peer name mgfwa1 netns $F
ip -n $B link add mgfwb0 type veth peer name mgfwb1 netns $F
# Checksums and segmentation in software: the forwarder carries no virtio-net header.
for x in "$A mgfwa0" "$B mgfwb0"; do set -- $x; ip netns exec $1 ethtool -K $2 tx off tso off gso off gro off >/dev/null 2>&1 || true; ip -n $1 link set $2 up; done
for i in mgfwa1 mgfwb1; do ip -n $F link set $i address $GW; ip netns exec $F ethtool -K $i tso off gso off gro off >/dev/null 2>&1 || true; ip -n $F link set $i up; done
ip -n $A addr add 10.71.0.2/24 dev mgfwa0; ip -n $A route add default via 10.71.0.1
ip -n $B addr add 10.72.0.2/24 dev mgfwb0; ip -n $B route add default via 10.72.0.1
ip -n $A neigh replace 10.71.0.1 lladdr $GW dev mgfwa0 nud permanent
ip -n $B neigh replace 10.72.0.1 lladdr $GW dev mgfwb0 nud permanent
MA=$(ip -n $A -br link show mgfwa0 | awk '{print $3}'); MB=$(ip -n $B -br link show mgfwb0 | awk '{print $3}')
ip netns exec $B sockperf server -i 10.72.0.2 >/dev/null 2>&1 & SP=$!
sleep 0.5
p50() { ip netns exec $A sockperf ping-pong -i 10.72.0.2 -t "$SECONDS_PER_RUN" 2>&1 | awk '/percentile 50.000/{print $NF}'; }
echo "round  linux p50 us  forwarder p50 us  forwarder/linux  added us"
for r in $(seq 1 "$ROUNDS"); do
  ip -n $F addr add 10.71.0.1/24 dev mgfwa1; ip -n $F addr add 10.72.0.1/24 dev mgfwb1; ip netns exec $F sysctl -qw net.ipv4.ip_forward=1
  l=$(p50)
  ip -n $F addr flush dev mgfwa1; ip -n $F addr flush dev mgfwb1; ip netns exec $F sysctl -qw net.ipv4.ip_forward=0
  ip netns exec $F "$work/forwarder" mgfwa1 mgfwb1 "$MA" "$MB" $GW & FP=$!
  sleep 0.3
  f=$(p50)
  kill "$FP"; wait "$FP" 2>/dev/null || true; FP=''
  awk -v r="$r" -v l="$l" -v f="$f" 'BEGIN { if (l == "" || f == "") { print r "  (no result: " l " / " f ")"; exit } printf "%5d  %12.1f  %16.1f  %15.2f  %8.1f\n", r, l, f, f / l, f - l }'
done
