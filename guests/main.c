/* Ring-3 entry: boot info, command line, memory map, workload dispatch. */
#include "guest.h"

const struct hvm_start_info *g_start_info;
volatile uint64_t irq_count;
volatile uint32_t ap_count;

static const char *g_cmdline = "";

/* ---- command line ------------------------------------------------- */

const char *arg_str(const char *key) {
  static char value[128];
  size_t key_len = strlen(key);
  const char *p = g_cmdline;
  while (*p) {
    while (*p == ' ') p++;
    const char *tok = p;
    while (*p && *p != ' ') p++;
    size_t tok_len = (size_t)(p - tok);
    if (tok_len > key_len && tok[key_len] == '=' && memcmp(tok, key, key_len) == 0) {
      size_t n = tok_len - key_len - 1;
      if (n >= sizeof value) n = sizeof value - 1;
      memcpy(value, tok + key_len + 1, n);
      value[n] = 0;
      return value;
    }
  }
  return NULL;
}

uint64_t arg_u64(const char *key, uint64_t dflt) {
  const char *s = arg_str(key);
  if (!s || !*s) return dflt;
  uint64_t v = 0;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (s += 2; *s; s++) {
      char c = *s;
      unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                 : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
      if (d == 16) return dflt;
      v = v * 16 + d;
    }
    return v;
  }
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return dflt;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  return v;
}

/* ---- memory map ------------------------------------------------------- */

static const struct hvm_memmap_entry *memmap(uint32_t *n) {
  const struct hvm_start_info *si = g_start_info;
  if (si->version < 1 || !si->memmap_paddr) {
    *n = 0;
    return NULL;
  }
  *n = si->memmap_entries;
  return (const struct hvm_memmap_entry *)si->memmap_paddr;
}

uint64_t ram_total_bytes(void) {
  uint32_t n;
  const struct hvm_memmap_entry *m = memmap(&n);
  uint64_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (m[i].type == 1) total += m[i].size;
  }
  return total;
}

static uint64_t g_alloc_next;   /* first byte page_alloc has not handed out */

bool free_ram_range(uint64_t *base, uint64_t *len) {
  uint64_t floor = (uint64_t)(uintptr_t)__image_end;
  if (g_alloc_next > floor) floor = g_alloc_next;
  uint32_t n;
  const struct hvm_memmap_entry *m = memmap(&n);
  uint64_t best_base = 0, best_len = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (m[i].type != 1) continue;
    uint64_t lo = m[i].addr, hi = m[i].addr + m[i].size;
    if (hi > 0x100000000ull) hi = 0x100000000ull;   /* identity map ends at 4 GiB */
    if (lo < floor) lo = floor;
    lo = (lo + 0xfff) & ~0xfffull;
    if (hi > lo && hi - lo > best_len) best_base = lo, best_len = hi - lo;
  }
  *base = best_base;
  *len = best_len;
  return best_len != 0;
}

uint64_t page_alloc(uint64_t bytes) {
  uint64_t base, len;
  bytes = (bytes + 0xfff) & ~0xfffull;
  if (!free_ram_range(&base, &len) || len < bytes) return 0;
  g_alloc_next = base + bytes;
  memset((void *)base, 0, bytes);
  return base;
}

/* ---- dispatch --------------------------------------------------------- */

struct workload {
  const char *name;
  bool (*run)(void);
};

static const struct workload kWorkloads[] = {
    {"hello", wl_hello},
    {"boot", wl_boot},
    {"mem", wl_mem},
    {"cpu", wl_cpu},
    {"smp", wl_smp},
    {"irq", wl_irq},
    {"pci", wl_pci},
    {"blk-verify", wl_blk_verify},
    {"blk-bench", wl_blk_bench},
    {"rng", wl_rng},
    {"net-echo", wl_net_echo},
    {"net-bench", wl_net_bench},
    {"net-reflect", wl_net_reflect},
    {"console-write", wl_console_write},
};

void guest_main(const struct hvm_start_info *si);

void guest_main(const struct hvm_start_info *si) {
  g_start_info = si;
  if (si->magic != HVM_START_MAGIC) {
    print("error=bad-start-info-magic\n");
    guest_exit(EXIT_BAD_COMMAND_LINE);
  }
  /* Copied: workloads may reuse low memory (e.g. the AP trampoline page). */
  static char cmdline[1024];
  if (si->cmdline_paddr) {
    const char *src = (const char *)si->cmdline_paddr;
    size_t n = 0;
    while (n + 1 < sizeof cmdline && src[n]) n++;
    memcpy(cmdline, src, n);
    cmdline[n] = 0;
    g_cmdline = cmdline;
  }

  char name[64] = "hello";
  const char *arg = arg_str("workload");
  if (arg) {
    size_t n = strlen(arg);
    if (n >= sizeof name) n = sizeof name - 1;
    memcpy(name, arg, n);
    name[n] = 0;
  }
  for (size_t i = 0; i < sizeof kWorkloads / sizeof kWorkloads[0]; i++) {
    if (!streq(kWorkloads[i].name, name)) continue;
    print("workload=%s\n", name);
    bool ok = kWorkloads[i].run();
    print("status=%s\n", ok ? "ok" : "fail");
    /* reboot=1: a workload that passed reboots the machine, to run again after a reset. */
    if (ok && arg_u64("reboot", 0)) guest_reboot();
    guest_exit(ok ? EXIT_OK : EXIT_WORKLOAD_FAILED);
  }
  print("workload=%s\nerror=unknown-workload\n", name);
  print("known_workloads=");
  for (size_t i = 0; i < sizeof kWorkloads / sizeof kWorkloads[0]; i++) print("%s%s", i ? "," : "", kWorkloads[i].name);
  print("\nstatus=fail\n");
  guest_exit(EXIT_BAD_COMMAND_LINE);
}
