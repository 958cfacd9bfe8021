// The smallest userspace forwarder: one process, two AF_PACKET sockets, poll,
// recv, rewrite the MAC addresses, send. No isolation, no policy, no session,
// no copy of its own. scripts/floor/run.sh measures round trips through it
// against Linux forwarding on the same veth pairs: the floor any userspace
// gateway on packet sockets starts from on a machine (docs/PERFORMANCE.md,
// issue 17 round 4c). Usage: forwarder IF_A IF_B MAC_OF_HOST_A MAC_OF_HOST_B GATEWAY_MAC [vnet]
// (vnet: virtio-net headers on both sockets, so TSO/GSO super-frames cross whole, as in microgate)
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <sys/socket.h>
static int vnet; // 1: frames carry a 10-byte virtio_net_hdr (GSO super-frames and checksum offload cross whole)
static int open_ps(const char *ifn) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
  struct sockaddr_ll sll = {0}; sll.sll_family = AF_PACKET; sll.sll_protocol = htons(ETH_P_ALL); sll.sll_ifindex = if_nametoindex(ifn);
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); exit(1); }
  struct packet_mreq m = {0}; m.mr_ifindex = sll.sll_ifindex; m.mr_type = PACKET_MR_PROMISC; setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &m, sizeof m);
  int one = 1; setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (vnet && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) { perror("PACKET_VNET_HDR"); exit(1); }
  int sz = 4 << 20; setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz); setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
  return fd;
}
static void mac(const char *s, unsigned char *m) { sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", m, m+1, m+2, m+3, m+4, m+5); }
int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) { fprintf(stderr, "usage: forwarder IF_A IF_B MAC_OF_HOST_A MAC_OF_HOST_B GATEWAY_MAC [vnet]\n"); return 2; }
  vnet = argc == 7;
  const int h = vnet ? 10 : 0;
  int fa = open_ps(argv[1]), fb = open_ps(argv[2]); unsigned char ma[6], mb[6], gw[6]; mac(argv[3], ma); mac(argv[4], mb); mac(argv[5], gw);
  unsigned char buf[65536]; struct pollfd p[2] = {{fa, POLLIN}, {fb, POLLIN}};
  for (;;) {
    poll(p, 2, -1);
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      for (;;) {
        ssize_t n = recv(p[i].fd, buf, sizeof buf, 0); if (n <= 0) break;
        if (n < h + 14 || memcmp(buf + h, gw, 6) != 0) continue;       // only frames to the gateway
        memcpy(buf + h, i == 0 ? mb : ma, 6); memcpy(buf + h + 6, gw, 6);
        send(i == 0 ? fb : fa, buf, n, 0);
      }
    }
  }
}
