/*
 * CPU discovery: ACPI MADT (ACPI 6.5 §5.2.12), else the Intel MultiProcessor
 * Specification 1.4 table. Tables are read in place (identity map).
 */
#include "guest.h"

struct __attribute__((packed)) acpi_rsdp {
  char signature[8];           /* "RSD PTR " */
  uint8_t checksum;            /* first 20 bytes sum to 0 */
  char oem_id[6];
  uint8_t revision;            /* 0 = ACPI 1.0 (RSDT only), 2+ has XSDT */
  uint32_t rsdt_address;
  uint32_t length;
  uint64_t xsdt_address;
  uint8_t extended_checksum;
  uint8_t reserved[3];
};

struct __attribute__((packed)) acpi_header {
  char signature[4];
  uint32_t length;
  uint8_t revision;
  uint8_t checksum;
  char oem_id[6];
  char oem_table_id[8];
  uint32_t oem_revision;
  uint32_t creator_id;
  uint32_t creator_revision;
};

#define MADT_ENTRIES_OFFSET 44u  /* header + local APIC address + flags */
#define MADT_LOCAL_APIC 0
#define MADT_LOCAL_X2APIC 9
#define MADT_ENABLED 1u

static bool checksum_ok(const void *p, size_t n) {
  const uint8_t *b = p;
  uint8_t sum = 0;
  for (size_t i = 0; i < n; i++) sum = (uint8_t)(sum + b[i]);
  return sum == 0;
}

/* Tables may live anywhere; only those below 4 GiB are reachable here. */
static bool reachable(uint64_t addr, uint64_t len) {
  return addr != 0 && addr < 0x100000000ull && len <= 0x100000000ull - addr;
}

static const struct acpi_rsdp *rsdp_find(void) {
  uint64_t given = g_start_info->rsdp_paddr;
  if (given) {
    const struct acpi_rsdp *r = (const struct acpi_rsdp *)given;
    if (reachable(given, sizeof *r) && memcmp(r->signature, "RSD PTR ", 8) == 0 && checksum_ok(r, 20)) return r;
  }
  for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
    const struct acpi_rsdp *r = (const struct acpi_rsdp *)a;
    if (memcmp(r->signature, "RSD PTR ", 8) == 0 && checksum_ok(r, 20)) return r;
  }
  return NULL;
}

static const struct acpi_header *table_at(uint64_t addr) {
  if (!reachable(addr, sizeof(struct acpi_header))) return NULL;
  const struct acpi_header *h = (const struct acpi_header *)addr;
  if (h->length < sizeof *h || !reachable(addr, h->length) || !checksum_ok(h, h->length)) return NULL;
  return h;
}

static const struct acpi_header *table_find(const struct acpi_rsdp *rsdp, const char signature[4]) {
  bool use_xsdt = rsdp->revision >= 2 && rsdp->xsdt_address != 0;
  const struct acpi_header *root = table_at(use_xsdt ? rsdp->xsdt_address : rsdp->rsdt_address);
  if (!root) return NULL;
  size_t entry_size = use_xsdt ? 8 : 4;
  size_t n = (root->length - sizeof *root) / entry_size;
  const uint8_t *entries = (const uint8_t *)(root + 1);
  for (size_t i = 0; i < n; i++) {
    uint64_t addr = 0;
    memcpy(&addr, entries + i * entry_size, entry_size);
    const struct acpi_header *t = table_at(addr);
    if (t && memcmp(t->signature, signature, 4) == 0) return t;
  }
  return NULL;
}

const void *acpi_table(const char signature[4], uint32_t *length) {
  const struct acpi_rsdp *rsdp = rsdp_find();
  const struct acpi_header *t = rsdp ? table_find(rsdp, signature) : NULL;
  if (t && length) *length = t->length;
  return t;
}

static void add_cpu(struct cpu_list *out, uint32_t apic_id) {
  if (out->count < MAX_CPUS && apic_id <= 0xff) out->apic_id[out->count++] = (uint8_t)apic_id;
}

static bool madt_cpus(struct cpu_list *out) {
  const struct acpi_rsdp *rsdp = rsdp_find();
  if (!rsdp) return false;
  const struct acpi_header *madt = table_find(rsdp, "APIC");
  if (!madt || madt->length < MADT_ENTRIES_OFFSET) return false;
  const uint8_t *p = (const uint8_t *)madt + MADT_ENTRIES_OFFSET;
  const uint8_t *end = (const uint8_t *)madt + madt->length;
  while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
    if (p[0] == MADT_LOCAL_APIC && p[1] >= 8) {
      uint32_t flags;
      memcpy(&flags, p + 4, 4);
      if (flags & MADT_ENABLED) add_cpu(out, p[3]);
    } else if (p[0] == MADT_LOCAL_X2APIC && p[1] >= 16) {
      uint32_t id, flags;
      memcpy(&id, p + 4, 4);
      memcpy(&flags, p + 8, 4);
      if (flags & MADT_ENABLED) add_cpu(out, id);
    }
    p += p[1];
  }
  out->source = "acpi";
  return out->count > 0;
}

/* MP spec 1.4 §4.1: the floating pointer is in the first KiB of the EBDA,
 * the last KiB of base memory, or 0xF0000-0xFFFFF. */
static const uint8_t *mp_floating_find(void) {
  uint64_t ebda = (uint64_t)(*(const volatile uint16_t *)phys_ptr(0x40e)) << 4;
  uint64_t ranges[3][2] = {{ebda, ebda + 1024}, {0x9fc00, 0xa0000}, {0xf0000, 0x100000}};
  for (int r = 0; r < 3; r++) {
    if (ranges[r][0] < 0x400) continue;
    for (uint64_t a = ranges[r][0]; a + 16 <= ranges[r][1]; a += 16) {
      const uint8_t *p = (const uint8_t *)a;
      if (memcmp(p, "_MP_", 4) == 0 && p[8] == 1 && checksum_ok(p, 16)) return p;
    }
  }
  return NULL;
}

static bool mptable_cpus(struct cpu_list *out) {
  const uint8_t *fp = mp_floating_find();
  if (!fp) return false;
  uint32_t cfg_addr;
  memcpy(&cfg_addr, fp + 4, 4);
  if (!reachable(cfg_addr, 44)) return false;
  const uint8_t *cfg = (const uint8_t *)(uint64_t)cfg_addr;
  uint16_t len, count;
  memcpy(&len, cfg + 4, 2);
  memcpy(&count, cfg + 34, 2);
  if (memcmp(cfg, "PCMP", 4) != 0 || len < 44 || !checksum_ok(cfg, len)) return false;
  const uint8_t *p = cfg + 44, *end = cfg + len;
  for (unsigned i = 0; i < count && p < end; i++) {
    if (p[0] == 0) {                  /* processor entry, 20 bytes */
      if (p + 20 > end) break;
      if (p[3] & 1) add_cpu(out, p[1]);
      p += 20;
    } else {
      p += 8;                         /* every other entry type is 8 bytes */
    }
  }
  out->source = "mptable";
  return out->count > 0;
}

void cpu_discover(struct cpu_list *out) {
  memset(out, 0, sizeof *out);
  if (madt_cpus(out)) return;
  out->count = 0;
  if (mptable_cpus(out)) return;
  out->count = 0;
  out->source = "none";
}

unsigned cpu_count(void) {
  uint64_t forced = arg_u64("cpus", 0);
  if (forced) return (unsigned)forced;
  struct cpu_list cpus;
  cpu_discover(&cpus);
  return cpus.count ? cpus.count : 1;
}
