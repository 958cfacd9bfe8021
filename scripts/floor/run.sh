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
#   run.sh [ROUNDS] [SECONDS] small 64-byte UDP frames at overload (trafgen, one sender
#                                   per CPU, unpaced, as microgate bench's overload trial):
#                                   frames/s delivered and CPU s per M frames, the
#                                   forwarder in ring mode (receive rings, sendmmsg from them);
#                                   Linux twice: plain forwarding, and with a stateful filter
#                                   and masquerade in nftables (what microgate bench's
#                                   reference does)
# Root; needs cc, sockperf, iperf3, ethtool, trafgen. Makes the namespaces mgfw-a,
# mgfw-b, mgfw-f and removes them (and its processes) on exit.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-3}
MODE=${3:-rr}
case "$MODE" in rr|tcp|small) ;; *) echo "run.sh: mode must be rr, tcp or small" >&2; exit 2;; esac
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
if [ "$MODE" = small ]; then
  hz=$(getconf CLK_TCK)
  PKT="{ eth(da=$GW, sa=$MA), ipv4(saddr=10.71.0.2, daddr=10.72.0.2, ttl=64), udp(sp=40000, dp=9), fill(0x00, 18) }"
  # kpps delivered to B and CPU seconds per M frames: the forwarder's process (none for Linux) and the machine's softirq.
  own() { [ -n "$FP" ] && awk '{print $14 + $15}' /proc/$FP/stat || echo 0; }
  measure() {
    local t0 t1 r0 r1 o0 o1
    t0=$(ticks); o0=$(own); r0=$(ip netns exec $B cat /sys/class/net/mgfwb0/statistics/rx_packets)
    ip netns exec $A timeout -s INT "$SECONDS_PER_RUN" trafgen -o mgfwa0 -P "$(nproc)" -C "$PKT" >/dev/null 2>&1 || true
    sleep 0.2
    t1=$(ticks); o1=$(own); r1=$(ip netns exec $B cat /sys/class/net/mgfwb0/statistics/rx_packets)
    awk -v d=$((r1 - r0)) -v c=$((t1 - t0)) -v o=$((o1 - o0)) -v s="$SECONDS_PER_RUN" -v hz="$hz" 'BEGIN { print d / s / 1e3, (c / hz) / (d / 1e6), 100 * o / hz / s }'
  }
  NFT='table inet mgfw {
  chain forward { type filter hook forward priority filter; policy drop; ct state established,related accept; ct state invalid drop; iifname "mgfwa1" oifname "mgfwb1" accept; }
  chain post { type nat hook postrouting priority srcnat; oifname "mgfwb1" meta nfproto ipv4 masquerade; }
}'
  echo "round  linux kpps  CPU s/Mpkt  +nft kpps  CPU s/Mpkt  forwarder kpps  CPU s/Mpkt  its own CPU %  rate / linux, / +nft  CPU / linux, / +nft"
elif [ "$MODE" = rr ]; then
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
  if [ "$MODE" = small ]; then
    ip netns exec $F nft -f - <<<"$NFT"; ln=$(measure); ip netns exec $F nft delete table inet mgfw
  fi
  ip -n $F addr flush dev mgfwa1; ip -n $F addr flush dev mgfwb1; ip netns exec $F sysctl -qw net.ipv4.ip_forward=0
  ip netns exec $F "$work/forwarder" mgfwa1 mgfwb1 "$MA" "$MB" $GW $([ "$MODE" = tcp ] && echo vnet) $([ "$MODE" = small ] && echo ring) & FP=$!
  sleep 0.3
  f=$(measure)
  kill "$FP"; wait "$FP" 2>/dev/null || true; FP=''
  if [ "$MODE" = rr ]; then
    awk -v r="$r" -v l="$l" -v f="$f" 'BEGIN { if (l == "" || f == "") { print r "  (no result: " l " / " f ")"; exit } printf "%5d  %12.1f  %16.1f  %15.2f  %8.1f\n", r, l, f, f / l, f - l }'
  elif [ "$MODE" = small ]; then
    awk -v r="$r" -v l="$l" -v n="$ln" -v f="$f" 'BEGIN { split(l, a, " "); split(n, c, " "); split(f, b, " "); if (a[1] == "" || c[1] == "" || b[1] == "") { print r "  (no result)"; exit }
      printf "%5d  %10.0f  %10.2f  %9.0f  %10.2f  %14.0f  %10.2f  %13.0f  %8.2f, %5.2f  %8.2f, %5.2f\n", r, a[1], a[2], c[1], c[2], b[1], b[2], b[3], b[1] / a[1], b[1] / c[1], b[2] / a[2], b[2] / c[2] }'
  else
    awk -v r="$r" -v l="$l" -v f="$f" 'BEGIN { split(l, a, " "); split(f, b, " "); if (a[1] == "" || b[1] == "") { print r "  (no result)"; exit } printf "%5d  %12.2f  %8.3f  %16.2f  %8.3f  %10.2f  %9.2f\n", r, a[1], a[2], b[1], b[2], b[1] / a[1], b[2] / a[2] }'
  fi
done
