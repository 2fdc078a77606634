/* AP bring-up with INIT-SIPI-SIPI (SDM Vol. 3 §9.4.4), driven from ring 3. */
#include "guest.h"

#define LAPIC_ID        0x020
#define LAPIC_ICR_LOW   0x300
#define LAPIC_ICR_HIGH  0x310
#define ICR_INIT        0x00004500u   /* INIT, level assert */
#define ICR_STARTUP     0x00004600u   /* Start-up, level assert */
#define ICR_PENDING     0x00001000u   /* delivery status */

static bool icr_send(uint8_t apic_id, uint32_t low) {
  lapic_write(LAPIC_ICR_HIGH, (uint32_t)apic_id << 24);
  lapic_write(LAPIC_ICR_LOW, low);
  uint64_t deadline = rdtsc() + g_tsc_hz / 10;
  while (lapic_read(LAPIC_ICR_LOW) & ICR_PENDING) {
    if (rdtsc() > deadline) return false;
    cpu_relax();
  }
  return true;
}

bool wl_smp(void) {
  struct cpu_list cpus;
  cpu_discover(&cpus);
  unsigned expected = cpu_count();
  tsc_calibrate();

  size_t tramp_len = (size_t)(ap_trampoline_end - ap_trampoline_start);
  memcpy((void *)(uintptr_t)AP_TRAMPOLINE_PHYS, ap_trampoline_start, tramp_len);
  ap_count = 0;
  mb();

  uint8_t self = (uint8_t)(lapic_read(LAPIC_ID) >> 24);
  unsigned started = 0;
  bool ok = true;
  for (unsigned i = 0; i < cpus.count; i++) {
    uint8_t id = cpus.apic_id[i];
    if (id == self) continue;
    ok &= icr_send(id, ICR_INIT);
    delay_us(10000);
    for (int sipi = 0; sipi < 2; sipi++) {
      ok &= icr_send(id, ICR_STARTUP | (AP_TRAMPOLINE_PHYS >> 12));
      delay_us(200);
    }
    started++;
  }
  uint64_t deadline = rdtsc() + g_tsc_hz;   /* 1 s for every AP to check in */
  while (ap_count < started && rdtsc() < deadline) cpu_relax();

  unsigned seen = ap_count + 1;
  print("cpus_source=%s\n", cpus.source);
  print("bsp_apic_id=%u\n", self);
  print("cpus_expected=%u\n", expected);
  print("cpus_seen=%u\n", seen);
  if (!ok) print("error=icr-delivery-timeout\n");
  return ok && seen == expected;
}
