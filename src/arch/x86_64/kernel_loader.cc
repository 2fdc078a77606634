#include "arch/x86_64/kernel_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/bzimage.h"
#include "arch/x86_64/e820.h"
#include "arch/x86_64/elf.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/pvh.h"
#include "arch/x86_64/zero_page.h"
#include "base/unique_fd.h"

namespace kumo::arch::x86_64 {
namespace {

constexpr uint64_t kCopyChunkBytes = 1 * kMiB;

struct OpenFile {
  UniqueFd fd;
  uint64_t size_bytes = 0;
};

// Opens a regular file given by the user; `what` names it in messages ("kernel", "initrd").
Result<OpenFile> open_input(const std::filesystem::path& path, std::string_view what) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return make_error(ErrorKind::kInvalidInput, errno,
                      fmt::format("cannot open {} '{}'", what, path.string()));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return host_error("stat of {} '{}'", what, path.string());
  }
  if (!S_ISREG(st.st_mode)) {
    return invalid_input("{} '{}' is not a regular file", what, path.string());
  }
  return OpenFile{std::move(fd), static_cast<uint64_t>(st.st_size)};
}

// Reads exactly `out.size()` bytes at `offset`; a short file is kInvalidInput (it shrank).
Status read_exact(const OpenFile& file, uint64_t offset, std::span<uint8_t> out,
                  const std::filesystem::path& path) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(file.fd.get(), out.data() + done, out.size() - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return host_error("reading '{}'", path.string());
    }
    if (n == 0) {
      return invalid_input("'{}' shrank while it was being read", path.string());
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

constexpr uint32_t kXenElfNoteGuestOs = 6;

Result<LoadedKernel> load_format(memory::GuestMemory& mem, std::span<const uint8_t> kernel) {
  if (has_elf_magic(kernel)) {
    return load_pvh_kernel(mem, kernel);
  }
  if (has_bzimage_magic(kernel)) {
    return load_bzimage(mem, kernel);
  }
  return invalid_input("not an ELF or bzImage kernel");
}

Status write_cmdline(memory::GuestMemory& mem, const LoadedKernel& kernel,
                     std::string_view cmdline) {
  if (cmdline.size() > kernel.cmdline_max_bytes) {
    return invalid_input("kernel command line is {} bytes, the kernel accepts at most {}",
                         cmdline.size(), kernel.cmdline_max_bytes);
  }
  if (cmdline.find('\0') != std::string_view::npos) {
    return invalid_input("kernel command line contains a NUL byte");
  }
  const memory::GuestAddress at(kCmdlineGpa);
  KUMO_TRY(mem.write(at, std::span(reinterpret_cast<const uint8_t*>(cmdline.data()),
                                   cmdline.size())));
  return mem.fill(at.unchecked_add(cmdline.size()), 0, 1);
}

// Everything after the kernel and initrd are in RAM.
Result<BootEntry> finish(memory::GuestMemory& mem, const LoadedKernel& kernel,
                         std::optional<InitrdPlacement> initrd, const BootOptions& options) {
  const uint64_t ram_bytes = KUMO_TRY(layout_ram_bytes(mem));
  AcpiConfig acpi;
  acpi.vcpu_count = options.vcpu_count;
  acpi.has_i8042 = options.has_i8042;
  acpi.has_cmos_rtc = options.has_cmos_rtc;
  const memory::GuestAddress rsdp = KUMO_TRY(write_acpi_tables(mem, acpi));
  KUMO_TRY(write_mptable(mem, options.vcpu_count));

  BootInfo info;
  info.cmdline_gpa = kCmdlineGpa;
  info.cmdline_bytes = options.cmdline.size();
  info.initrd = initrd;
  info.rsdp_gpa = rsdp.raw();
  info.e820 = KUMO_TRY(e820_map(ram_bytes));
  KUMO_TRY(write_boot_gdt(mem));
  KUMO_TRY(write_identity_page_tables(mem));
  if (kernel.format == KernelFormat::kPvhElf) {
    KUMO_TRY(write_pvh_start_info(mem, info));
    return pvh_boot_entry(kernel.entry, memory::GuestAddress(kPvhStartInfoGpa), rsdp);
  }
  KUMO_TRY(write_zero_page(mem, kernel, info));
  return linux64_boot_entry(kernel.entry, memory::GuestAddress(kZeroPageGpa), rsdp);
}

}  // namespace

Result<InitrdPlacement> place_initrd(const LoadedKernel& kernel, uint64_t size_bytes) {
  if (size_bytes == 0) {
    return invalid_input("initrd is empty");
  }
  const uint64_t limit = kernel.initrd_limit_gpa;
  if (size_bytes > limit || (limit - size_bytes) / kInitrdAlignBytes * kInitrdAlignBytes <
                                kernel.end_gpa) {
    return invalid_input(
        "initrd of {} bytes does not fit in guest RAM between the kernel's end {:#x} and "
        "{:#x}",
        size_bytes, kernel.end_gpa, limit);
  }
  return InitrdPlacement{(limit - size_bytes) / kInitrdAlignBytes * kInitrdAlignBytes,
                         size_bytes};
}

Result<BootEntry> load_kernel_image(memory::GuestMemory& mem, std::span<const uint8_t> kernel,
                                    std::optional<std::span<const uint8_t>> initrd,
                                    const BootOptions& options) {
  const LoadedKernel loaded = KUMO_TRY(load_format(mem, kernel));
  KUMO_TRY(write_cmdline(mem, loaded, options.cmdline));
  std::optional<InitrdPlacement> placement;
  if (initrd) {
    placement = KUMO_TRY(place_initrd(loaded, initrd->size()));
    KUMO_TRY(mem.write(memory::GuestAddress(placement->gpa), *initrd));
  }
  return finish(mem, loaded, placement, options);
}

Result<BootEntry> load_kernel(memory::GuestMemory& mem, const KernelSpec& spec) {
  const uint64_t ram_bytes = KUMO_TRY(layout_ram_bytes(mem));
  const OpenFile kernel_file = KUMO_TRY(open_input(spec.kernel_path, "kernel"));
  if (kernel_file.size_bytes > ram_bytes) {
    return invalid_input("kernel '{}' of {} bytes is larger than guest RAM ({} bytes)",
                         spec.kernel_path.string(), kernel_file.size_bytes, ram_bytes);
  }
  std::vector<uint8_t> kernel(kernel_file.size_bytes);
  KUMO_TRY(read_exact(kernel_file, 0, kernel, spec.kernel_path));
  auto loaded = load_format(mem, kernel);
  if (!loaded) {
    return tl::unexpected(loaded.error().with_context(
        fmt::format("kernel '{}'", spec.kernel_path.string())));
  }
  KUMO_TRY(write_cmdline(mem, *loaded, spec.options.cmdline));

  std::optional<InitrdPlacement> placement;
  if (spec.initrd_path) {
    const OpenFile initrd_file = KUMO_TRY(open_input(*spec.initrd_path, "initrd"));
    auto placed = place_initrd(*loaded, initrd_file.size_bytes);
    if (!placed) {
      return tl::unexpected(placed.error().with_context(
          fmt::format("initrd '{}'", spec.initrd_path->string())));
    }
    std::vector<uint8_t> chunk(std::min(kCopyChunkBytes, placed->size_bytes));
    for (uint64_t done = 0; done < placed->size_bytes; done += chunk.size()) {
      const auto part = std::span(chunk).first(
          static_cast<size_t>(std::min<uint64_t>(chunk.size(), placed->size_bytes - done)));
      KUMO_TRY(read_exact(initrd_file, done, part, *spec.initrd_path));
      KUMO_TRY(mem.write(memory::GuestAddress(placed->gpa + done), part));
    }
    placement = *placed;
  }
  return finish(mem, *loaded, placement, spec.options);
}

Result<bool> is_linux_kernel(const std::filesystem::path& kernel_path) {
  const OpenFile file = KUMO_TRY(open_input(kernel_path, "kernel"));
  std::vector<uint8_t> image(file.size_bytes);
  KUMO_TRY(read_exact(file, 0, image, kernel_path));
  if (has_bzimage_magic(image)) {
    return true;
  }
  if (!has_elf_magic(image)) {
    return false;
  }
  auto elf = ElfImage::parse(image);
  if (!elf) {
    return false;
  }
  auto note = elf->find_note("Xen", kXenElfNoteGuestOs);
  if (!note || !*note) {
    return false;
  }
  const std::string_view guest_os(reinterpret_cast<const char*>((*note)->data()), (*note)->size());
  return guest_os.starts_with("linux");
}

}  // namespace kumo::arch::x86_64
