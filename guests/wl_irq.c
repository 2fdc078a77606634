/* LAPIC timer in periodic mode, counted by the ring-0 stub in boot.S. */
#include "guest.h"

#define LAPIC_LVT_TIMER   0x320
#define LAPIC_TIMER_INIT  0x380
#define LAPIC_TIMER_CUR   0x390
#define LAPIC_TIMER_DIV   0x3e0
#define LVT_MASKED        0x10000u
#define LVT_PERIODIC      0x20000u
#define TIMER_DIV_16      0x3u

/* LAPIC timer ticks per second at divide-by-16, measured with the TSC. */
static uint64_t lapic_timer_hz(void) {
  lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_16);
  lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
  lapic_write(LAPIC_TIMER_INIT, 0xffffffffu);
  uint64_t t0 = rdtsc();
  delay_us(10000);
  uint32_t cur = lapic_read(LAPIC_TIMER_CUR);
  uint64_t t1 = rdtsc();
  lapic_write(LAPIC_TIMER_INIT, 0);
  uint64_t us = tsc_to_us(t1 - t0);
  return us ? (uint64_t)(0xffffffffu - cur) * 1000000u / us : 0;
}

bool wl_irq(void) {
  uint64_t period_ms = arg_u64("period_ms", 200);
  uint64_t hz = arg_u64("hz", 1000);
  if (hz == 0 || period_ms == 0) {
    print("error=bad-arguments\n");
    return false;
  }
  tsc_calibrate();
  uint64_t timer_hz = lapic_timer_hz();
  if (timer_hz < hz) {
    print("error=lapic-timer-not-counting\n");
    return false;
  }

  irq_count = 0;
  lapic_write(LAPIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
  lapic_write(LAPIC_TIMER_INIT, (uint32_t)(timer_hz / hz));
  uint64_t start_count = irq_count;
  uint64_t t0 = rdtsc();
  uint64_t end = t0 + period_ms * (g_tsc_hz / 1000);
  uint64_t now;
  while ((now = rdtsc()) < end) cpu_relax();
  uint64_t count = irq_count - start_count;
  lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
  lapic_write(LAPIC_TIMER_INIT, 0);

  uint64_t elapsed_us = tsc_to_us(now - t0);
  uint64_t irq_hz = elapsed_us ? count * 1000000u / elapsed_us : 0;
  print("lapic_timer_hz=%lu\n", timer_hz * 16);
  print("irq_target_hz=%lu\n", hz);
  print("irq_count=%lu\n", count);
  print("irq_hz=%lu\n", irq_hz);
  /* Interrupts must arrive, and never faster than twice the programmed rate (a storm).
   * No lower rate bound: on a loaded host the vCPU thread can be descheduled for most of
   * the period, which delays ticks without anything being wrong in the VMM. The rate is
   * reported for benchmarks, not asserted. */
  return count > 0 && irq_hz <= hz * 2;
}
