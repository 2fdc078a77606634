/* Latency histogram with 1 µs buckets up to 65.535 ms (overflow clamps). */
#pragma once

#include "guest.h"

#define LAT_BUCKETS 65536u

struct lat_hist {
  uint64_t count;
  uint32_t bucket[LAT_BUCKETS];
};

static inline void lat_add(struct lat_hist *h, uint64_t us) {
  h->bucket[us < LAT_BUCKETS ? us : LAT_BUCKETS - 1]++;
  h->count++;
}

/* Smallest latency (µs) at or below which `pct` percent of samples fall. */
static inline uint64_t lat_percentile(const struct lat_hist *h, unsigned pct) {
  if (h->count == 0) return 0;
  uint64_t want = (h->count * pct + 99) / 100, seen = 0;
  for (uint32_t i = 0; i < LAT_BUCKETS; i++) {
    seen += h->bucket[i];
    if (seen >= want) return i;
  }
  return LAT_BUCKETS - 1;
}
