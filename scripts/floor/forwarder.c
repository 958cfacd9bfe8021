// The smallest userspace forwarder: one process, two AF_PACKET sockets, poll,
// recv, rewrite the MAC addresses, send. No isolation, no policy, no session,
// no copy of its own. scripts/floor/run.sh measures round trips through it
// against Linux forwarding on the same veth pairs: the floor any userspace
// gateway on packet sockets starts from on a machine (docs/PERFORMANCE.md,
// issue 17 round 4c). Usage: forwarder IF_A IF_B MAC_OF_HOST_A MAC_OF_HOST_B GATEWAY_MAC [vnet|ring]
// (vnet: virtio-net headers on both sockets, so TSO/GSO super-frames cross whole, as in microgate;
// ring: each socket receives through a TPACKET_V2 ring (as microgate's packet links) and the
// frames of one pass over a ring leave by one sendmmsg straight from the ring, no copy at all:
// the best a single userspace process does with small frames here, round 5)
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
#include <sys/mman.h>
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
enum { FRAMES = 2048, FRAME = 2048, BATCH = 64 };
static unsigned char *ring_of(int fd) {
  int v = TPACKET_V2;
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) { perror("PACKET_VERSION"); exit(1); }
  struct tpacket_req req = { .tp_block_size = 64 * 1024, .tp_frame_size = FRAME, .tp_block_nr = FRAMES * FRAME / (64 * 1024), .tp_frame_nr = FRAMES };
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) { perror("PACKET_RX_RING"); exit(1); }
  void *m = mmap(NULL, (size_t)FRAMES * FRAME, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) { perror("mmap"); exit(1); }
  return m;
}
// Ring mode: take up to BATCH frames of each ring, rewrite their MACs in place, send them by one sendmmsg from the ring, hand them back.
static _Noreturn void ring_forward(int fa, int fb, const unsigned char *ma, const unsigned char *mb, const unsigned char *gw) {
  unsigned char *ring[2] = { ring_of(fa), ring_of(fb) }; int fd[2] = { fa, fb }; unsigned cur[2] = { 0, 0 };
  struct mmsghdr msgs[BATCH]; struct iovec iov[BATCH]; struct tpacket2_hdr *held[BATCH];
  struct pollfd p[2] = {{fa, POLLIN}, {fb, POLLIN}};
  for (;;) {
    int any = 0;
    for (int i = 0; i < 2; i++) {
      int n = 0;
      while (n < BATCH) {
        struct tpacket2_hdr *h = (struct tpacket2_hdr *)(ring[i] + (size_t)cur[i] * FRAME);
        if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
        cur[i] = (cur[i] + 1) % FRAMES;
        unsigned char *f = (unsigned char *)h + h->tp_mac;
        if (h->tp_snaplen < 14 || memcmp(f, gw, 6) != 0) { __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE); continue; }
        memcpy(f, i == 0 ? mb : ma, 6); memcpy(f + 6, gw, 6);
        iov[n] = (struct iovec){ f, h->tp_snaplen };
        memset(&msgs[n], 0, sizeof msgs[n]); msgs[n].msg_hdr.msg_iov = &iov[n]; msgs[n].msg_hdr.msg_iovlen = 1;
        held[n++] = h;
      }
      if (n == 0) continue;
      any = 1;
      for (int k = 0; k < n;) { int r = sendmmsg(fd[1 - i], msgs + k, n - k, 0); if (r <= 0) break; k += r; }
      for (int k = 0; k < n; k++) __atomic_store_n(&held[k]->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    }
    if (!any) poll(p, 2, -1);
  }
}
int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) { fprintf(stderr, "usage: forwarder IF_A IF_B MAC_OF_HOST_A MAC_OF_HOST_B GATEWAY_MAC [vnet|ring]\n"); return 2; }
  vnet = argc == 7 && strcmp(argv[6], "vnet") == 0;
  if (argc == 7 && !vnet && strcmp(argv[6], "ring") != 0) { fprintf(stderr, "forwarder: the last argument is vnet or ring\n"); return 2; }
  const int h = vnet ? 10 : 0;
  int fa = open_ps(argv[1]), fb = open_ps(argv[2]); unsigned char ma[6], mb[6], gw[6]; mac(argv[3], ma); mac(argv[4], mb); mac(argv[5], gw);
  if (argc == 7 && !vnet) ring_forward(fa, fb, ma, mb, gw);
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
