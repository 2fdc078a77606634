/* Virtio 1.2 §4.1 (PCI transport) and §2.7 (split virtqueues). */
#include "virtio.h"

/* §4.1.4 virtio_pci_cap.cfg_type */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
#define PCI_CAP_VENDOR 0x09
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAP_PTR 0x34

/* §4.1.4.3 struct virtio_pci_common_cfg */
#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_NUMQ 0x12
#define COMMON_STATUS 0x14
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESC 0x20
#define COMMON_Q_AVAIL 0x28
#define COMMON_Q_USED 0x30

/* §2.1 device status */
#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_FAILED 0x80

#define NO_VECTOR 0xffff

static void write64_split(uint64_t addr, uint64_t v) {
  mmio_write32(addr, (uint32_t)v);
  mmio_write32(addr + 4, (uint32_t)(v >> 32));
}

static bool find_caps(struct virtio_dev *d) {
  if (!(pci_read16(&d->pci, PCI_STATUS) & PCI_STATUS_CAP_LIST)) return false;
  uint8_t ptr = pci_read8(&d->pci, PCI_CAP_PTR) & 0xfc;
  for (int guard = 0; ptr && guard < 48; guard++) {
    uint8_t id = pci_read8(&d->pci, ptr);
    uint8_t next = pci_read8(&d->pci, (uint16_t)(ptr + 1)) & 0xfc;
    if (id == PCI_CAP_VENDOR) {
      uint8_t type = pci_read8(&d->pci, (uint16_t)(ptr + 3));
      uint8_t bar = pci_read8(&d->pci, (uint16_t)(ptr + 4));
      uint32_t offset = pci_read32(&d->pci, (uint16_t)(ptr + 8));
      uint32_t length = pci_read32(&d->pci, (uint16_t)(ptr + 12));
      if (bar < 6 && d->pci.bar_size[bar] && (uint64_t)offset + length <= d->pci.bar_size[bar]) {
        uint64_t addr = d->pci.bar_addr[bar] + offset;
        /* The first capability of each type is the preferred one (§4.1.4). */
        if (type == CAP_COMMON && !d->common_cfg) d->common_cfg = addr;
        if (type == CAP_ISR && !d->isr_cfg) d->isr_cfg = addr;
        if (type == CAP_DEVICE && !d->device_cfg) d->device_cfg = addr;
        if (type == CAP_NOTIFY && !d->notify_base) {
          d->notify_base = addr;
          d->notify_off_multiplier = pci_read32(&d->pci, (uint16_t)(ptr + 16));
        }
      }
    }
    ptr = next;
  }
  return d->common_cfg && d->notify_base;
}

void virtio_reset(struct virtio_dev *d) {
  mmio_write8(d->common_cfg + COMMON_STATUS, 0);
  /* §4.1.4.3.2: reset completes when device_status reads back 0. */
  uint64_t deadline = rdtsc() + 4000000000ull;
  while (mmio_read8(d->common_cfg + COMMON_STATUS) != 0 && rdtsc() < deadline) cpu_relax();
}

bool virtio_open(uint16_t device_id, unsigned nth, uint64_t wanted, struct virtio_dev *d) {
  memset(d, 0, sizeof *d);
  if (!pci_find(VIRTIO_VENDOR_ID, device_id, nth, &d->pci)) {
    print("error=no-device\nvirtio_device_id=0x%x\n", device_id);
    return false;
  }
  if (!pci_enable(&d->pci)) {
    print("error=bar-assignment-failed\n");
    return false;
  }
  if (!find_caps(d)) {
    print("error=no-modern-virtio-capabilities\n");
    return false;
  }
  uint64_t common = d->common_cfg;
  virtio_reset(d);
  mmio_write8(common + COMMON_STATUS, STATUS_ACKNOWLEDGE);
  mmio_write8(common + COMMON_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);

  uint64_t offered = 0;
  for (uint32_t half = 0; half < 2; half++) {
    mmio_write32(common + COMMON_DFSELECT, half);
    offered |= (uint64_t)mmio_read32(common + COMMON_DF) << (32 * half);
  }
  if (!(offered & VIRTIO_F_VERSION_1)) {
    print("error=device-lacks-version-1\n");
    mmio_write8(common + COMMON_STATUS, STATUS_FAILED);
    return false;
  }
  d->features = offered & (wanted | VIRTIO_F_VERSION_1);
  for (uint32_t half = 0; half < 2; half++) {
    mmio_write32(common + COMMON_GFSELECT, half);
    mmio_write32(common + COMMON_GF, (uint32_t)(d->features >> (32 * half)));
  }
  mmio_write8(common + COMMON_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  if (!(mmio_read8(common + COMMON_STATUS) & STATUS_FEATURES_OK)) {
    print("error=features-rejected\n");
    mmio_write8(common + COMMON_STATUS, STATUS_FAILED);
    return false;
  }
  mmio_write16(common + COMMON_MSIX, NO_VECTOR);
  return true;
}

bool virtq_init(struct virtio_dev *d, uint16_t index, uint16_t max_size, struct virtq *q) {
  uint64_t common = d->common_cfg;
  memset(q, 0, sizeof *q);
  mmio_write16(common + COMMON_Q_SELECT, index);
  uint16_t size = mmio_read16(common + COMMON_Q_SIZE);
  if (size == 0) {
    print("error=queue-unavailable\nqueue=%u\n", index);
    return false;
  }
  if (size > max_size) size = max_size;
  if (size > VIRTQ_MAX_SIZE) size = VIRTQ_MAX_SIZE;
  /* §2.7: alignments 16 (desc), 2 (avail), 4 (used); give each its own page(s). */
  uint64_t desc_bytes = 16ull * size, avail_bytes = 6 + 2ull * size, used_bytes = 6 + 8ull * size;
  uint64_t desc = page_alloc(desc_bytes);
  uint64_t avail = page_alloc(avail_bytes);
  uint64_t used = page_alloc(used_bytes);
  if (!desc || !avail || !used) {
    print("error=out-of-memory\n");
    return false;
  }
  q->index = index;
  q->size = size;
  q->desc = (volatile struct virtq_desc *)desc;
  q->avail = (volatile struct virtq_avail *)avail;
  q->used = (volatile struct virtq_used *)used;
  for (uint16_t i = 0; i < size; i++) q->desc[i].next = (uint16_t)(i + 1);
  q->free_head = 0;
  q->num_free = size;
  q->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;   /* we poll */

  mmio_write16(common + COMMON_Q_SIZE, size);
  mmio_write16(common + COMMON_Q_MSIX, NO_VECTOR);
  write64_split(common + COMMON_Q_DESC, desc);
  write64_split(common + COMMON_Q_AVAIL, avail);
  write64_split(common + COMMON_Q_USED, used);
  uint16_t noff = mmio_read16(common + COMMON_Q_NOFF);
  q->notify_addr = d->notify_base + (uint64_t)noff * d->notify_off_multiplier;
  mmio_write16(common + COMMON_Q_ENABLE, 1);
  return true;
}

void virtio_driver_ok(struct virtio_dev *d) {
  mmio_write8(d->common_cfg + COMMON_STATUS,
              STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
}

int virtq_add(struct virtq *q, const struct virtio_buf *bufs, unsigned n) {
  if (n == 0 || n > q->num_free) return -1;
  uint16_t head = q->free_head, i = head;
  for (unsigned k = 0; k < n; k++) {
    volatile struct virtq_desc *d = &q->desc[i];
    d->addr = bufs[k].addr;
    d->len = bufs[k].len;
    d->flags = (uint16_t)((bufs[k].device_writes ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
    i = d->next;
  }
  q->free_head = i;
  q->num_free = (uint16_t)(q->num_free - n);
  q->chain_len[head] = (uint16_t)n;
  q->avail->ring[q->avail_idx % q->size] = head;
  q->avail_idx++;
  return head;
}

void virtq_kick(struct virtq *q) {
  barrier();                      /* ring entries before idx (x86 is TSO) */
  q->avail->idx = q->avail_idx;
  mb();                           /* idx visible before reading used->flags */
  if (!(q->used->flags & VIRTQ_USED_F_NO_NOTIFY)) mmio_write16(q->notify_addr, q->index);
}

bool virtq_pop(struct virtq *q, uint16_t *id, uint32_t *len) {
  if (q->used->idx == q->last_used) return false;
  barrier();                      /* idx before the element it covers */
  volatile struct virtq_used_elem *e = &q->used->ring[q->last_used % q->size];
  uint32_t used_id = e->id;
  if (used_id >= q->size || q->chain_len[used_id] == 0) {
    print("error=device-returned-bad-id\n");
    guest_exit(EXIT_WORKLOAD_FAILED);
  }
  uint16_t head = (uint16_t)used_id;
  *id = head;
  *len = e->len;
  q->last_used++;
  /* Return the chain to the free list: walk it to its tail. */
  uint16_t n = q->chain_len[head], tail = head;
  for (uint16_t k = 1; k < n; k++) tail = q->desc[tail].next;
  q->chain_len[head] = 0;
  q->desc[tail].next = q->free_head;
  q->free_head = head;
  q->num_free = (uint16_t)(q->num_free + n);
  return true;
}
