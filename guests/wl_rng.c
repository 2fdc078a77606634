/* virtio-rng (virtio 1.2 §5.4): one device-writable buffer at a time. */
#include "virtio.h"

#define RNG_BYTES 64u

bool wl_rng(void) {
  static struct virtio_dev dev;
  static struct virtq vq;
  static uint8_t buf[RNG_BYTES];
  tsc_calibrate();
  if (!virtio_open(VIRTIO_ID_RNG, 0, 0, &dev) || !virtq_init(&dev, 0, 16, &vq)) return false;
  virtio_driver_ok(&dev);

  uint32_t have = 0;
  uint64_t deadline = rdtsc() + 5 * g_tsc_hz;
  while (have < RNG_BYTES) {
    struct virtio_buf b = {(uint64_t)(uintptr_t)(buf + have), RNG_BYTES - have, true};
    if (virtq_add(&vq, &b, 1) < 0) return false;
    virtq_kick(&vq);
    uint16_t id;
    uint32_t len = 0;
    while (!virtq_pop(&vq, &id, &len)) {
      if (rdtsc() > deadline) {
        print("error=rng-timeout\nrng_bytes=%u\n", have);
        return false;
      }
      cpu_relax();
    }
    if (len > RNG_BYTES - have) len = RNG_BYTES - have;
    have += len;
  }
  bool varied = false;
  for (unsigned i = 1; i < RNG_BYTES; i++) varied |= buf[i] != buf[0];
  print("rng_bytes=%u\n", have);
  print("rng_first8=0x%02x%02x%02x%02x%02x%02x%02x%02x\n", buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7]);
  print("rng_varied=%s\n", varied ? "yes" : "no");
  return varied;
}
