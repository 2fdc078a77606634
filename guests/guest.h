/*
 * The test guest's ring-3 runtime: port and MMIO access, serial output,
 * the command line, time, and the platform facts the workloads share.
 *
 * Everything here runs in ring 3 with IOPL=3 on an identity map of the
 * first 4 GiB (boot.S), so physical addresses below 4 GiB are pointers.
 * Single-threaded: only the BSP runs C code.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Platform contract, shared with boot.S. */
#define LAPIC_BASE          0xfee00000u
#define VEC_TIMER           0x40
#define VEC_SPURIOUS        0xff
#define AP_TRAMPOLINE_PHYS  0x8000u

#define PORT_SERIAL         0x3f8
#define PORT_DEBUG_EXIT     0xf4
#define PORT_BOOT_MARKER    0x440
#define PORT_I8042_COMMAND  0x64

enum exit_code {
  EXIT_OK = 0,
  EXIT_WORKLOAD_FAILED = 1,
  EXIT_BAD_COMMAND_LINE = 2,
  EXIT_TRAP = 3,               /* written by trap.c from ring 0 */
};

/* Xen public/arch-x86/hvm/start_info.h, version 1. */
#define HVM_START_MAGIC 0x336ec578u
struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;      /* version >= 1 */
  uint32_t memmap_entries;    /* version >= 1 */
  uint32_t reserved;
};

struct hvm_memmap_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;               /* 1 = RAM (e820 numbering) */
  uint32_t reserved;
};

/* ---- CPU and I/O ---------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/*
 * A pointer to physical address `pa`, opaque to the optimizer so that
 * fixed low addresses (e.g. the BDA at 0x40e) do not trip -Warray-bounds.
 */
static inline void *phys_ptr(uint64_t pa) {
  __asm__("" : "+r"(pa));
  return (void *)pa;
}

static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline uint64_t mmio_read64(uint64_t a) { return *(volatile uint64_t *)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_write64(uint64_t a, uint64_t v) { *(volatile uint64_t *)a = v; }

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
/* Orders stores to shared memory before a device is notified. */
static inline void wmb(void) { __asm__ volatile("sfence" ::: "memory"); }
static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

static inline uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }

/* ---- freestanding libc subset (rt.c); the compiler may call these ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool streq(const char *a, const char *b);

/* ---- console (16550A at 0x3f8, polled) ------------------------------- */
void console_write(const char *s, size_t n);
/* printf subset: %s %c %d %u %x %p with optional 0-padding, width, l/ll/z. */
void print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes the status byte to the debug-exit port, then spins forever. */
_Noreturn void guest_exit(int code);
/* Pulses the reset line through the i8042 (command 0xfe), then spins forever. */
_Noreturn void guest_reboot(void);

/* ---- boot info and command line (main.c) ------------------------------ */
extern const struct hvm_start_info *g_start_info;

/*
 * Returns the value of `key=value` on the command line, copied into a
 * static buffer that the next call reuses, or NULL when absent.
 */
const char *arg_str(const char *key);
/* Decimal (or 0x-prefixed hex) value of `key`, or `dflt` when absent. */
uint64_t arg_u64(const char *key, uint64_t dflt);

/* Guest image bounds from the linker script (physical = virtual). */
extern char __image_start[], __image_end[];

/* ---- time (time.c) ------------------------------------------------- */
extern uint64_t g_tsc_hz;
/* Measures the TSC against PIT channel 0 (~20 ms); sets g_tsc_hz. */
void tsc_calibrate(void);
uint64_t tsc_to_us(uint64_t ticks);
uint64_t tsc_to_ns(uint64_t ticks);
void delay_us(uint64_t us);

/* ---- CPUs (acpi.c) --------------------------------------------------- */
#define MAX_CPUS 64
struct cpu_list {
  unsigned count;
  uint8_t apic_id[MAX_CPUS];
  const char *source;          /* "acpi", "mptable" or "none" */
};
/* Enabled CPUs from the ACPI MADT, else the MP table. */
void cpu_discover(struct cpu_list *out);
/*
 * The ACPI table with `signature` (checksum verified), header included,
 * or NULL; *length gets its length.
 */
const void *acpi_table(const char signature[4], uint32_t *length);
/* Number of CPUs: the `cpus=` override, else discovery. */
unsigned cpu_count(void);

/* ---- shared with boot.S --------------------------------------------- */
extern volatile uint64_t irq_count;     /* bumped by the timer stub */
extern volatile uint32_t ap_count;      /* bumped by each AP once */
extern const char ap_trampoline_start[], ap_trampoline_end[];

/* ---- memory map --------------------------------------------------- */
/* Total RAM in the memmap, in bytes (0 if the loader gave no memmap). */
uint64_t ram_total_bytes(void);
/*
 * Largest RAM range above the guest image: [*base, *base + *len).
 * Returns false when there is none.
 */
bool free_ram_range(uint64_t *base, uint64_t *len);
/*
 * Bump allocator over free RAM below 4 GiB, above the image; page-aligned,
 * zeroed. Never freed. Returns 0 when out of memory.
 */
uint64_t page_alloc(uint64_t bytes);

/* ---- workloads ------------------------------------------------------ */
/* Each returns true on success; results are printed as key=value lines. */
bool wl_hello(void);
bool wl_boot(void);
bool wl_mem(void);
bool wl_cpu(void);
bool wl_smp(void);
bool wl_irq(void);
bool wl_blk_verify(void);
bool wl_blk_bench(void);
bool wl_rng(void);
bool wl_net_echo(void);
bool wl_net_bench(void);
bool wl_net_reflect(void);
bool wl_console_write(void);
bool wl_pci(void);
