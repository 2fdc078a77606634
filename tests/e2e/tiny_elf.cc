#include "tiny_elf.h"

#include <elf.h>

#include <cstring>
#include <fstream>

namespace kumo::test {

std::string write_tiny_pvh_elf(const std::string& path, const std::vector<uint8_t>& code) {
  constexpr uint64_t kLoad = 0x100000;
  struct Note {
    uint32_t namesz = 4, descsz = 4, type = 18;  // XEN_ELFNOTE_PHYS32_ENTRY
    char name[4] = {'X', 'e', 'n', 0};
    uint32_t entry = 0;
  };
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  const uint64_t note_off = sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr);
  const uint64_t code_off = 0x1000;
  eh.e_entry = kLoad;
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_flags = PF_R | PF_X;
  load.p_offset = code_off;
  load.p_vaddr = load.p_paddr = kLoad;
  load.p_filesz = load.p_memsz = code.size();
  load.p_align = 0x1000;
  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = note_off;
  note.p_filesz = note.p_memsz = sizeof(Note);
  note.p_align = 4;
  Note n;
  n.entry = static_cast<uint32_t>(kLoad);
  std::vector<uint8_t> file(code_off + code.size(), 0);
  std::memcpy(file.data(), &eh, sizeof(eh));
  std::memcpy(file.data() + sizeof(eh), &load, sizeof(load));
  std::memcpy(file.data() + sizeof(eh) + sizeof(load), &note, sizeof(note));
  std::memcpy(file.data() + note_off, &n, sizeof(n));
  std::memcpy(file.data() + code_off, code.data(), code.size());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()),
                                              static_cast<std::streamsize>(file.size()));
  return path;
}

}  // namespace kumo::test
