/*
 * virtio-net (virtio 1.2 §5.1) workloads: net-echo, net-bench and
 * net-reflect (the responder side: sends probe frames back unchanged, so
 * two VMs on one bridge can exchange frames without a host responder).
 *
 * Probe frame (`frame=` bytes, 60..1514, default 60; no FCS):
 *   0..5   destination ff:ff:ff:ff:ff:ff
 *   6..11  source: the device MAC (VIRTIO_NET_F_MAC) or 02:00:00:00:00:01
 *   12..13 ethertype 0x88b5 (IEEE local experimental)
 *   14..17 "KUMO"
 *   18..25 sequence number, u64 little-endian
 *   26..    zero, up to the frame length
 * A reply is any received frame with ethertype 0x88b5 whose bytes 18..25
 * carry an outstanding sequence number; echoing the frame unchanged works.
 *
 * Receive buffers: `rxbuf=` bytes each (64..2048, default 2048). With `mrg=1`
 * the driver negotiates VIRTIO_NET_F_MRG_RXBUF, so a frame may span several
 * buffers (num_buffers in the first one's header); the workloads then check
 * every reply byte by byte. Frames the driver cannot make sense of (too short,
 * buffers missing, wrong length or contents) are counted in net_rx_bad=.
 */
#include "stats.h"
#include "virtio.h"

#define NET_F_MAC (1ull << 5)
#define NET_F_MRG_RXBUF (1ull << 15)
#define NET_F_CTRL_VQ (1ull << 17)
#define NET_F_MQ (1ull << 22)
#define NET_CTRL_MQ 4
#define NET_CTRL_MQ_VQ_PAIRS_SET 0
#define MAX_PAIRS 4u
#define NET_HDR_LEN 12u          /* struct virtio_net_hdr with VERSION_1 */
#define FRAME_MIN 60u
#define FRAME_MAX 1514u        /* 14-byte header + 1500-byte MTU */
#define ETHERTYPE_HI 0x88
#define ETHERTYPE_LO 0xb5
#define SEQ_OFFSET 18u
#define RX_BUF_LEN 2048u         /* header + 1514-byte frame: enough without MRG_RXBUF */
#define RX_BUF_MIN 64u
#define RX_BUFS 128u
#define TX_BUFS 256u
#define SEQ_RING 4096u           /* > any window: seq % SEQ_RING is unique */

/* One receive/transmit queue pair and its buffers. */
struct net_pair {
  struct virtq rx, tx;
  uint64_t rx_base, tx_base;
  uint16_t rx_buf_of_head[VIRTQ_MAX_SIZE];
  uint16_t tx_buf_of_head[VIRTQ_MAX_SIZE];
  uint16_t tx_free[TX_BUFS];
  unsigned tx_nfree;
  /* Buffers of the frames rx_take() returned, reposted by rx_release(). */
  uint16_t taken[RX_BUFS];
  unsigned ntaken;
  uint64_t rx_frames, tx_frames;
};

struct net {
  struct virtio_dev dev;
  struct net_pair pair[MAX_PAIRS];
  unsigned npairs;
  struct virtq ctrl;
  uint8_t mac[6];
  uint32_t frame_len;
  uint32_t rx_buf_len;
  bool mrg;
  uint8_t frame[FRAME_MAX];        /* a frame reassembled from several buffers */
  uint64_t rx_bad;
  /* Outstanding probes by seq % SEQ_RING: send time, 0 when none. */
  uint64_t sent_tsc[SEQ_RING];
  uint64_t sent, replies, lost, outstanding;
  struct lat_hist rtt;
};

static struct net g_net;

static uint8_t *rx_buf(struct net_pair *p, uint16_t buf) {
  return (uint8_t *)(p->rx_base + (uint64_t)buf * RX_BUF_LEN);
}

static bool rx_post(struct net *n, struct net_pair *p, uint16_t buf) {
  struct virtio_buf b = {(uint64_t)(uintptr_t)rx_buf(p, buf), n->rx_buf_len, true};
  int head = virtq_add(&p->rx, &b, 1);
  if (head < 0) return false;
  p->rx_buf_of_head[head] = buf;
  return true;
}

/* Asks the device for `pairs` queue pairs through the control queue. */
static bool net_set_pairs(struct net *n, unsigned pairs) {
  uint8_t *req = (uint8_t *)page_alloc(4096);
  if (!req) return false;
  req[0] = NET_CTRL_MQ;
  req[1] = NET_CTRL_MQ_VQ_PAIRS_SET;
  req[2] = (uint8_t)pairs;
  req[3] = 0;
  req[64] = 0xff; /* ack */
  struct virtio_buf b[2] = {{(uint64_t)(uintptr_t)req, 4, false}, {(uint64_t)(uintptr_t)(req + 64), 1, true}};
  if (virtq_add(&n->ctrl, b, 2) < 0) return false;
  virtq_kick(&n->ctrl);
  uint16_t head;
  uint32_t len;
  uint64_t deadline = rdtsc() + g_tsc_hz;
  while (!virtq_pop(&n->ctrl, &head, &len)) {
    if (rdtsc() > deadline) {
      print("error=ctrl-timeout\n");
      return false;
    }
    cpu_relax();
  }
  if (len != 1 || req[64] != 0) {
    print("error=ctrl-mq-refused\nctrl_ack=%u\n", req[64]);
    return false;
  }
  return true;
}

static bool net_open(struct net *n) {
  uint64_t frame = arg_u64("frame", FRAME_MIN);
  if (frame < FRAME_MIN || frame > FRAME_MAX) {
    print("error=bad-frame\n");
    return false;
  }
  n->frame_len = (uint32_t)frame;
  uint64_t rxbuf = arg_u64("rxbuf", RX_BUF_LEN);
  if (rxbuf < RX_BUF_MIN || rxbuf > RX_BUF_LEN) {
    print("error=bad-rxbuf\n");
    return false;
  }
  n->rx_buf_len = (uint32_t)rxbuf;
  uint64_t queues = arg_u64("queues", 1);
  if (queues < 1 || queues > MAX_PAIRS) {
    print("error=bad-queues\n");
    return false;
  }
  n->npairs = (unsigned)queues;
  uint64_t wanted = NET_F_MAC | (arg_u64("mrg", 0) ? NET_F_MRG_RXBUF : 0) |
                    (queues > 1 ? NET_F_CTRL_VQ | NET_F_MQ : 0);
  if (!virtio_open(VIRTIO_ID_NET, 0, wanted, &n->dev)) return false;
  n->mrg = (n->dev.features & NET_F_MRG_RXBUF) != 0;
  if (arg_u64("mrg", 0) && !n->mrg) {
    print("error=no-mrg-rxbuf\n");
    return false;
  }
  uint16_t max_pairs = 1;
  if (queues > 1) {
    if ((n->dev.features & (NET_F_CTRL_VQ | NET_F_MQ)) != (NET_F_CTRL_VQ | NET_F_MQ)) {
      print("error=no-mq\n");
      return false;
    }
    max_pairs = mmio_read16(n->dev.device_cfg + 8);
    if (max_pairs < queues) {
      print("error=too-few-pairs\nnet_max_pairs=%u\n", max_pairs);
      return false;
    }
  }
  for (unsigned i = 0; i < n->npairs; i++) {
    struct net_pair *p = &n->pair[i];
    if (!virtq_init(&n->dev, (uint16_t)(2 * i), RX_BUFS, &p->rx) ||
        !virtq_init(&n->dev, (uint16_t)(2 * i + 1), TX_BUFS, &p->tx))
      return false;
    p->rx_base = page_alloc((uint64_t)RX_BUFS * RX_BUF_LEN);
    p->tx_base = page_alloc((uint64_t)TX_BUFS * RX_BUF_LEN);
    if (!p->rx_base || !p->tx_base) {
      print("error=out-of-memory\n");
      return false;
    }
    p->tx_nfree = p->tx.size < TX_BUFS ? p->tx.size : TX_BUFS;
    for (unsigned j = 0; j < p->tx_nfree; j++) p->tx_free[j] = (uint16_t)j;
  }
  if (queues > 1 && !virtq_init(&n->dev, (uint16_t)(2 * max_pairs), 16, &n->ctrl)) return false;
  static const uint8_t kDefaultMac[6] = {0x02, 0, 0, 0, 0, 0x01};
  memcpy(n->mac, kDefaultMac, 6);
  if (n->dev.features & NET_F_MAC) {
    for (unsigned i = 0; i < 6; i++) n->mac[i] = mmio_read8(n->dev.device_cfg + i);
  }
  virtio_driver_ok(&n->dev);
  if (queues > 1 && !net_set_pairs(n, n->npairs)) return false;
  for (unsigned i = 0; i < n->npairs; i++) {
    struct net_pair *p = &n->pair[i];
    for (uint16_t j = 0; j < p->rx.size; j++) rx_post(n, p, j);
    virtq_kick(&p->rx);
  }
  return true;
}

static void tx_reclaim(struct net_pair *p) {
  uint16_t head;
  uint32_t len;
  while (virtq_pop(&p->tx, &head, &len)) p->tx_free[p->tx_nfree++] = p->tx_buf_of_head[head];
}

/* Queues probe `seq` on pair seq % npairs (not kicked). False when no TX buffer is free. */
static bool probe_send(struct net *n, uint64_t seq) {
  struct net_pair *p = &n->pair[seq % n->npairs];
  if (p->tx_nfree == 0) tx_reclaim(p);
  if (p->tx_nfree == 0) return false;
  uint16_t buf = p->tx_free[--p->tx_nfree];
  uint8_t *b = (uint8_t *)(p->tx_base + (uint64_t)buf * RX_BUF_LEN);
  memset(b, 0, NET_HDR_LEN + n->frame_len);
  uint8_t *f = b + NET_HDR_LEN;
  memset(f, 0xff, 6);
  memcpy(f + 6, n->mac, 6);
  f[12] = ETHERTYPE_HI;
  f[13] = ETHERTYPE_LO;
  memcpy(f + 14, "KUMO", 4);
  memcpy(f + SEQ_OFFSET, &seq, 8);
  struct virtio_buf vb = {(uint64_t)(uintptr_t)b, NET_HDR_LEN + n->frame_len, false};
  int head = virtq_add(&p->tx, &vb, 1);
  if (head < 0) {
    p->tx_free[p->tx_nfree++] = buf;
    return false;
  }
  p->tx_buf_of_head[head] = buf;
  p->tx_frames++;
  n->sent_tsc[seq % SEQ_RING] = rdtsc();
  n->sent++;
  n->outstanding++;
  return true;
}

/*
 * The next received frame (vnet header stripped) in *f and *flen; false when
 * none is waiting. Its buffers stay out of the ring until rx_release(). A frame
 * spanning several buffers (MRG_RXBUF) is copied into n->frame. A malformed
 * one gives *flen = 0 and counts in rx_bad.
 */
static bool rx_take(struct net *n, struct net_pair *p, const uint8_t **f, uint32_t *flen) {
  uint16_t head, nbufs = 1;
  uint32_t len;
  if (p->ntaken == RX_BUFS || !virtq_pop(&p->rx, &head, &len)) return false;
  const uint8_t *b = rx_buf(p, p->rx_buf_of_head[head]);
  p->taken[p->ntaken++] = p->rx_buf_of_head[head];
  p->rx_frames++;
  *f = b + NET_HDR_LEN;
  *flen = 0;
  if (n->mrg && len >= NET_HDR_LEN) memcpy(&nbufs, b + 10, 2);
  if (len < NET_HDR_LEN || len > n->rx_buf_len || nbufs == 0) {
    n->rx_bad++;
    return true;
  }
  uint32_t total = len - NET_HDR_LEN;
  if (nbufs == 1) {
    *flen = total;
    return true;
  }
  bool ok = total <= FRAME_MAX;
  if (ok) memcpy(n->frame, b + NET_HDR_LEN, total);
  for (uint16_t i = 1; i < nbufs; i++) {
    /* The device publishes all of a frame's buffers at once. */
    if (p->ntaken == RX_BUFS || !virtq_pop(&p->rx, &head, &len)) {
      ok = false;
      break;
    }
    uint16_t buf = p->rx_buf_of_head[head];
    p->taken[p->ntaken++] = buf;
    if (len > n->rx_buf_len || total + len > FRAME_MAX) ok = false;
    if (ok) memcpy(n->frame + total, rx_buf(p, buf), len);
    total += len;
  }
  if (!ok) {
    n->rx_bad++;
    return true;
  }
  *f = n->frame;
  *flen = total;
  return true;
}

static void rx_release(struct net *n, struct net_pair *p) {
  for (unsigned i = 0; i < p->ntaken; i++) rx_post(n, p, p->taken[i]);
  if (p->ntaken) virtq_kick(&p->rx);
  p->ntaken = 0;
}

/* With MRG_RXBUF, whether a reply is exactly the probe sent (length and zero padding). */
static bool reply_intact(struct net *n, const uint8_t *f, uint32_t flen) {
  if (!n->mrg) return true;
  if (flen != n->frame_len || memcmp(f + 14, "KUMO", 4) != 0) return false;
  for (uint32_t i = SEQ_OFFSET + 8; i < flen; i++) {
    if (f[i] != 0) return false;
  }
  return true;
}

/* Consumes received frames, matching replies. Returns replies matched. */
static unsigned rx_poll(struct net *n, uint64_t lowest_seq, uint64_t next_seq) {
  const uint8_t *f;
  uint32_t flen;
  unsigned matched = 0;
  for (unsigned i = 0; i < n->npairs; i++) {
    struct net_pair *p = &n->pair[i];
    while (rx_take(n, p, &f, &flen)) {
      uint64_t now = rdtsc();
      if (flen >= SEQ_OFFSET + 8 && f[12] == ETHERTYPE_HI && f[13] == ETHERTYPE_LO) {
        uint64_t seq;
        memcpy(&seq, f + SEQ_OFFSET, 8);
        uint64_t *sent = &n->sent_tsc[seq % SEQ_RING];
        if (seq >= lowest_seq && seq < next_seq && *sent) {
          if (!reply_intact(n, f, flen)) n->rx_bad++;
          lat_add(&n->rtt, tsc_to_us(now - *sent));
          *sent = 0;
          n->replies++;
          n->outstanding--;
          matched++;
        }
      }
    }
    rx_release(n, p);
  }
  return matched;
}

static void net_report(struct net *n, uint64_t elapsed_tsc) {
  uint64_t us = tsc_to_us(elapsed_tsc) + 1;
  print("net_mac=%02x:%02x:%02x:%02x:%02x:%02x\n", n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
  print("net_sent=%lu\n", n->sent);
  print("net_replies=%lu\n", n->replies);
  print("net_lost=%lu\n", n->lost);
  print("net_frame=%u\n", n->frame_len);
  print("net_rx_bad=%lu\n", n->rx_bad);
  print("net_pps=%lu\n", n->replies * 1000000u / us);
  print("net_rtt_p50_us=%lu\n", lat_percentile(&n->rtt, 50));
  print("net_rtt_p99_us=%lu\n", lat_percentile(&n->rtt, 99));
  if (n->npairs > 1) {
    print("net_pairs=%u\n", n->npairs);
    for (unsigned i = 0; i < n->npairs; i++) {
      print("net_tx_q%u=%lu\n", i, n->pair[i].tx_frames);
      print("net_rx_q%u=%lu\n", i, n->pair[i].rx_frames);
    }
  }
}

/* Ring state at the first lost probe: tells a stalled device direction from a lost frame. */
static void net_stall_report(struct net *n) {
  for (unsigned i = 0; i < n->npairs; i++) {
    struct net_pair *p = &n->pair[i];
    print("net_stall=pair %u tx avail %u used %u flags %u, rx avail %u used %u seen %u flags %u, outstanding %lu\n",
          i, p->tx.avail_idx, p->tx.used->idx, p->tx.used->flags, p->rx.avail_idx, p->rx.used->idx,
          p->rx.last_used, p->rx.used->flags, n->outstanding);
  }
}

/*
 * Keeps up to `window` probes outstanding until `count` were sent or
 * `stop_tsc` passed; a probe unanswered after `timeout_tsc` is lost.
 */
static void net_run(struct net *n, uint64_t window, uint64_t count, uint64_t stop_tsc, uint64_t timeout_tsc) {
  uint64_t next_seq = 1, lowest = 1;
  for (;;) {
    uint64_t now = rdtsc();
    bool sending = next_seq <= count && now < stop_tsc;
    bool queued = false;
    while (sending && n->outstanding < window && next_seq <= count && next_seq - lowest < SEQ_RING) {
      if (!probe_send(n, next_seq)) break;
      next_seq++;
      queued = true;
    }
    if (queued) {
      for (unsigned i = 0; i < n->npairs; i++) virtq_kick(&n->pair[i].tx);
    }
    rx_poll(n, lowest, next_seq);
    for (unsigned i = 0; i < n->npairs; i++) tx_reclaim(&n->pair[i]);
    /* Advance past answered probes; expire the oldest unanswered one. */
    now = rdtsc();
    while (lowest < next_seq) {
      uint64_t *sent = &n->sent_tsc[lowest % SEQ_RING];
      if (*sent && now - *sent > timeout_tsc) {
        if (n->lost == 0) net_stall_report(n);
        *sent = 0;
        n->lost++;
        n->outstanding--;
      }
      if (*sent) break;
      lowest++;
    }
    if (!sending && n->outstanding == 0) return;
    cpu_relax();
  }
}

bool wl_net_echo(void) {
  struct net *n = &g_net;
  uint64_t count = arg_u64("count", 100), timeout_ms = arg_u64("timeout_ms", 1000);
  tsc_calibrate();
  if (!net_open(n)) return false;
  uint64_t t0 = rdtsc();
  net_run(n, 1, count, ~0ull, timeout_ms * (g_tsc_hz / 1000));
  net_report(n, rdtsc() - t0);
  return count > 0 && n->replies == count && n->rx_bad == 0;
}

bool wl_net_bench(void) {
  struct net *n = &g_net;
  uint64_t seconds = arg_u64("seconds", 2), window = arg_u64("window", 32);
  uint64_t timeout_ms = arg_u64("timeout_ms", 1000);
  if (window == 0 || window > 256) window = 32;
  tsc_calibrate();
  if (!net_open(n)) return false;
  uint64_t t0 = rdtsc();
  net_run(n, window, ~0ull, t0 + seconds * g_tsc_hz, timeout_ms * (g_tsc_hz / 1000));
  net_report(n, rdtsc() - t0);
  print("net_window=%lu\n", window);
  return n->replies > 0 && n->rx_bad == 0;
}

/*
 * Copies the received frame `f` (`len` bytes) into a free TX buffer of pair `p`
 * behind a zeroed header and queues it (not kicked). False when no TX buffer is free.
 */
static bool frame_send(struct net_pair *p, const uint8_t *f, uint32_t len) {
  if (p->tx_nfree == 0) tx_reclaim(p);
  if (p->tx_nfree == 0) return false;
  uint16_t buf = p->tx_free[--p->tx_nfree];
  uint8_t *b = (uint8_t *)(p->tx_base + (uint64_t)buf * RX_BUF_LEN);
  memset(b, 0, NET_HDR_LEN);
  memcpy(b + NET_HDR_LEN, f, len);
  struct virtio_buf vb = {(uint64_t)(uintptr_t)b, NET_HDR_LEN + len, false};
  int head = virtq_add(&p->tx, &vb, 1);
  if (head < 0) {
    p->tx_free[p->tx_nfree++] = buf;
    return false;
  }
  p->tx_buf_of_head[head] = buf;
  p->tx_frames++;
  return true;
}

/*
 * Receives for `seconds` (or until `count` frames were reflected, when
 * count > 0) and sends every ethertype-0x88b5 frame back unchanged. Prints
 * net_mac= once the receive queue is live (a peer may start sending then).
 * Ok when at least `expect` frames (default 1) were reflected.
 */
bool wl_net_reflect(void) {
  struct net *n = &g_net;
  uint64_t seconds = arg_u64("seconds", 10), count = arg_u64("count", 0);
  uint64_t expect = arg_u64("expect", 1);
  tsc_calibrate();
  if (!net_open(n)) return false;
  print("net_mac=%02x:%02x:%02x:%02x:%02x:%02x\n", n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
  uint64_t rx_frames = 0, reflected = 0, tx_dropped = 0;
  uint64_t stop_tsc = rdtsc() + seconds * g_tsc_hz;
  while (rdtsc() < stop_tsc && (count == 0 || reflected < count)) {
    for (unsigned i = 0; i < n->npairs; i++) {
      struct net_pair *p = &n->pair[i];
      const uint8_t *f;
      uint32_t flen;
      unsigned queued = 0;
      while (rx_take(n, p, &f, &flen)) {
        if (flen == 0) continue;
        rx_frames++;
        if (flen >= 14 && flen <= FRAME_MAX && f[12] == ETHERTYPE_HI && f[13] == ETHERTYPE_LO &&
            (count == 0 || reflected < count)) {
          if (frame_send(p, f, flen)) { /* reply on the pair it came in on */
            reflected++;
            queued++;
          } else {
            tx_dropped++;
          }
        }
      }
      rx_release(n, p);
      if (queued) virtq_kick(&p->tx);
      tx_reclaim(p);
    }
    cpu_relax();
  }
  /* Let the last reflections leave before the VM exits. */
  uint64_t drain_tsc = rdtsc() + g_tsc_hz / 10;
  for (unsigned i = 0; i < n->npairs; i++) {
    struct net_pair *p = &n->pair[i];
    while (p->tx_nfree < (p->tx.size < TX_BUFS ? p->tx.size : TX_BUFS) && rdtsc() < drain_tsc) {
      tx_reclaim(p);
      cpu_relax();
    }
  }
  print("net_rx_frames=%lu\n", rx_frames);
  print("net_reflected=%lu\n", reflected);
  print("net_tx_dropped=%lu\n", tx_dropped);
  print("net_rx_bad=%lu\n", n->rx_bad);
  return reflected >= expect && n->rx_bad == 0;
}
