/*
 * `pci`: lists bus 0 with each function's Command register as found, and the
 * memory BARs of virtio functions after pci_enable(); with pci_move=1 it then
 * moves those BARs elsewhere (and lists them again).
 */
#include "virtio.h"

bool wl_pci(void) {
  print("pci_access=%s\n", pci_access_method());
  uint32_t mcfg_len = 0;
  const uint8_t *mcfg = acpi_table("MCFG", &mcfg_len);
  print("acpi_mcfg=%s\n", mcfg ? "yes" : "no");
  if (mcfg && mcfg_len >= 60) {
    uint64_t base;
    memcpy(&base, mcfg + 44, 8);
    print("acpi_mcfg_base=0x%lx\n", base);
  }
  unsigned count = 0;
  for (uint8_t dev = 0; dev < 32; dev++) {
    for (uint8_t fn = 0; fn < 8; fn++) {
      struct pci_dev d = {.dev = dev, .fn = fn};
      uint32_t id = pci_read32(&d, 0);
      if ((id & 0xffff) == 0xffff) {
        if (fn == 0) break;
        continue;
      }
      count++;
      print("pci_%02x_%u=%04x:%04x\n", dev, fn, id & 0xffff, id >> 16);
      print("pci_%02x_%u_command=0x%04x\n", dev, fn, pci_read16(&d, 0x04));
      if ((id & 0xffff) == VIRTIO_VENDOR_ID) {
        d.vendor_id = (uint16_t)id;
        d.device_id = (uint16_t)(id >> 16);
        if (!pci_enable(&d)) return false;
        for (unsigned i = 0; i < 6; i++) {
          if (d.bar_size[i]) print("pci_%02x_%u_bar%u=0x%lx+0x%lx\n", dev, fn, i, d.bar_addr[i], d.bar_size[i]);
        }
        if (arg_u64("pci_move", 0)) {
          if (!pci_move_bars(&d)) return false;
          for (unsigned i = 0; i < 6; i++) {
            if (d.bar_size[i]) print("pci_%02x_%u_moved_bar%u=0x%lx\n", dev, fn, i, d.bar_addr[i]);
          }
        }
      }
      if (fn == 0 && !(pci_read8(&d, 0x0e) & 0x80)) break;
    }
  }
  print("pci_functions=%u\n", count);
  return count > 0;
}
