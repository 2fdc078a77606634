/* TSC calibration against the i8254 PIT. */
#include "guest.h"

#define PIT_HZ        1193182u
#define PIT_CH0       0x40
#define PIT_CMD       0x43
#define CALIBRATE_MS  15u      /* per attempt */
#define ATTEMPTS      3u

uint64_t g_tsc_hz;

static uint16_t pit_ch0_read(void) {
  outb(PIT_CMD, 0x00);          /* counter latch, channel 0 */
  uint8_t lo = inb(PIT_CH0);
  uint8_t hi = inb(PIT_CH0);
  return (uint16_t)(lo | (hi << 8));
}

/*
 * One PIT read bracketed by the TSC. Each read is three port accesses that
 * exit to the VMM (and on KVM PVM also trap to ring 0), and the vCPU can be
 * descheduled inside it for milliseconds on a loaded host: the count is
 * latched at the first access, but when is only known to lie in
 * [tsc_before, tsc_after].
 */
struct pit_sample {
  uint16_t count;
  uint64_t tsc_before, tsc_after;
};

static struct pit_sample pit_sample(void) {
  struct pit_sample s;
  s.tsc_before = rdtsc();
  s.count = pit_ch0_read();
  s.tsc_after = rdtsc();
  return s;
}

static uint64_t sample_tsc(const struct pit_sample *s) { return s->tsc_before; }
static uint64_t sample_len(const struct pit_sample *s) { return s->tsc_after - s->tsc_before; }

/*
 * TSC ticks per second over ~CALIBRATE_MS of PIT counts, or 0. Only reads
 * no slower than `max_read` TSC ticks serve as the two endpoints, so a vCPU
 * descheduled inside an endpoint read cannot skew the ratio; reads in
 * between only count PIT wraps.
 */
static uint64_t calibrate_once(uint64_t max_read) {
  const uint32_t target = PIT_HZ / 1000u * CALIBRATE_MS;
  struct pit_sample first, s;
  uint64_t spins = 0;
  do {
    first = pit_sample();
    if (++spins > 1000000u) return 0;
  } while (sample_len(&first) > max_read);
  uint16_t prev = first.count;
  uint32_t elapsed = 0;
  for (;;) {
    s = pit_sample();
    elapsed += (uint16_t)(prev - s.count);  /* the counter counts down and wraps */
    prev = s.count;
    if (elapsed >= target && sample_len(&s) <= max_read) break;
    if (++spins > 10000000u) return 0;      /* no PIT */
  }
  return (sample_tsc(&s) - sample_tsc(&first)) * PIT_HZ / elapsed;
}

/*
 * Channel 0 is used (not channel 2) because its gate is tied high on
 * every PC-compatible PIT, while channel 2's gate depends on port 0x61,
 * which QEMU microvm under TCG does not implement. Channel 0's IRQ 0 goes
 * nowhere: LINT0 is masked (boot.S) and IOAPIC pins reset masked.
 *
 * The median of ATTEMPTS calibrations: one disturbed beyond what the
 * endpoint check catches (descheduled longer than a PIT period, 55 ms,
 * between two reads) cannot decide the result.
 */
void tsc_calibrate(void) {
  outb(PIT_CMD, 0x34);          /* channel 0, lo/hi, mode 2, binary */
  outb(PIT_CH0, 0x00);          /* reload 0 = 65536 */
  outb(PIT_CH0, 0x00);

  /* An undisturbed read takes about the fastest of a few. */
  uint64_t fastest = ~0ull;
  for (int i = 0; i < 8; i++) {
    struct pit_sample s = pit_sample();
    if (sample_len(&s) < fastest) fastest = sample_len(&s);
  }
  uint64_t max_read = fastest * 2;

  uint64_t hz[ATTEMPTS];
  unsigned n = 0;
  for (unsigned i = 0; i < ATTEMPTS; i++) {
    uint64_t h = calibrate_once(max_read);
    if (h) hz[n++] = h;
  }
  /* Mode 0 one-shot with the longest count: stops the periodic ticks. */
  outb(PIT_CMD, 0x30);
  outb(PIT_CH0, 0xff);
  outb(PIT_CH0, 0xff);
  if (n == 0) {
    g_tsc_hz = 2000000000ull;   /* a guess beats dividing by 0 */
    print("tsc_calibration=failed\n");
    return;
  }
  for (unsigned i = 1; i < n; i++) {   /* insertion sort, n <= ATTEMPTS */
    for (unsigned j = i; j > 0 && hz[j] < hz[j - 1]; j--) {
      uint64_t t = hz[j];
      hz[j] = hz[j - 1];
      hz[j - 1] = t;
    }
  }
  g_tsc_hz = hz[n / 2];
}

/* ticks * scale / tsc_hz without 128-bit division (no libgcc here). */
static uint64_t tsc_scale(uint64_t ticks, uint64_t scale) {
  return ticks / g_tsc_hz * scale + ticks % g_tsc_hz * scale / g_tsc_hz;
}

uint64_t tsc_to_us(uint64_t ticks) { return tsc_scale(ticks, 1000000u); }
uint64_t tsc_to_ns(uint64_t ticks) { return tsc_scale(ticks, 1000000000u); }

void delay_us(uint64_t us) {
  uint64_t end = rdtsc() + us * (g_tsc_hz / 1000000u);
  while (rdtsc() < end) cpu_relax();
}
