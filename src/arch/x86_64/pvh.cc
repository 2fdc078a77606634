#include "arch/x86_64/pvh.h"

#include "arch/x86_64/byte_order.h"
#include "arch/x86_64/elf.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/start_info.h"

namespace kumo::arch::x86_64 {
namespace {

Result<uint64_t> pvh_entry(const ElfImage& elf) {
  const auto note = KUMO_TRY(elf.find_note("Xen", kXenElfNotePhys32Entry));
  if (!note) {
    return invalid_input(
        "ELF kernel has no PVH entry note (Xen, XEN_ELFNOTE_PHYS32_ENTRY): it cannot be booted "
        "through PVH; use a kernel built with CONFIG_PVH or a bzImage");
  }
  if (note->size() == 4) {
    return load_le<uint32_t>(*note, 0);
  }
  if (note->size() == 8) {
    const auto entry = load_le<uint64_t>(*note, 0);
    if (entry > UINT32_MAX) {
      return invalid_input("PVH entry point {:#x} is above 4 GiB", entry);
    }
    return entry;
  }
  return invalid_input("PVH entry note has a {}-byte descriptor, expected 4 or 8", note->size());
}

}  // namespace

Result<LoadedKernel> load_pvh_kernel(memory::GuestMemory& mem, std::span<const uint8_t> image) {
  const uint64_t ram_bytes = KUMO_TRY(layout_ram_bytes(mem));
  const uint64_t ram_end = low_ram_end(ram_bytes);
  const ElfImage elf = KUMO_TRY(ElfImage::parse(image));
  const uint64_t entry = KUMO_TRY(pvh_entry(elf));

  uint64_t kernel_end = kKernelLoadGpa;
  bool entry_loaded = false;
  for (size_t i = 0; i < elf.segments().size(); ++i) {
    const ElfSegment& s = elf.segments()[i];
    if (s.type != kPtLoad || s.mem_bytes == 0) {
      continue;
    }
    uint64_t end = 0;
    if (__builtin_add_overflow(s.paddr, s.mem_bytes, &end) || s.paddr < kKernelLoadGpa ||
        end > ram_end) {
      return invalid_input(
          "ELF segment at {:#x} of {:#x} bytes is outside the kernel area [{:#x}, {:#x}) of "
          "guest RAM",
          s.paddr, s.mem_bytes, kKernelLoadGpa, ram_end);
    }
    kernel_end = std::max(kernel_end, end);
    entry_loaded = entry_loaded || (entry >= s.paddr && entry < end);
  }
  if (!entry_loaded) {
    return invalid_input("PVH entry point {:#x} is not inside a loaded ELF segment", entry);
  }
  for (const ElfSegment& s : elf.segments()) {
    if (s.type != kPtLoad || s.mem_bytes == 0) {
      continue;
    }
    const memory::GuestAddress at(s.paddr);
    KUMO_TRY(mem.write(at, elf.file_bytes(s)));
    KUMO_TRY(mem.fill(at.unchecked_add(s.file_bytes), 0, s.mem_bytes - s.file_bytes));
  }

  LoadedKernel loaded;
  loaded.format = KernelFormat::kPvhElf;
  loaded.entry = memory::GuestAddress(entry);
  loaded.end_gpa = kernel_end;
  loaded.initrd_limit_gpa = ram_end;
  loaded.cmdline_max_bytes = kCmdlineMaxBytes - 1;
  return loaded;
}

Status write_pvh_start_info(memory::GuestMemory& mem, const BootInfo& info) {
  if (info.e820.size() > kPvhMemmapMaxEntries) {
    return invalid_input("e820 map has {} entries, hvm_start_info holds at most {}",
                         info.e820.size(), kPvhMemmapMaxEntries);
  }
  HvmStartInfo start;
  start.cmdline_paddr = info.cmdline_gpa;
  start.rsdp_paddr = info.rsdp_gpa;
  start.memmap_paddr = kPvhMemmapGpa;
  start.memmap_entries = static_cast<uint32_t>(info.e820.size());
  if (info.initrd) {
    HvmModlistEntry module;
    module.paddr = info.initrd->gpa;
    module.size = info.initrd->size_bytes;
    KUMO_TRY(mem.write_obj(memory::GuestAddress(kPvhModlistGpa), module));
    start.nr_modules = 1;
    start.modlist_paddr = kPvhModlistGpa;
  }
  for (size_t i = 0; i < info.e820.size(); ++i) {
    HvmMemmapTableEntry entry;
    entry.addr = info.e820[i].addr;
    entry.size = info.e820[i].size;
    entry.type = static_cast<uint32_t>(info.e820[i].type);
    KUMO_TRY(mem.write_obj(
        memory::GuestAddress(kPvhMemmapGpa + i * sizeof(HvmMemmapTableEntry)), entry));
  }
  return mem.write_obj(memory::GuestAddress(kPvhStartInfoGpa), start);
}

}  // namespace kumo::arch::x86_64
