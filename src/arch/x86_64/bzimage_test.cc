#include "arch/x86_64/bzimage.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/memory_test_util.h"
#include "arch/x86_64/test_images.h"
#include "arch/x86_64/zero_page.h"

namespace kumo::arch::x86_64 {
namespace {

using memory::GuestAddress;
using testing::make_bzimage;

constexpr uint64_t kPayloadOffset = (testing::kTestSetupSects + 1) * 512;

void expect_rejected(const std::vector<uint8_t>& image, std::string_view needle,
                     uint64_t ram_bytes = testing::kTestRamBytes) {
  auto mem = testing::make_guest_memory(ram_bytes);
  const auto r = load_bzimage(mem, image);
  ASSERT_FALSE(r) << "accepted an image that should fail with: " << needle;
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(BzImage, ParsesSetupHeader) {
  const SetupHeader h = parse_setup_header(make_bzimage()).value();
  EXPECT_EQ(h.version, 0x020f);
  EXPECT_EQ(h.setup_bytes(), kPayloadOffset);
  EXPECT_EQ(h.cmdline_size, 2047u);
  EXPECT_EQ(h.pref_address, 0x1000000u);
}

TEST(BzImage, ZeroSetupSectsMeansFour) {
  auto image = make_bzimage();
  image[0x1f1] = 0;
  EXPECT_EQ(parse_setup_header(image).value().setup_bytes(), 5u * 512);
}

TEST(BzImage, RelocatableKernelLoadsAtOneMib) {
  auto mem = testing::make_guest_memory();
  const auto image = make_bzimage();
  const LoadedKernel k = load_bzimage(mem, image).value();
  EXPECT_EQ(k.format, KernelFormat::kBzImage);
  EXPECT_EQ(k.entry.raw(), kKernelLoadGpa + 0x200);
  // Runs at pref_address (16 MiB) with init_size 1 MiB.
  EXPECT_EQ(k.end_gpa, 0x1000000u + 0x100000u);
  EXPECT_EQ(k.initrd_limit_gpa, testing::kTestRamBytes);
  EXPECT_EQ(k.cmdline_max_bytes, 2047u);
  EXPECT_EQ(k.setup_header.size(), 0x26cu - 0x1f1u);
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(kKernelLoadGpa + 7)).value(),
            image[kPayloadOffset + 7]);
}

TEST(BzImage, NonRelocatableKernelLoadsAtPrefAddress) {
  auto image = make_bzimage();
  image[0x234] = 0;
  store_le<uint64_t>(image, 0x258, 0x200000);
  auto mem = testing::make_guest_memory();
  const LoadedKernel k = load_bzimage(mem, image).value();
  EXPECT_EQ(k.entry.raw(), 0x200000u + 0x200);
  EXPECT_EQ(k.end_gpa, 0x200000u + 0x100000u);
}

TEST(BzImage, NonRelocatableKernelBelowOneMibIsRejected) {
  auto image = make_bzimage();
  image[0x234] = 0;
  store_le<uint64_t>(image, 0x258, 0x10000);
  expect_rejected(image, "below 1 MiB");
}

TEST(BzImage, InitrdLimitFollowsInitrdAddrMax) {
  auto image = make_bzimage();
  store_le<uint32_t>(image, 0x22c, 0x2ffffff);
  auto mem = testing::make_guest_memory();
  EXPECT_EQ(load_bzimage(mem, image).value().initrd_limit_gpa, 0x3000000u);
}

TEST(BzImage, TruncatedHeaderIsRejected) {
  auto image = make_bzimage();
  image.resize(0x200);
  expect_rejected(image, "too short");
}

TEST(BzImage, WrongMagicIsRejected) {
  auto image = make_bzimage();
  image[0x202] = 'X';
  expect_rejected(image, "HdrS");
}

TEST(BzImage, ProtocolOlderThan206IsRejected) {
  auto image = make_bzimage();
  store_le<uint16_t>(image, 0x206, 0x0205);
  expect_rejected(image, "older than the required 2.06");
}

TEST(BzImage, ZImageIsRejected) {
  auto image = make_bzimage();
  image[0x211] = 0;
  expect_rejected(image, "zImage");
}

TEST(BzImage, KernelWithout64BitEntryIsRejected) {
  auto image = make_bzimage();
  store_le<uint16_t>(image, 0x236, 0);
  expect_rejected(image, "no 64-bit entry point");
}

TEST(BzImage, ProtocolWithoutXloadflagsIsRejected) {
  auto image = make_bzimage();
  store_le<uint16_t>(image, 0x206, 0x020a);
  expect_rejected(image, "no 64-bit entry point");
}

TEST(BzImage, FileShorterThanSetupIsRejected) {
  auto image = make_bzimage();
  image.resize(kPayloadOffset);
  expect_rejected(image, "truncated");
}

TEST(BzImage, SyssizeLargerThanFileIsRejected) {
  auto image = make_bzimage();
  store_le<uint32_t>(image, 0x1f4, static_cast<uint32_t>(testing::kTestPayloadBytes / 16 + 2));
  expect_rejected(image, "syssize");
}

TEST(BzImage, BadKernelAlignmentIsRejected) {
  auto image = make_bzimage();
  store_le<uint32_t>(image, 0x230, 0x300000);
  expect_rejected(image, "power of two");
}

TEST(BzImage, KernelLargerThanRamIsRejected) {
  auto image = make_bzimage();
  store_le<uint32_t>(image, 0x260, 0x8000000);  // init_size 128 MiB
  expect_rejected(image, "does not fit in guest RAM");
}

TEST(BzImage, HugePrefAddressDoesNotOverflow) {
  auto image = make_bzimage();
  store_le<uint64_t>(image, 0x258, UINT64_MAX - 0x1000);
  expect_rejected(image, "does not fit in guest RAM");
}

TEST(BzImage, RejectedImageWritesNothing) {
  auto image = make_bzimage();
  store_le<uint32_t>(image, 0x260, 0x8000000);
  auto mem = testing::make_guest_memory();
  ASSERT_FALSE(load_bzimage(mem, image));
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kKernelLoadGpa)).value(), 0u);
}

TEST(ZeroPage, CarriesHeaderCmdlineInitrdRsdpAndE820) {
  auto mem = testing::make_guest_memory();
  const LoadedKernel k = load_bzimage(mem, make_bzimage()).value();
  BootInfo info;
  info.cmdline_gpa = kCmdlineGpa;
  info.initrd = InitrdPlacement{0x3000000, 0x5000};
  info.rsdp_gpa = kAcpiGpa;
  info.e820 = e820_map(testing::kTestRamBytes).value();
  const auto page = build_zero_page(k, info).value();
  EXPECT_EQ(load_le<uint32_t>(page, 0x202), 0x53726448u);  // header copied
  EXPECT_EQ(load_le<uint16_t>(page, 0x206), 0x020fu);
  EXPECT_EQ(page[kBpTypeOfLoader], 0xff);
  EXPECT_EQ(load_le<uint16_t>(page, kBpVidMode), 0xffffu);
  EXPECT_EQ(load_le<uint32_t>(page, kBpCmdLinePtr), kCmdlineGpa);
  EXPECT_EQ(load_le<uint32_t>(page, kBpRamdiskImage), 0x3000000u);
  EXPECT_EQ(load_le<uint32_t>(page, kBpRamdiskSize), 0x5000u);
  EXPECT_EQ(load_le<uint32_t>(page, kBpExtRamdiskImage), 0u);
  EXPECT_EQ(load_le<uint64_t>(page, kBpAcpiRsdpAddr), kAcpiGpa);
  EXPECT_EQ(page[kBpE820Entries], 3);
  EXPECT_EQ(load_le<uint64_t>(page, kBpE820Table + 2 * 20), kKernelLoadGpa);
  EXPECT_EQ(load_le<uint32_t>(page, kBpE820Table + 2 * 20 + 16), 1u);
  EXPECT_EQ(load_le<uint32_t>(page, 0x0290), 0u);  // nothing past the header
}

TEST(ZeroPage, TooManyE820EntriesAreRejected) {
  LoadedKernel k;
  BootInfo info;
  info.e820.resize(kZeroPageE820MaxEntries + 1);
  EXPECT_EQ(build_zero_page(k, info).error().kind, ErrorKind::kInvalidInput);
}

// The host's Debian cloud kernel, if installed, must be accepted as a bzImage.
std::optional<std::vector<uint8_t>> host_cloud_kernel() {
  for (const auto& entry : std::filesystem::directory_iterator("/boot")) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("vmlinuz-") && name.ends_with("-cloud-amd64")) {
      std::ifstream in(entry.path(), std::ios::binary);
      if (in) {
        return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
      }
    }
  }
  return std::nullopt;
}

TEST(BzImage, DebianCloudKernelIsAccepted) {
  const auto image = host_cloud_kernel();
  if (!image) {
    GTEST_SKIP() << "no readable /boot/vmlinuz-*-cloud-amd64 on this host";
  }
  const SetupHeader h = parse_setup_header(*image).value();
  EXPECT_GE(h.version, 0x020c);
  auto mem = testing::make_guest_memory(256 * kMiB);
  const LoadedKernel k = load_bzimage(mem, *image).value();
  EXPECT_EQ(k.entry.raw(), kKernelLoadGpa + 0x200);
  EXPECT_GE(k.end_gpa, h.pref_address + h.init_size);
  EXPECT_GT(k.cmdline_max_bytes, 255u);
}

}  // namespace
}  // namespace kumo::arch::x86_64
