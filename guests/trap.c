/*
 * Ring-0 exception reporter, called by boot.S exc_common on the TSS.RSP0
 * stack. Compiled without SSE/x87 (CMakeLists.txt) so that it touches no
 * state the emulated ring 0 might not support. Prints
 *   trap_vector=N trap_rip=0x... trap_error=0x... trap_cs=0x...
 * one per line, then exits with EXIT_TRAP.
 */
#include "guest.h"

struct trap_frame {
  uint64_t vector;
  uint64_t error;
  uint64_t rip;
  uint64_t cs;
  uint64_t rflags;
  uint64_t rsp;
  uint64_t ss;
};

_Noreturn void trap_report(const struct trap_frame *f);

/* Registers saved by boot.S gp_isr, then the CPU's #GP frame. */
struct io_frame {
  uint64_t rax, rcx, rdx, rsi, rdi, r8, r9, r10, r11;
  uint64_t error, rip, cs, rflags, rsp, ss;
};

bool io_emulate(struct io_frame *f);

/*
 * Performs the ring-3 in/out instruction at f->rip (forms: E4-E7 imm8,
 * EC-EF with the port in DX, optional 0x66 operand-size prefix) and steps
 * over it. Returns false for anything else, which is then a real #GP.
 */
bool io_emulate(struct io_frame *f) {
  if ((f->cs & 3) != 3) return false;
  const uint8_t *ip = (const uint8_t *)f->rip;
  unsigned len = 0, size = 4;
  if (ip[0] == 0x66) size = 2, len = 1;
  uint8_t op = ip[len++];
  uint16_t port;
  if (op >= 0xe4 && op <= 0xe7) {
    port = ip[len++];
  } else if (op >= 0xec && op <= 0xef) {
    port = (uint16_t)f->rdx;
  } else {
    return false;
  }
  if (!(op & 1)) size = 1;
  if (op & 2) {
    if (size == 1) outb(port, (uint8_t)f->rax);
    else if (size == 2) outw(port, (uint16_t)f->rax);
    else outl(port, (uint32_t)f->rax);
  } else {
    if (size == 1) f->rax = (f->rax & ~0xffull) | inb(port);
    else if (size == 2) f->rax = (f->rax & ~0xffffull) | inw(port);
    else f->rax = inl(port);   /* 32-bit results zero-extend */
  }
  f->rip += len;
  return true;
}

static void trap_putc(char c) {
  while (!(inb(PORT_SERIAL + 5) & 0x20)) {
  }
  outb(PORT_SERIAL, (uint8_t)c);
}

static void trap_puts(const char *s) {
  while (*s) trap_putc(*s++);
}

static void trap_kv(const char *key, uint64_t v) {
  trap_puts(key);
  trap_puts("=0x");
  for (int shift = 60; shift >= 0; shift -= 4) {
    unsigned d = (unsigned)(v >> shift) & 0xf;
    trap_putc((char)(d < 10 ? '0' + d : 'a' + d - 10));
  }
  trap_putc('\n');
}

_Noreturn void trap_report(const struct trap_frame *f) {
  trap_puts("\n");
  trap_kv("trap_vector", f->vector);
  trap_kv("trap_rip", f->rip);
  trap_kv("trap_error", f->error);
  trap_kv("trap_cs", f->cs);
  trap_kv("trap_rsp", f->rsp);
  trap_kv("trap_rflags", f->rflags);
  if (f->vector == 14) {
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    trap_kv("trap_cr2", cr2);
  }
  trap_puts("status=fail\n");
  outb(PORT_DEBUG_EXIT, EXIT_TRAP);
  for (;;) __asm__ volatile("cli; hlt");
}
