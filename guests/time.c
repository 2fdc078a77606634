/* TSC calibration against the i8254 PIT. */
#include "guest.h"

#define PIT_HZ        1193182u
#define PIT_CH0       0x40
#define PIT_CMD       0x43
#define CALIBRATE_MS  20u

uint64_t g_tsc_hz;

static uint16_t pit_ch0_read(void) {
  outb(PIT_CMD, 0x00);          /* counter latch, channel 0 */
  uint8_t lo = inb(PIT_CH0);
  uint8_t hi = inb(PIT_CH0);
  return (uint16_t)(lo | (hi << 8));
}

/*
 * Channel 0 is used (not channel 2) because its gate is tied high on
 * every PC-compatible PIT, while channel 2's gate depends on port 0x61,
 * which QEMU microvm under TCG does not implement. Channel 0's IRQ 0 goes
 * nowhere: LINT0 is masked (boot.S) and IOAPIC pins reset masked.
 */
void tsc_calibrate(void) {
  outb(PIT_CMD, 0x34);          /* channel 0, lo/hi, mode 2, binary */
  outb(PIT_CH0, 0x00);          /* reload 0 = 65536 */
  outb(PIT_CH0, 0x00);

  const uint32_t target = PIT_HZ / 1000u * CALIBRATE_MS;
  uint16_t prev = pit_ch0_read();
  uint64_t t0 = rdtsc();
  uint32_t elapsed = 0;
  uint64_t spins = 0;
  while (elapsed < target) {
    uint16_t now = pit_ch0_read();
    elapsed += (uint16_t)(prev - now);  /* the counter counts down and wraps */
    prev = now;
    if (++spins > 10000000u) break;     /* no PIT: fall back below */
  }
  uint64_t t1 = rdtsc();
  if (elapsed < target / 2) {
    g_tsc_hz = 2000000000ull;           /* a guess beats dividing by 0 */
    print("tsc_calibration=failed\n");
  } else {
    g_tsc_hz = (t1 - t0) * PIT_HZ / elapsed;
  }
  /* Mode 0 one-shot with the longest count: stops the periodic ticks. */
  outb(PIT_CMD, 0x30);
  outb(PIT_CH0, 0xff);
  outb(PIT_CH0, 0xff);
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
