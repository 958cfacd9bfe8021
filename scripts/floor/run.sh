#!/usr/bin/env bash
# The floor of a userspace gateway on this machine (docs/PERFORMANCE.md, issue
# 17 round 4c): traffic between two namespaces through a third, alternately
# forwarded by Linux (ip_forward) and by forwarder.c (one C process on two
# AF_PACKET sockets, nothing else), ROUNDS times each, and the ratios.
#   run.sh [ROUNDS] [SECONDS] rr    sockperf ping-pong p50 (software checksums
#                                   and segmentation: the forwarder has no vnet header)
#   run.sh [ROUNDS] [SECONDS] tcp   iperf3 Gbit/s and CPU s per GB (the forwarder's
#                                   process + the machine's softirq; Linux: softirq),
#                                   offloads on, the forwarder with virtio-net headers
# Root; needs cc, sockperf, iperf3, ethtool. Makes the namespaces mgfw-a,
# mgfw-b, mgfw-f and removes them (and its processes) on exit.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-3}
MODE=${3:-rr}
case "$MODE" in rr|tcp) ;; *) echo "run.sh: mode must be rr or tcp" >&2; exit 2;; esac
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
# rr: checksums and segmentation in software (the forwarder then carries no virtio-net header).
off() { [ "$MODE" = rr ] && { ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }; return 0; }
for x in "$A mgfwa0" "$B mgfwb0"; do set -- $x; off $1 $2; ip -n $1 link set $2 up; done
for i in mgfwa1 mgfwb1; do ip -n $F link set $i address $GW; off $F $i; ip -n $F link set $i up; done
ip -n $A addr add 10.71.0.2/24 dev mgfwa0; ip -n $A route add default via 10.71.0.1
ip -n $B addr add 10.72.0.2/24 dev mgfwb0; ip -n $B route add default via 10.72.0.1
ip -n $A neigh replace 10.71.0.1 lladdr $GW dev mgfwa0 nud permanent
ip -n $B neigh replace 10.72.0.1 lladdr $GW dev mgfwb0 nud permanent
MA=$(ip -n $A -br link show mgfwa0 | awk '{print $3}'); MB=$(ip -n $B -br link show mgfwb0 | awk '{print $3}')
ticks() { local t=0; [ -n "$FP" ] && t=$(awk '{print $14 + $15}' /proc/$FP/stat); echo $(( t + $(awk '/^cpu /{print $7 + $8}' /proc/stat) )); }
if [ "$MODE" = rr ]; then
  ip netns exec $B sockperf server -i 10.72.0.2 >/dev/null 2>&1 & SP=$!
  measure() { ip netns exec $A sockperf ping-pong -i 10.72.0.2 -t "$SECONDS_PER_RUN" 2>&1 | awk '/percentile 50.000/{print $NF}'; }
  echo "round  linux p50 us  forwarder p50 us  forwarder/linux  added us"
else
  ip netns exec $B iperf3 -s -B 10.72.0.2 >/dev/null 2>&1 & SP=$!
  hz=$(getconf CLK_TCK)
  # Gbit/s and CPU seconds per GB: the forwarder's process (none for Linux) and the machine's softirq.
  measure() {
    local t0 t1 out
    t0=$(ticks)
    out=$(ip netns exec $A iperf3 -c 10.72.0.2 -t "$SECONDS_PER_RUN" -J 2>/dev/null)
    t1=$(ticks)
    echo "$out" | python3 -c "import json,sys; e=json.load(sys.stdin)['end']['sum_received']; print(e['bits_per_second']/1e9, ($t1-$t0)/$hz/(e['bytes']/1e9))"
  }
  echo "round  linux Gbit/s  CPU s/GB  forwarder Gbit/s  CPU s/GB  rate ratio  CPU ratio"
fi
sleep 0.5
for r in $(seq 1 "$ROUNDS"); do
  ip -n $F addr add 10.71.0.1/24 dev mgfwa1; ip -n $F addr add 10.72.0.1/24 dev mgfwb1; ip netns exec $F sysctl -qw net.ipv4.ip_forward=1
  l=$(measure)
  ip -n $F addr flush dev mgfwa1; ip -n $F addr flush dev mgfwb1; ip netns exec $F sysctl -qw net.ipv4.ip_forward=0
  ip netns exec $F "$work/forwarder" mgfwa1 mgfwb1 "$MA" "$MB" $GW $([ "$MODE" = tcp ] && echo vnet) & FP=$!
  sleep 0.3
  f=$(measure)
  kill "$FP"; wait "$FP" 2>/dev/null || true; FP=''
  if [ "$MODE" = rr ]; then
    awk -v r="$r" -v l="$l" -v f="$f" 'BEGIN { if (l == "" || f == "") { print r "  (no result: " l " / " f ")"; exit } printf "%5d  %12.1f  %16.1f  %15.2f  %8.1f\n", r, l, f, f / l, f - l }'
  else
    awk -v r="$r" -v l="$l" -v f="$f" 'BEGIN { split(l, a, " "); split(f, b, " "); if (a[1] == "" || b[1] == "") { print r "  (no result)"; exit } printf "%5d  %12.2f  %8.3f  %16.2f  %8.3f  %10.2f  %9.2f\n", r, a[1], a[2], b[1], b[2], b[1] / a[1], b[2] / a[2] }'
  fi
done
