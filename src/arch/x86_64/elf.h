#pragma once
// ElfImage: a validated view of an ELF64 x86-64 executable (System V gABI, "ELF-64 Object
// File Format" 1.5): the file header and program headers, every offset and size checked
// against the file before it is exposed. The image bytes are user input (a kernel file).
//
// The ElfImage borrows the bytes given to parse(); they must outlive it.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace kumo::arch::x86_64 {

inline constexpr uint32_t kPtLoad = 1;
inline constexpr uint32_t kPtNote = 4;

struct ElfSegment {
  uint32_t type = 0;
  uint64_t offset = 0;
  uint64_t paddr = 0;
  uint64_t file_bytes = 0;
  uint64_t mem_bytes = 0;
  uint64_t align = 0;
};

class ElfImage final {
 public:
  // kInvalidInput naming the problem: truncated header, bad magic/class/endianness/machine,
  // not ET_EXEC, bad e_phentsize, program header table outside the file, a segment whose
  // file range is outside the file or overflows, or p_filesz > p_memsz.
  [[nodiscard]] static Result<ElfImage> parse(std::span<const uint8_t> image);

  [[nodiscard]] uint64_t entry() const { return entry_; }
  [[nodiscard]] const std::vector<ElfSegment>& segments() const { return segments_; }
  // The file bytes of a segment (in bounds: checked by parse()).
  [[nodiscard]] std::span<const uint8_t> file_bytes(const ElfSegment& segment) const;

  // The descriptor of the first note named `name` with type `type` in any PT_NOTE segment;
  // nullopt if there is none. kInvalidInput if a note header or size runs past its segment.
  [[nodiscard]] Result<std::optional<std::span<const uint8_t>>> find_note(std::string_view name,
                                                                          uint32_t type) const;

 private:
  ElfImage(std::span<const uint8_t> image, uint64_t entry, std::vector<ElfSegment> segments)
      : image_(image), entry_(entry), segments_(std::move(segments)) {}
  std::span<const uint8_t> image_;
  uint64_t entry_;
  std::vector<ElfSegment> segments_;
};

// True if `image` starts with the ELF magic "\x7fELF".
[[nodiscard]] bool has_elf_magic(std::span<const uint8_t> image);

}  // namespace kumo::arch::x86_64
