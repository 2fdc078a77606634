/* Workloads that need nothing but the CPU, RAM and the boot info. */
#include "guest.h"

bool wl_hello(void) {
  print("hello=world\n");
  print("start_info=%p\n", (const void *)g_start_info);
  print("start_info_version=%u\n", g_start_info->version);
  print("mem_mib=%lu\n", ram_total_bytes() >> 20);
  struct cpu_list cpus;
  cpu_discover(&cpus);
  print("cpus=%u\n", cpu_count());
  print("cpus_source=%s\n", cpus.source);
  print("rsdp_paddr=0x%lx\n", g_start_info->rsdp_paddr);
  return true;
}

/* The marker itself is written by boot.S user_entry before any C runs. */
bool wl_boot(void) {
  print("boot_marker=1\n");
  return true;
}

/* Address-derived so that misdirected writes show up, not just lost ones. */
static inline uint64_t mem_pattern(uint64_t addr) {
  return (addr * 0x9e3779b97f4a7c15ull) ^ 0xa5a5a5a5a5a5a5a5ull;
}

bool wl_mem(void) {
  uint64_t size_mib = arg_u64("size_mib", 64);
  uint64_t base, len;
  if (!free_ram_range(&base, &len) || len < (size_mib << 20)) {
    print("error=not-enough-free-ram\nmem_free_mib=%lu\n", len >> 20);
    return false;
  }
  tsc_calibrate();
  uint64_t bytes = size_mib << 20;
  volatile uint64_t *p = (volatile uint64_t *)base;
  uint64_t words = bytes / 8;

  uint64_t t0 = rdtsc();
  for (uint64_t i = 0; i < words; i++) p[i] = mem_pattern(base + i * 8);
  uint64_t t1 = rdtsc();
  uint64_t errors = 0;
  for (uint64_t i = 0; i < words; i++) errors += p[i] != mem_pattern(base + i * 8);
  uint64_t t2 = rdtsc();

  uint64_t write_us = tsc_to_us(t1 - t0) + 1, verify_us = tsc_to_us(t2 - t1) + 1;
  print("size_mib=%lu\n", size_mib);
  print("mem_base=0x%lx\n", base);
  print("mem_write_mb_s=%lu\n", bytes / write_us);
  print("mem_verify_mb_s=%lu\n", bytes / verify_us);
  print("mem_errors=%lu\n", errors);
  return errors == 0;
}

bool wl_cpu(void) {
  uint64_t iterations = arg_u64("iterations", 100000000);
  tsc_calibrate();
  uint64_t t0 = rdtsc();
  uint64_t x = 0x243f6a8885a308d3ull, sum = 0;
  for (uint64_t i = 0; i < iterations; i++) {
    x ^= x << 13;   /* xorshift64 */
    x ^= x >> 7;
    x ^= x << 17;
    sum = sum * 31 + (x >> 11);
  }
  uint64_t t1 = rdtsc();
  print("iterations=%lu\n", iterations);
  print("cpu_checksum=0x%016lx\n", sum);
  print("cpu_ms=%lu\n", tsc_to_us(t1 - t0) / 1000);
  return true;
}
