/*
 * Virtio 1.2 over PCI, modern interface only (§4.1), split virtqueues
 * (§2.7), driven by polling the used ring: no interrupts, no MSI-X.
 * All ring memory comes from page_alloc() and is identity-mapped, so
 * guest-physical addresses are the pointers themselves.
 */
#pragma once

#include "pci.h"

#define VIRTIO_VENDOR_ID 0x1af4
#define VIRTIO_ID_NET 0x1041
#define VIRTIO_ID_BLK 0x1042
#define VIRTIO_ID_CONSOLE 0x1043
#define VIRTIO_ID_RNG 0x1044

#define VIRTIO_F_VERSION_1 (1ull << 32)

struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

struct virtq_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[];
};
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_used_elem {
  uint32_t id;
  uint32_t len;
};
struct virtq_used {
  uint16_t flags;
  uint16_t idx;
  struct virtq_used_elem ring[];
};
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq {
  uint16_t index;
  uint16_t size;
  volatile struct virtq_desc *desc;
  volatile struct virtq_avail *avail;
  volatile struct virtq_used *used;
  uint16_t free_head;
  uint16_t num_free;
  uint16_t avail_idx;        /* next avail slot (driver's shadow) */
  uint16_t last_used;        /* next used slot to consume */
  uint16_t chain_len[256];   /* descriptors in the chain headed by id */
  uint64_t notify_addr;
};
#define VIRTQ_MAX_SIZE 256

struct virtio_buf {
  uint64_t addr;
  uint32_t len;
  bool device_writes;
};

struct virtio_dev {
  struct pci_dev pci;
  uint64_t common_cfg;
  uint64_t notify_base;
  uint32_t notify_off_multiplier;
  uint64_t isr_cfg;
  uint64_t device_cfg;
  uint64_t features;          /* negotiated */
};

/*
 * Finds the `nth` virtio PCI function with `device_id`, enables it, resets
 * it and negotiates features: VERSION_1 (required) plus whatever of
 * `wanted` the device offers. Leaves the device at FEATURES_OK; set up the
 * queues, then call virtio_driver_ok(). Prints `error=` lines on failure.
 */
bool virtio_open(uint16_t device_id, unsigned nth, uint64_t wanted, struct virtio_dev *d);
/* Sets up queue `index` with min(device max, max_size) entries. */
bool virtq_init(struct virtio_dev *d, uint16_t index, uint16_t max_size, struct virtq *q);
void virtio_driver_ok(struct virtio_dev *d);
/* Reset: the device stops using every queue. */
void virtio_reset(struct virtio_dev *d);

/*
 * Adds a descriptor chain made of `n` buffers (device-readable ones first)
 * to the avail ring without publishing it. Returns the chain's head id, or
 * -1 when the queue lacks free descriptors.
 */
int virtq_add(struct virtq *q, const struct virtio_buf *bufs, unsigned n);
/* Publishes added chains and notifies the device unless it opted out. */
void virtq_kick(struct virtq *q);
/* Pops one used chain: its head id and written length. False if none. */
bool virtq_pop(struct virtq *q, uint16_t *id, uint32_t *len);
