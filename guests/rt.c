/* Freestanding runtime: libc subset, serial console, print, exit. */
#include <stdarg.h>

#include "guest.h"

/* rep movs/stos: fast in ring 3 and never turned back into a libc call. */
void *memset(void *d, int c, size_t n) {
  void *p = d;
  __asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(c) : "memory");
  return d;
}

void *memcpy(void *d, const void *s, size_t n) {
  void *dp = d;
  __asm__ volatile("rep movsb" : "+D"(dp), "+S"(s), "+c"(n) : : "memory");
  return d;
}

void *memmove(void *d, const void *s, size_t n) {
  if ((uintptr_t)d <= (uintptr_t)s || (uintptr_t)d >= (uintptr_t)s + n) return memcpy(d, s, n);
  volatile unsigned char *dp = d;
  const volatile unsigned char *sp = s;
  while (n--) dp[n] = sp[n];
  return d;
}

int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (size_t i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

bool streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* 16550A: THR at +0, LSR at +5; LSR bit 5 = transmit holding register empty. */
static void serial_putc(char c) {
  while (!(inb(PORT_SERIAL + 5) & 0x20)) cpu_relax();
  outb(PORT_SERIAL, (uint8_t)c);
}

void console_write(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) serial_putc(s[i]);
}

/* print() buffers one call's output so a line goes out in one burst. */
struct out_buf {
  char data[256];
  size_t len;
};

static void out_flush(struct out_buf *o) {
  console_write(o->data, o->len);
  o->len = 0;
}

static void out_char(struct out_buf *o, char c) {
  if (o->len == sizeof o->data) out_flush(o);
  o->data[o->len++] = c;
}

static void out_number(struct out_buf *o, uint64_t v, unsigned base, bool negative, unsigned width, char pad) {
  char tmp[24];
  unsigned n = 0;
  do {
    unsigned digit = (unsigned)(v % base);
    tmp[n++] = (char)(digit < 10 ? '0' + digit : 'a' + digit - 10);
    v /= base;
  } while (v);
  if (negative) tmp[n++] = '-';
  while (width > n) out_char(o, pad), width--;
  while (n) out_char(o, tmp[--n]);
}

void print(const char *fmt, ...) {
  struct out_buf o;
  o.len = 0;
  va_list ap;
  va_start(ap, fmt);
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') {
      out_char(&o, *p);
      continue;
    }
    p++;
    char pad = ' ';
    unsigned width = 0;
    int longs = 0;
    if (*p == '0') pad = '0', p++;
    while (*p >= '0' && *p <= '9') width = width * 10 + (unsigned)(*p++ - '0');
    while (*p == 'l' || *p == 'z') longs++, p++;
    switch (*p) {
      case 's': {
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        while (*s) out_char(&o, *s++);
        break;
      }
      case 'c':
        out_char(&o, (char)va_arg(ap, int));
        break;
      case 'd': {
        int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
        out_number(&o, v < 0 ? (uint64_t)-v : (uint64_t)v, 10, v < 0, width, pad);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        out_number(&o, v, *p == 'u' ? 10 : 16, false, width, pad);
        break;
      }
      case 'p':
        out_char(&o, '0');
        out_char(&o, 'x');
        out_number(&o, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, false, width, pad);
        break;
      case '%':
        out_char(&o, '%');
        break;
      default:  /* unknown conversion (or end of string): stop */
        va_end(ap);
        out_flush(&o);
        return;
    }
  }
  va_end(ap);
  out_flush(&o);
}

_Noreturn void guest_exit(int code) {
  outb(PORT_DEBUG_EXIT, (uint8_t)code);
  /* Ring 3 cannot hlt; if the write did not stop the machine, spin. */
  for (;;) cpu_relax();
}

_Noreturn void guest_reboot(void) {
  outb(PORT_I8042_COMMAND, 0xfe);
  for (;;) cpu_relax();
}
