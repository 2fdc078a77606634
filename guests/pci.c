/* PCI Local Bus 3.0 configuration space, bus 0 only. */
#include "pci.h"

#define PCI_CFG_ADDR 0xcf8
#define PCI_CFG_DATA 0xcfc
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define BAR_IO 0x1
#define BAR_TYPE_64 0x4

#define WINDOW_BASE 0xc0000000ull
#define WINDOW_END  0xfec00000ull   /* IOAPIC and LAPIC above */

static enum { ACCESS_UNKNOWN, ACCESS_CF8, ACCESS_ECAM } g_access;
static uint64_t g_ecam_base;

struct __attribute__((packed)) mcfg_allocation {
  uint64_t base;
  uint16_t segment;
  uint8_t start_bus, end_bus;
  uint32_t reserved;
};

static void access_init(void) {
  if (g_access != ACCESS_UNKNOWN) return;
  uint64_t forced = arg_u64("pci_ecam", 0);   /* for tables without an MCFG */
  if (forced && forced < 0x100000000ull) {
    g_access = ACCESS_ECAM;
    g_ecam_base = forced;
    return;
  }
  /* A host bridge at 00:00.0 answers mechanism #1 with its vendor ID. */
  outl(PCI_CFG_ADDR, 0x80000000u);
  if ((inl(PCI_CFG_DATA) & 0xffff) != 0xffff) {
    g_access = ACCESS_CF8;
    return;
  }
  uint32_t len = 0;
  const uint8_t *mcfg = acpi_table("MCFG", &len);
  if (mcfg && len >= 44 + sizeof(struct mcfg_allocation)) {
    struct mcfg_allocation a;
    memcpy(&a, mcfg + 44, sizeof a);
    if (a.segment == 0 && a.start_bus == 0 && a.base < 0x100000000ull) {
      g_access = ACCESS_ECAM;
      g_ecam_base = a.base;
      return;
    }
  }
  g_access = ACCESS_CF8;   /* nothing better: reads will return all-ones */
}

const char *pci_access_method(void) {
  access_init();
  return g_access == ACCESS_ECAM ? "ecam" : "cf8";
}

static uint64_t ecam_addr(const struct pci_dev *d, uint16_t off) {
  return g_ecam_base + ((uint64_t)d->bus << 20) + ((uint64_t)d->dev << 15) + ((uint64_t)d->fn << 12) + off;
}

static void cf8_select(const struct pci_dev *d, uint16_t off) {
  outl(PCI_CFG_ADDR, 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 | (uint32_t)d->fn << 8 | (off & 0xfcu));
}

uint32_t pci_read32(const struct pci_dev *d, uint16_t off) {
  access_init();
  if (g_access == ACCESS_ECAM) return mmio_read32(ecam_addr(d, off));
  cf8_select(d, off);
  return inl(PCI_CFG_DATA);
}

uint16_t pci_read16(const struct pci_dev *d, uint16_t off) {
  access_init();
  if (g_access == ACCESS_ECAM) return mmio_read16(ecam_addr(d, off));
  cf8_select(d, off);
  return inw((uint16_t)(PCI_CFG_DATA + (off & 2)));
}

uint8_t pci_read8(const struct pci_dev *d, uint16_t off) {
  access_init();
  if (g_access == ACCESS_ECAM) return mmio_read8(ecam_addr(d, off));
  cf8_select(d, off);
  return inb((uint16_t)(PCI_CFG_DATA + (off & 3)));
}

void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v) {
  access_init();
  if (g_access == ACCESS_ECAM) {
    mmio_write32(ecam_addr(d, off), v);
    return;
  }
  cf8_select(d, off);
  outl(PCI_CFG_DATA, v);
}

void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v) {
  access_init();
  if (g_access == ACCESS_ECAM) {
    mmio_write16(ecam_addr(d, off), v);
    return;
  }
  cf8_select(d, off);
  outw((uint16_t)(PCI_CFG_DATA + (off & 2)), v);
}

/* Calls fn(d, ctx) for every present function on bus 0 until it returns true. */
static bool for_each_function(bool (*fn)(struct pci_dev *, void *), void *ctx) {
  for (uint8_t dev = 0; dev < 32; dev++) {
    for (uint8_t f = 0; f < 8; f++) {
      struct pci_dev d = {.bus = 0, .dev = dev, .fn = f};
      uint32_t id = pci_read32(&d, 0);
      if ((id & 0xffff) == 0xffff) {
        if (f == 0) break;
        continue;
      }
      d.vendor_id = (uint16_t)id;
      d.device_id = (uint16_t)(id >> 16);
      if (fn(&d, ctx)) return true;
      if (f == 0 && !(pci_read8(&d, PCI_HEADER_TYPE) & 0x80)) break;  /* single-function */
    }
  }
  return false;
}

struct find_ctx {
  uint16_t vendor_id, device_id;
  unsigned nth;
  struct pci_dev *out;
};

static bool find_match(struct pci_dev *d, void *p) {
  struct find_ctx *c = p;
  if (d->vendor_id != c->vendor_id || d->device_id != c->device_id) return false;
  if (c->nth--) return false;
  *c->out = *d;
  return true;
}

bool pci_find(uint16_t vendor_id, uint16_t device_id, unsigned nth, struct pci_dev *out) {
  struct find_ctx c = {vendor_id, device_id, nth, out};
  return for_each_function(find_match, &c);
}

/*
 * Sizes BAR i of a type-0 header (decoding must be off). Returns the
 * number of BAR slots it occupies (2 for 64-bit) and fills addr/size;
 * size 0 means absent or an I/O BAR.
 */
static unsigned bar_probe(const struct pci_dev *d, unsigned i, uint64_t *addr, uint64_t *size) {
  uint16_t off = (uint16_t)(PCI_BAR0 + 4 * i);
  uint32_t lo = pci_read32(d, off);
  *addr = *size = 0;
  if (lo & BAR_IO) return 1;
  bool is64 = (lo & 0x6) == BAR_TYPE_64 && i < 5;
  uint32_t hi = is64 ? pci_read32(d, (uint16_t)(off + 4)) : 0;
  pci_write32(d, off, 0xffffffffu);
  uint32_t mask_lo = pci_read32(d, off);
  pci_write32(d, off, lo);
  uint32_t mask_hi = 0;
  if (is64) {
    pci_write32(d, (uint16_t)(off + 4), 0xffffffffu);
    mask_hi = pci_read32(d, (uint16_t)(off + 4));
    pci_write32(d, (uint16_t)(off + 4), hi);
  } else {
    mask_hi = 0xffffffffu;  /* sign-extend the 32-bit mask */
  }
  uint64_t mask = ((uint64_t)mask_hi << 32) | (mask_lo & ~0xfu);
  if ((mask_lo & ~0xfu) == 0 && (!is64 || mask_hi == 0)) return is64 ? 2 : 1;
  *size = ~mask + 1;
  *addr = ((uint64_t)hi << 32) | (lo & ~0xfu);
  return is64 ? 2 : 1;
}

/* Assigned memory ranges on bus 0, to keep new assignments clear of them. */
#define MAX_RANGES 64
static struct { uint64_t base, size; } g_ranges[MAX_RANGES];
static unsigned g_nranges;
static bool g_ranges_known;

static bool collect_ranges(struct pci_dev *d, void *unused) {
  (void)unused;
  if ((pci_read8(d, PCI_HEADER_TYPE) & 0x7f) != 0) return false;  /* bridges: skip */
  uint16_t cmd = pci_read16(d, PCI_COMMAND);
  pci_write16(d, PCI_COMMAND, (uint16_t)(cmd & ~PCI_COMMAND_MEMORY));
  for (unsigned i = 0; i < 6;) {
    uint64_t addr, size;
    unsigned used = bar_probe(d, i, &addr, &size);
    if (size && addr && g_nranges < MAX_RANGES) {
      g_ranges[g_nranges].base = addr;
      g_ranges[g_nranges].size = size;
      g_nranges++;
    }
    i += used;
  }
  pci_write16(d, PCI_COMMAND, cmd);
  return false;
}

static uint64_t window_alloc(uint64_t size) {
  static uint64_t next = WINDOW_BASE;
  uint64_t a = (next + size - 1) & ~(size - 1);
  for (unsigned r = 0; r < g_nranges && a + size <= WINDOW_END;) {
    if (a < g_ranges[r].base + g_ranges[r].size && g_ranges[r].base < a + size) {
      a = (g_ranges[r].base + g_ranges[r].size + size - 1) & ~(size - 1);
      r = 0;   /* moved: recheck every range */
    } else {
      r++;
    }
  }
  if (a + size > WINDOW_END) return 0;
  next = a + size;
  if (g_nranges < MAX_RANGES) {
    g_ranges[g_nranges].base = a;
    g_ranges[g_nranges].size = size;
    g_nranges++;
  }
  return a;
}

/* Programs memory BAR i with `addr` (below 4 GiB), keeping its flag bits. */
static void bar_assign(const struct pci_dev *d, unsigned i, uint64_t addr) {
  uint16_t off = (uint16_t)(PCI_BAR0 + 4 * i);
  uint32_t flags = pci_read32(d, off) & 0xfu;
  pci_write32(d, off, (uint32_t)addr | flags);
  if ((flags & 0x6) == BAR_TYPE_64) pci_write32(d, (uint16_t)(off + 4), 0);
}

bool pci_enable(struct pci_dev *d) {
  if (!g_ranges_known) {
    for_each_function(collect_ranges, NULL);
    g_ranges_known = true;
  }
  uint16_t cmd = pci_read16(d, PCI_COMMAND);
  pci_write16(d, PCI_COMMAND, (uint16_t)(cmd & ~PCI_COMMAND_MEMORY));
  bool ok = true;
  for (unsigned i = 0; i < 6;) {
    uint64_t addr, size;
    unsigned used = bar_probe(d, i, &addr, &size);
    d->bar_addr[i] = d->bar_size[i] = 0;
    if (size) {
      if (addr == 0 || addr + size > 0x100000000ull) {
        addr = window_alloc(size);
        if (!addr) {
          ok = false;
          break;
        }
        bar_assign(d, i, addr);
      }
      d->bar_addr[i] = addr;
      d->bar_size[i] = size;
    }
    i += used;
  }
  pci_write16(d, PCI_COMMAND, (uint16_t)(cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
  return ok;
}

bool pci_move_bars(struct pci_dev *d) {
  uint16_t cmd = pci_read16(d, PCI_COMMAND);
  pci_write16(d, PCI_COMMAND, (uint16_t)(cmd & ~PCI_COMMAND_MEMORY));
  bool ok = true;
  for (unsigned i = 0; i < 6 && ok; i++) {
    if (!d->bar_size[i]) continue;
    uint64_t addr = window_alloc(d->bar_size[i]);
    if (addr) {
      bar_assign(d, i, addr);
      d->bar_addr[i] = addr;
    }
    ok = addr != 0;
  }
  pci_write16(d, PCI_COMMAND, cmd);
  return ok;
}
