#include "arch/x86_64/elf.h"

#include <cstring>
#include <string_view>

#include "arch/x86_64/byte_order.h"

namespace kumo::arch::x86_64 {
namespace {

constexpr size_t kEhdrBytes = 64;
constexpr size_t kPhdrBytes = 56;
constexpr uint8_t kElfClass64 = 2;
constexpr uint8_t kElfData2Lsb = 1;
constexpr uint8_t kEvCurrent = 1;
constexpr uint16_t kEtExec = 2;
constexpr uint16_t kEmX86_64 = 62;
constexpr size_t kNoteHeaderBytes = 12;

// True if [offset, offset + len) lies inside a buffer of `size` bytes, without overflow.
bool in_bounds(uint64_t offset, uint64_t len, uint64_t size) {
  return offset <= size && len <= size - offset;
}

// Rounds up to a power-of-two `align`; nullopt on overflow.
std::optional<uint64_t> align_up(uint64_t v, uint64_t align) {
  uint64_t out = 0;
  if (__builtin_add_overflow(v, align - 1, &out)) {
    return std::nullopt;
  }
  return out & ~(align - 1);
}

}  // namespace

bool has_elf_magic(std::span<const uint8_t> image) {
  return image.size() >= 4 && image[0] == 0x7f && image[1] == 'E' && image[2] == 'L' &&
         image[3] == 'F';
}

Result<ElfImage> ElfImage::parse(std::span<const uint8_t> image) {
  if (image.size() < kEhdrBytes) {
    return invalid_input("ELF file of {} bytes is shorter than its {}-byte header", image.size(),
                         kEhdrBytes);
  }
  if (!has_elf_magic(image)) {
    return invalid_input("not an ELF file (bad magic)");
  }
  if (image[4] != kElfClass64) {
    return invalid_input("ELF file is not 64-bit (EI_CLASS {})", image[4]);
  }
  if (image[5] != kElfData2Lsb) {
    return invalid_input("ELF file is not little-endian (EI_DATA {})", image[5]);
  }
  if (image[6] != kEvCurrent) {
    return invalid_input("ELF file has unknown version {}", image[6]);
  }
  const auto e_type = load_le<uint16_t>(image, 16);
  const auto e_machine = load_le<uint16_t>(image, 18);
  const auto e_entry = load_le<uint64_t>(image, 24);
  const auto e_phoff = load_le<uint64_t>(image, 32);
  const auto e_phentsize = load_le<uint16_t>(image, 54);
  const auto e_phnum = load_le<uint16_t>(image, 56);
  if (e_machine != kEmX86_64) {
    return invalid_input("ELF file is for machine {}, not x86-64", e_machine);
  }
  if (e_type != kEtExec) {
    return invalid_input("ELF file is of type {}, not an executable (ET_EXEC)", e_type);
  }
  if (e_phentsize != kPhdrBytes) {
    return invalid_input("ELF program header size is {}, expected {}", e_phentsize, kPhdrBytes);
  }
  if (e_phnum == 0) {
    return invalid_input("ELF file has no program headers");
  }
  const uint64_t table_bytes = uint64_t{e_phnum} * kPhdrBytes;
  if (!in_bounds(e_phoff, table_bytes, image.size())) {
    return invalid_input("ELF program header table at {:#x} ({} entries) is outside the file",
                         e_phoff, e_phnum);
  }
  std::vector<ElfSegment> segments;
  segments.reserve(e_phnum);
  for (uint16_t i = 0; i < e_phnum; ++i) {
    const size_t at = static_cast<size_t>(e_phoff) + size_t{i} * kPhdrBytes;
    ElfSegment s;
    s.type = load_le<uint32_t>(image, at + 0);
    s.offset = load_le<uint64_t>(image, at + 8);
    s.paddr = load_le<uint64_t>(image, at + 24);
    s.file_bytes = load_le<uint64_t>(image, at + 32);
    s.mem_bytes = load_le<uint64_t>(image, at + 40);
    s.align = load_le<uint64_t>(image, at + 48);
    if (s.type != kPtLoad && s.type != kPtNote) {
      continue;
    }
    if (!in_bounds(s.offset, s.file_bytes, image.size())) {
      return invalid_input("ELF segment {}: file range {:#x}+{:#x} is outside the {}-byte file",
                           i, s.offset, s.file_bytes, image.size());
    }
    if (s.type == kPtLoad && s.file_bytes > s.mem_bytes) {
      return invalid_input("ELF segment {}: p_filesz {:#x} is larger than p_memsz {:#x}", i,
                           s.file_bytes, s.mem_bytes);
    }
    segments.push_back(s);
  }
  return ElfImage(image, e_entry, std::move(segments));
}

std::span<const uint8_t> ElfImage::file_bytes(const ElfSegment& segment) const {
  return image_.subspan(static_cast<size_t>(segment.offset),
                        static_cast<size_t>(segment.file_bytes));
}

Result<std::optional<std::span<const uint8_t>>> ElfImage::find_note(std::string_view name,
                                                                    uint32_t type) const {
  for (size_t index = 0; index < segments_.size(); ++index) {
    const ElfSegment& segment = segments_[index];
    if (segment.type != kPtNote) {
      continue;
    }
    // gABI: 4-byte alignment of name and descriptor; a PT_NOTE with p_align 8 holds notes
    // aligned to 8 (e.g. GNU property notes).
    const uint64_t align = segment.align == 8 ? 8 : 4;
    const std::span<const uint8_t> notes = file_bytes(segment);
    uint64_t at = 0;
    while (at < notes.size()) {
      if (!in_bounds(at, kNoteHeaderBytes, notes.size())) {
        return invalid_input("ELF note at {:#x} is truncated", segment.offset + at);
      }
      const auto namesz = load_le<uint32_t>(notes, static_cast<size_t>(at));
      const auto descsz = load_le<uint32_t>(notes, static_cast<size_t>(at + 4));
      const auto ntype = load_le<uint32_t>(notes, static_cast<size_t>(at + 8));
      const uint64_t name_at = at + kNoteHeaderBytes;
      const auto desc_at = align_up(name_at + namesz, align);
      const auto next = desc_at ? align_up(*desc_at + descsz, align) : std::nullopt;
      if (!desc_at || !next || !in_bounds(name_at, namesz, notes.size()) ||
          !in_bounds(*desc_at, descsz, notes.size())) {
        return invalid_input("ELF note at {:#x} (name {} bytes, desc {} bytes) runs past its "
                             "segment",
                             segment.offset + at, namesz, descsz);
      }
      // The name's size counts its NUL terminator.
      const auto note_name = notes.subspan(static_cast<size_t>(name_at), namesz);
      if (ntype == type && namesz == name.size() + 1 && note_name[name.size()] == 0 &&
          std::memcmp(note_name.data(), name.data(), name.size()) == 0) {
        return std::optional(notes.subspan(static_cast<size_t>(*desc_at), descsz));
      }
      at = *next;
    }
  }
  return std::optional<std::span<const uint8_t>>();
}

}  // namespace kumo::arch::x86_64
