#pragma once
// Test helper: writes a minimal PVH ELF whose 32-bit entry runs `code` (raw machine code),
// loaded at 1 MiB. For exercising VMM exit paths without the full test guest.

#include <cstdint>
#include <string>
#include <vector>

namespace kumo::test {

std::string write_tiny_pvh_elf(const std::string& path, const std::vector<uint8_t>& code);

}  // namespace kumo::test
