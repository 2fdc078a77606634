/*
 * PCI on bus 0: configuration access (mechanism #1 at 0xcf8/0xcfc, or
 * ECAM from the ACPI MCFG table when no host bridge answers there), device
 * lookup, and memory BAR sizing/assignment below 4 GiB.
 */
#pragma once

#include "guest.h"

struct pci_dev {
  uint8_t bus, dev, fn;
  uint16_t vendor_id, device_id;
  /* Memory BARs after pci_enable(): CPU address and size; 0 if absent. */
  uint64_t bar_addr[6];
  uint64_t bar_size[6];
};

uint32_t pci_read32(const struct pci_dev *d, uint16_t off);
uint16_t pci_read16(const struct pci_dev *d, uint16_t off);
uint8_t pci_read8(const struct pci_dev *d, uint16_t off);
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v);
void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v);

/* Finds the `nth` (0-based) function on bus 0 with these IDs. */
bool pci_find(uint16_t vendor_id, uint16_t device_id, unsigned nth, struct pci_dev *out);

/*
 * Sizes every memory BAR; assigns the ones firmware left at 0 (or put
 * above 4 GiB, beyond the guest's identity map) from the window
 * 0xC0000000-0xFEBFFFFF, avoiding every BAR already assigned on bus 0;
 * then enables memory decoding and bus mastering. I/O BARs are ignored.
 * Returns false when the window is exhausted.
 */
bool pci_enable(struct pci_dev *d);

/*
 * Moves every memory BAR pci_enable() found to a fresh address from the
 * window, with memory decoding off meanwhile (as an OS reassigning
 * resources does). Returns false when the window is exhausted.
 */
bool pci_move_bars(struct pci_dev *d);

/* "cf8" or "ecam": how configuration space was reached. */
const char *pci_access_method(void);
