#include "arch/x86_64/pvh.h"

#include <gtest/gtest.h>

#include "arch/x86_64/elf.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/memory_test_util.h"
#include "arch/x86_64/start_info.h"
#include "arch/x86_64/test_images.h"

namespace kumo::arch::x86_64 {
namespace {

using memory::GuestAddress;
using testing::elf_note;
using testing::le32;
using testing::make_elf;
using testing::make_pvh_elf;

std::vector<uint8_t> pvh_note() { return elf_note("Xen", 18, le32(testing::kTestPvhEntry)); }

// Expects kInvalidInput whose message contains `needle`.
void expect_rejected(const std::vector<uint8_t>& image, std::string_view needle) {
  auto mem = testing::make_guest_memory();
  const auto r = load_pvh_kernel(mem, image);
  ASSERT_FALSE(r) << "accepted an image that should fail with: " << needle;
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(Pvh, LoadsSegmentsAndFindsEntry) {
  auto mem = testing::make_guest_memory();
  ASSERT_TRUE(mem.fill(GuestAddress(kKernelLoadGpa + 256), 0xaa, 4096));
  const auto k = load_pvh_kernel(mem, make_pvh_elf()).value();
  EXPECT_EQ(k.format, KernelFormat::kPvhElf);
  EXPECT_EQ(k.entry.raw(), testing::kTestPvhEntry);
  EXPECT_EQ(k.end_gpa, kKernelLoadGpa + 256 + 4096);
  EXPECT_EQ(k.initrd_limit_gpa, testing::kTestRamBytes);
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(kKernelLoadGpa + 255)).value(), 0x90);
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(kKernelLoadGpa + 256)).value(), 0);  // bss
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(kKernelLoadGpa + 256 + 4095)).value(), 0);
}

TEST(Pvh, EightByteEntryNoteIsAccepted) {
  std::vector<uint8_t> desc(8, 0);
  store_le<uint64_t>(desc, 0, testing::kTestPvhEntry);
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = elf_note("Xen", 18, desc)}});
  auto mem = testing::make_guest_memory();
  EXPECT_EQ(load_pvh_kernel(mem, image).value().entry.raw(), testing::kTestPvhEntry);
}

TEST(Pvh, NoteAfterOtherNotesIsFound) {
  auto notes = elf_note("GNU", 3, std::vector<uint8_t>(20, 1));
  const auto pvh = pvh_note();
  notes.insert(notes.end(), pvh.begin(), pvh.end());
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = notes}});
  auto mem = testing::make_guest_memory();
  EXPECT_TRUE(load_pvh_kernel(mem, image));
}

TEST(Pvh, TruncatedHeaderIsRejected) {
  auto image = make_pvh_elf();
  image.resize(63);
  expect_rejected(image, "shorter than its 64-byte header");
}

TEST(Pvh, WrongMagicIsRejected) {
  auto image = make_pvh_elf();
  image[1] = 'X';
  expect_rejected(image, "bad magic");
}

TEST(Pvh, ThirtyTwoBitElfIsRejected) {
  auto image = make_pvh_elf();
  image[4] = 1;
  expect_rejected(image, "not 64-bit");
}

TEST(Pvh, OtherMachineIsRejected) {
  auto image = make_pvh_elf();
  store_le<uint16_t>(image, 18, 183);  // aarch64
  expect_rejected(image, "not x86-64");
}

TEST(Pvh, ProgramHeadersOutsideFileAreRejected) {
  auto image = make_pvh_elf();
  store_le<uint64_t>(image, 32, UINT64_MAX - 8);  // e_phoff that overflows
  expect_rejected(image, "program header table");
}

TEST(Pvh, SegmentFileRangeOutsideFileIsRejected) {
  auto image = make_pvh_elf();
  store_le<uint64_t>(image, 64 + 32, image.size());  // p_filesz past the end
  expect_rejected(image, "outside the");
}

TEST(Pvh, OverflowingSegmentOffsetIsRejected) {
  auto image = make_pvh_elf();
  store_le<uint64_t>(image, 64 + 8, UINT64_MAX - 16);  // p_offset + p_filesz wraps
  expect_rejected(image, "outside the");
}

TEST(Pvh, FileSizeLargerThanMemSizeIsRejected) {
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64),
                             .mem_bytes = 32},
                            {.type = 4, .data = pvh_note()}});
  expect_rejected(image, "larger than p_memsz");
}

TEST(Pvh, SegmentOutsideRamIsRejected) {
  auto image = make_elf(0, {{.paddr = testing::kTestRamBytes - 16, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = pvh_note()}});
  expect_rejected(image, "outside the kernel area");
}

TEST(Pvh, SegmentBelowOneMibIsRejected) {
  auto image = make_elf(0, {{.paddr = kZeroPageGpa, .data = std::vector<uint8_t>(64)},
                            {.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = pvh_note()}});
  expect_rejected(image, "outside the kernel area");
}

TEST(Pvh, SegmentWhoseAddressWrapsIsRejected) {
  auto image = make_elf(0, {{.paddr = UINT64_MAX - 8, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = pvh_note()}});
  expect_rejected(image, "outside the kernel area");
}

TEST(Pvh, MissingNoteIsRejected) {
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = elf_note("GNU", 3, le32(0))}});
  expect_rejected(image, "no PVH entry note");
}

TEST(Pvh, NoteWithBadDescriptorSizeIsRejected) {
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = elf_note("Xen", 18, {1, 2})}});
  expect_rejected(image, "2-byte descriptor");
}

TEST(Pvh, NoteRunningPastItsSegmentIsRejected) {
  auto note = pvh_note();
  store_le<uint32_t>(note, 4, 0xffff'fff0);  // descsz
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = note}});
  expect_rejected(image, "runs past its segment");
}

TEST(Pvh, TruncatedNoteHeaderIsRejected) {
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = {1, 2, 3, 4, 5}}});
  expect_rejected(image, "truncated");
}

TEST(Pvh, EntryOutsideLoadedSegmentsIsRejected) {
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(8)},
                            {.type = 4, .data = pvh_note()}});
  expect_rejected(image, "not inside a loaded ELF segment");
}

TEST(Pvh, EntryAboveFourGibIsRejected) {
  std::vector<uint8_t> desc(8, 0);
  store_le<uint64_t>(desc, 0, 1ull << 32);
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = elf_note("Xen", 18, desc)}});
  expect_rejected(image, "above 4 GiB");
}

TEST(Pvh, RejectedImageWritesNothing) {
  auto image = make_elf(0, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64, 0x55)},
                            {.paddr = testing::kTestRamBytes, .data = std::vector<uint8_t>(64)},
                            {.type = 4, .data = pvh_note()}});
  auto mem = testing::make_guest_memory();
  ASSERT_FALSE(load_pvh_kernel(mem, image));
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(kKernelLoadGpa)).value(), 0);
}

TEST(Pvh, StartInfoDescribesCmdlineMemmapModuleAndRsdp) {
  auto mem = testing::make_guest_memory();
  BootInfo info;
  info.cmdline_gpa = kCmdlineGpa;
  info.rsdp_gpa = kAcpiGpa;
  info.initrd = InitrdPlacement{0x3000000, 0x1234};
  info.e820 = e820_map(testing::kTestRamBytes).value();
  ASSERT_TRUE(write_pvh_start_info(mem, info));
  const auto start = mem.read_obj<HvmStartInfo>(GuestAddress(kPvhStartInfoGpa)).value();
  EXPECT_EQ(start.magic, 0x336ec578u);
  EXPECT_EQ(start.version, 1u);
  EXPECT_EQ(start.cmdline_paddr, kCmdlineGpa);
  EXPECT_EQ(start.rsdp_paddr, kAcpiGpa);
  EXPECT_EQ(start.nr_modules, 1u);
  EXPECT_EQ(start.memmap_entries, info.e820.size());
  const auto module = mem.read_obj<HvmModlistEntry>(GuestAddress(start.modlist_paddr)).value();
  EXPECT_EQ(module.paddr, 0x3000000u);
  EXPECT_EQ(module.size, 0x1234u);
  const auto last = mem.read_obj<HvmMemmapTableEntry>(
                           GuestAddress(start.memmap_paddr + 2 * sizeof(HvmMemmapTableEntry)))
                        .value();
  EXPECT_EQ(last.addr, kKernelLoadGpa);
  EXPECT_EQ(last.type, 1u);
}

TEST(Pvh, StartInfoWithoutInitrdHasNoModules) {
  auto mem = testing::make_guest_memory();
  BootInfo info;
  info.e820 = e820_map(testing::kTestRamBytes).value();
  ASSERT_TRUE(write_pvh_start_info(mem, info));
  const auto start = mem.read_obj<HvmStartInfo>(GuestAddress(kPvhStartInfoGpa)).value();
  EXPECT_EQ(start.nr_modules, 0u);
  EXPECT_EQ(start.modlist_paddr, 0u);
}

}  // namespace
}  // namespace kumo::arch::x86_64
