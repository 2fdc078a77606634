/*
 * virtio-console (virtio 1.2 §5.3) workload: console-write. Port 0 only (no
 * MULTIPORT): queue 0 is receiveq0, queue 1 transmitq0. Sends one line on
 * transmitq0 and waits until the device has used it.
 */
#include "virtio.h"

#define CONSOLE_LINE "virtio_console=hello\n"

bool wl_console_write(void) {
  static struct virtio_dev dev;
  static struct virtq rxq, txq;
  static char line[] = CONSOLE_LINE;
  tsc_calibrate();
  if (!virtio_open(VIRTIO_ID_CONSOLE, 0, 0, &dev)) return false;
  if (!virtq_init(&dev, 0, 8, &rxq) || !virtq_init(&dev, 1, 8, &txq)) return false;
  virtio_driver_ok(&dev);
  struct virtio_buf b = {(uint64_t)(uintptr_t)line, sizeof line - 1, false};
  if (virtq_add(&txq, &b, 1) < 0) return false;
  virtq_kick(&txq);
  uint16_t id;
  uint32_t len;
  uint64_t deadline = rdtsc() + 10 * g_tsc_hz;
  while (!virtq_pop(&txq, &id, &len)) {
    if (rdtsc() > deadline) {
      print("error=console-timeout\n");
      return false;
    }
    cpu_relax();
  }
  print("console_bytes=%u\n", (unsigned)(sizeof line - 1));
  return true;
}
