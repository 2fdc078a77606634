/*
 * virtio-blk (virtio 1.2 §5.2) workloads: blk-verify and blk-bench.
 * blk-bench `queues=N` (1..4) negotiates VIRTIO_BLK_F_MQ and spreads its
 * requests over N request queues (slot i on queue i % N).
 */
#include "stats.h"
#include "virtio.h"

#define BLK_F_FLUSH (1ull << 9)
#define BLK_F_MQ (1ull << 12)
#define BLK_MAX_QUEUES 4u
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_S_OK 0
#define SECTOR 512u

struct blk_req_hdr {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

static struct virtio_dev g_dev;
static struct virtq g_vqs[BLK_MAX_QUEUES];
static struct virtq *const g_vq = &g_vqs[0];
static unsigned g_nqueues = 1;

/* Opens the disk with `queues` request queues (MQ when more than one). */
static bool blk_open(unsigned queues) {
  if (!virtio_open(VIRTIO_ID_BLK, 0, BLK_F_FLUSH | (queues > 1 ? BLK_F_MQ : 0), &g_dev)) return false;
  if (queues > 1) {
    /* struct virtio_blk_config.num_queues */
    uint16_t offered = mmio_read16(g_dev.device_cfg + 34);
    if (!(g_dev.features & BLK_F_MQ) || offered < queues) {
      print("error=no-mq\nblk_num_queues=%u\n", offered);
      return false;
    }
  }
  g_nqueues = queues;
  for (unsigned q = 0; q < queues; q++) {
    if (!virtq_init(&g_dev, (uint16_t)q, VIRTQ_MAX_SIZE, &g_vqs[q])) return false;
  }
  virtio_driver_ok(&g_dev);
  return true;
}

static uint64_t blk_capacity(void) {
  /* struct virtio_blk_config.capacity, in 512-byte sectors */
  return mmio_read32(g_dev.device_cfg) | (uint64_t)mmio_read32(g_dev.device_cfg + 4) << 32;
}

/* One request, waited for. `data` may be 0 for a flush. Returns the status byte. */
static int blk_sync(uint32_t type, uint64_t sector, uint64_t data, uint32_t len) {
  static struct blk_req_hdr hdr;
  static volatile uint8_t status;
  hdr.type = type;
  hdr.reserved = 0;
  hdr.sector = sector;
  status = 0xff;
  struct virtio_buf bufs[3] = {{(uint64_t)(uintptr_t)&hdr, sizeof hdr, false}};
  unsigned n = 1;
  if (len) bufs[n++] = (struct virtio_buf){data, len, type == BLK_T_IN};
  bufs[n++] = (struct virtio_buf){(uint64_t)(uintptr_t)&status, 1, true};
  if (virtq_add(g_vq, bufs, n) < 0) return -1;
  virtq_kick(g_vq);
  uint16_t id;
  uint32_t used_len;
  uint64_t deadline = rdtsc() + 10 * g_tsc_hz;
  while (!virtq_pop(g_vq, &id, &used_len)) {
    if (rdtsc() > deadline) return -2;
    cpu_relax();
  }
  return status;
}

static uint64_t blk_pattern(uint64_t sector, uint64_t word, uint64_t seed) {
  return (sector * 0x9e3779b97f4a7c15ull + word) ^ seed;
}

bool wl_blk_verify(void) {
  tsc_calibrate();
  if (!blk_open(1)) return false;
  uint64_t capacity = blk_capacity();
  print("blk_capacity_sectors=%lu\n", capacity);
  print("blk_flush_supported=%u\n", (g_dev.features & BLK_F_FLUSH) ? 1u : 0u);
  const uint32_t chunk_sectors = 64;   /* 32 KiB per request */
  if (capacity < chunk_sectors) {
    print("error=disk-too-small\n");
    return false;
  }
  uint64_t wbuf = page_alloc(chunk_sectors * SECTOR), rbuf = page_alloc(chunk_sectors * SECTOR);
  if (!wbuf || !rbuf) {
    print("error=out-of-memory\n");
    return false;
  }
  uint64_t seed = rdtsc();
  uint64_t starts[3] = {0, capacity / 2, capacity - chunk_sectors};
  uint64_t words = chunk_sectors * SECTOR / 8, mismatches = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int r = 0; r < 3; r++) {
      uint64_t s = starts[r];
      if (pass == 0) {
        for (uint64_t w = 0; w < words; w++) ((uint64_t *)wbuf)[w] = blk_pattern(s + w / 64, w, seed);
        int st = blk_sync(BLK_T_OUT, s, wbuf, chunk_sectors * SECTOR);
        if (st != BLK_S_OK) {
          print("error=write-failed\nblk_status=%d\nblk_sector=%lu\n", st, s);
          return false;
        }
      } else {
        memset((void *)rbuf, 0, chunk_sectors * SECTOR);
        int st = blk_sync(BLK_T_IN, s, rbuf, chunk_sectors * SECTOR);
        if (st != BLK_S_OK) {
          print("error=read-failed\nblk_status=%d\nblk_sector=%lu\n", st, s);
          return false;
        }
        for (uint64_t w = 0; w < words; w++) mismatches += ((uint64_t *)rbuf)[w] != blk_pattern(s + w / 64, w, seed);
      }
    }
  }
  if (g_dev.features & BLK_F_FLUSH) {
    int st = blk_sync(BLK_T_FLUSH, 0, 0, 0);
    print("blk_flush=%s\n", st == BLK_S_OK ? "ok" : "failed");
    if (st != BLK_S_OK) return false;
  }
  print("blk_mismatched_words=%lu\n", mismatches);
  print("blk_verify=%s\n", mismatches ? "mismatch" : "ok");
  return mismatches == 0;
}

struct blk_slot {
  struct blk_req_hdr hdr;
  volatile uint8_t status;
  uint64_t data;
  uint64_t submitted_tsc;
};

struct blk_bench {
  uint64_t bs, blocks;
  bool is_write, is_rand;
  uint64_t rng, next_block, inflight;
  struct blk_slot slots[VIRTQ_MAX_SIZE];
  int16_t slot_of_head[BLK_MAX_QUEUES][VIRTQ_MAX_SIZE];
  uint64_t done_on[BLK_MAX_QUEUES];
  struct lat_hist lat;
};

static struct blk_bench g_bench;

/* Queues slot i's request at the next offset (random or sequential). */
static void bench_submit(struct blk_bench *b, unsigned i) {
  struct blk_slot *s = &b->slots[i];
  uint64_t block;
  if (b->is_rand) {
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    block = b->rng % b->blocks;
  } else {
    block = b->next_block++ % b->blocks;
  }
  s->hdr.type = b->is_write ? BLK_T_OUT : BLK_T_IN;
  s->hdr.reserved = 0;
  s->hdr.sector = block * (b->bs / SECTOR);
  s->status = 0xff;
  struct virtio_buf bufs[3] = {{(uint64_t)(uintptr_t)&s->hdr, sizeof s->hdr, false},
                               {s->data, (uint32_t)b->bs, !b->is_write},
                               {(uint64_t)(uintptr_t)&s->status, 1, true}};
  unsigned q = i % g_nqueues;
  int head = virtq_add(&g_vqs[q], bufs, 3);   /* qd <= queues * size / 3: never full */
  b->slot_of_head[q][head] = (int16_t)i;
  s->submitted_tsc = rdtsc();
  b->inflight++;
}

bool wl_blk_bench(void) {
  struct blk_bench *b = &g_bench;
  uint64_t qd = arg_u64("qd", 32), seconds = arg_u64("seconds", 2);
  uint64_t queues = arg_u64("queues", 1);
  b->bs = arg_u64("bs", 4096);
  const char *rw_arg = arg_str("rw");
  char rw[16] = "randread";
  if (rw_arg) {
    size_t n = strlen(rw_arg);
    if (n >= sizeof rw) n = sizeof rw - 1;
    memcpy(rw, rw_arg, n);
    rw[n] = 0;
  }
  b->is_write = streq(rw, "write") || streq(rw, "randwrite");
  b->is_rand = streq(rw, "randread") || streq(rw, "randwrite");
  if (!b->is_write && !b->is_rand && !streq(rw, "read")) {
    print("error=bad-rw\n");
    return false;
  }
  if (b->bs == 0 || b->bs % SECTOR || b->bs > (1u << 20) || qd == 0 || seconds == 0 ||
      queues == 0 || queues > BLK_MAX_QUEUES) {
    print("error=bad-arguments\n");
    return false;
  }
  tsc_calibrate();
  if (!blk_open((unsigned)queues)) return false;
  if (qd > g_nqueues * (g_vq->size / 3u)) qd = g_nqueues * (g_vq->size / 3u);
  if (qd > VIRTQ_MAX_SIZE) qd = VIRTQ_MAX_SIZE; /* slots */
  uint64_t capacity = blk_capacity();
  b->blocks = capacity / (b->bs / SECTOR);
  if (b->blocks == 0) {
    print("error=disk-too-small\n");
    return false;
  }
  uint64_t data = page_alloc(qd * b->bs);
  if (!data) {
    print("error=out-of-memory\n");
    return false;
  }
  for (unsigned i = 0; i < qd; i++) {
    b->slots[i].data = data + i * b->bs;
    memset((void *)b->slots[i].data, (int)(0x5a + i), b->bs);
  }
  b->rng = 0x2545f4914f6cdd1dull;

  uint64_t done = 0, errors = 0;
  uint64_t t0 = rdtsc(), stop = t0 + seconds * g_tsc_hz, now = t0, last_progress = t0;
  for (unsigned i = 0; i < qd; i++) bench_submit(b, i);
  for (unsigned q = 0; q < g_nqueues; q++) virtq_kick(&g_vqs[q]);
  while (b->inflight) {
    uint16_t head;
    uint32_t len;
    now = rdtsc();
    for (unsigned q = 0; q < g_nqueues; q++) {
      bool resubmitted = false;
      while (virtq_pop(&g_vqs[q], &head, &len)) {
        unsigned i = (unsigned)b->slot_of_head[q][head];
        struct blk_slot *s = &b->slots[i];
        b->inflight--;
        done++;
        b->done_on[q]++;
        if (s->status != BLK_S_OK) errors++;
        lat_add(&b->lat, tsc_to_us(now - s->submitted_tsc));
        last_progress = now;
        if (now < stop) {
          bench_submit(b, i); /* slot i stays on queue q */
          resubmitted = true;
        }
      }
      if (resubmitted) virtq_kick(&g_vqs[q]);
    }
    if (now - last_progress > 10 * g_tsc_hz) {
      print("error=requests-stuck\nblk_inflight=%lu\n", b->inflight);
      return false;
    }
    cpu_relax();
  }
  uint64_t us = tsc_to_us(now - t0) + 1;
  print("rw=%s\nbs=%lu\nqd=%lu\n", rw, b->bs, qd);
  print("blk_capacity_sectors=%lu\n", capacity);
  print("blk_requests=%lu\n", done);
  print("blk_errors=%lu\n", errors);
  print("blk_us=%lu\n", us);
  print("blk_iops=%lu\n", done * 1000000u / us);
  print("blk_mb_s=%lu\n", done * b->bs / us);
  print("blk_lat_p50_us=%lu\n", lat_percentile(&b->lat, 50));
  print("blk_lat_p99_us=%lu\n", lat_percentile(&b->lat, 99));
  if (g_nqueues > 1) {
    print("blk_queues=%u\n", g_nqueues);
    for (unsigned q = 0; q < g_nqueues; q++) print("blk_q%u_requests=%lu\n", q, b->done_on[q]);
  }
  return errors == 0;
}
