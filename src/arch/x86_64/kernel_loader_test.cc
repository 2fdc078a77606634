#include "arch/x86_64/kernel_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/memory_test_util.h"
#include "arch/x86_64/start_info.h"
#include "arch/x86_64/test_images.h"
#include "arch/x86_64/zero_page.h"

namespace kumo::arch::x86_64 {
namespace {

namespace fs = std::filesystem;
using memory::GuestAddress;

class KernelLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kumo-kernel-loader-" + std::to_string(::getpid()) +
                                        "-" + ::testing::UnitTest::GetInstance()
                                                  ->current_test_info()
                                                  ->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

  Error expect_error(const KernelSpec& spec, std::string_view needle) {
    auto mem = testing::make_guest_memory();
    auto r = load_kernel(mem, spec);
    EXPECT_FALSE(r) << "expected failure: " << needle;
    if (r) return {};
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
    return r.error();
  }

  fs::path dir_;
};

TEST_F(KernelLoaderTest, PvhKernelBootsInProtectedModeWithStartInfo) {
  KernelSpec spec;
  spec.kernel_path = write("guest.elf", testing::make_pvh_elf());
  spec.initrd_path = write("initrd", std::vector<uint8_t>(5000, 0x42));
  spec.options.cmdline = "console=ttyS0 workload=idle";
  spec.options.vcpu_count = 2;
  auto mem = testing::make_guest_memory();
  const BootEntry e = load_kernel(mem, spec).value();
  EXPECT_EQ(e.mode, CpuMode::kProtected32);
  EXPECT_EQ(e.rip, testing::kTestPvhEntry);
  EXPECT_EQ(e.rbx, kPvhStartInfoGpa);
  EXPECT_EQ(e.rsdp_gpa.raw(), kAcpiGpa);
  const auto start = mem.read_obj<HvmStartInfo>(GuestAddress(kPvhStartInfoGpa)).value();
  EXPECT_EQ(start.magic, kHvmStartMagic);
  EXPECT_EQ(start.rsdp_paddr, kAcpiGpa);
  EXPECT_EQ(start.nr_modules, 1u);
  const auto module = mem.read_obj<HvmModlistEntry>(GuestAddress(kPvhModlistGpa)).value();
  EXPECT_EQ(module.size, 5000u);
  EXPECT_EQ(module.paddr % kPageSize, 0u);
  EXPECT_LE(module.paddr + module.size, testing::kTestRamBytes);
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(module.paddr + 4999)).value(), 0x42);
  std::string cmdline(spec.options.cmdline.size() + 1, 'x');
  ASSERT_TRUE(mem.read(GuestAddress(start.cmdline_paddr),
                       std::span(reinterpret_cast<uint8_t*>(cmdline.data()), cmdline.size())));
  EXPECT_EQ(cmdline, spec.options.cmdline + '\0');
}

TEST_F(KernelLoaderTest, BzImageBootsInLongModeWithZeroPage) {
  KernelSpec spec;
  spec.kernel_path = write("bzImage", testing::make_bzimage());
  spec.initrd_path = write("initrd", std::vector<uint8_t>(3 * kPageSize + 1, 7));
  spec.options.cmdline = "console=ttyS0";
  auto mem = testing::make_guest_memory();
  const BootEntry e = load_kernel(mem, spec).value();
  EXPECT_EQ(e.mode, CpuMode::kLong64);
  EXPECT_EQ(e.rip, kKernelLoadGpa + 0x200);
  EXPECT_EQ(e.rsi, kZeroPageGpa);
  EXPECT_EQ(e.cr3, kPml4Gpa);
  EXPECT_EQ(mem.read_obj<uint32_t>(GuestAddress(kZeroPageGpa + kBpCmdLinePtr)).value(),
            kCmdlineGpa);
  const uint32_t initrd =
      mem.read_obj<uint32_t>(GuestAddress(kZeroPageGpa + kBpRamdiskImage)).value();
  EXPECT_EQ(initrd, testing::kTestRamBytes - 4 * kPageSize);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kZeroPageGpa + kBpAcpiRsdpAddr)).value(),
            kAcpiGpa);
  // The page tables and GDT are in place for the 64-bit entry.
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdGpa)).value(), 0x83u);
  EXPECT_NE(mem.read_obj<uint64_t>(GuestAddress(kBootGdtGpa + kCode64Selector)).value(), 0u);
}

TEST_F(KernelLoaderTest, MissingKernelNamesThePath) {
  KernelSpec spec;
  spec.kernel_path = dir_ / "no-such-kernel";
  const Error e = expect_error(spec, "no-such-kernel");
  EXPECT_EQ(e.errno_value, ENOENT);
}

TEST_F(KernelLoaderTest, DirectoryAsKernelIsRejected) {
  KernelSpec spec;
  spec.kernel_path = dir_;
  expect_error(spec, "is not a regular file");
}

TEST_F(KernelLoaderTest, UnreadableKernelIsRejected) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads files regardless of permissions";
  }
  KernelSpec spec;
  spec.kernel_path = write("locked", testing::make_pvh_elf());
  fs::permissions(spec.kernel_path, fs::perms::none);
  expect_error(spec, "cannot open kernel");
}

TEST_F(KernelLoaderTest, MissingInitrdNamesThePath) {
  KernelSpec spec;
  spec.kernel_path = write("guest.elf", testing::make_pvh_elf());
  spec.initrd_path = dir_ / "no-such-initrd";
  expect_error(spec, "cannot open initrd");
}

TEST_F(KernelLoaderTest, UnknownFormatIsRejected) {
  KernelSpec spec;
  spec.kernel_path = write("junk", std::vector<uint8_t>(4096, 0x11));
  expect_error(spec, "not an ELF or bzImage kernel");
}

TEST_F(KernelLoaderTest, ElfWithoutPvhNoteIsRejected) {
  KernelSpec spec;
  spec.kernel_path = write(
      "plain.elf",
      testing::make_elf(kKernelLoadGpa, {{.paddr = kKernelLoadGpa, .data = std::vector<uint8_t>(64)}}));
  const Error e = expect_error(spec, "no PVH entry note");
  EXPECT_NE(e.message.find("plain.elf"), std::string::npos);
}

TEST_F(KernelLoaderTest, KernelLargerThanRamIsRejected) {
  KernelSpec spec;
  auto image = testing::make_bzimage();
  image.resize(testing::kTestRamBytes + 1);
  spec.kernel_path = write("huge", image);
  expect_error(spec, "larger than guest RAM");
}

TEST_F(KernelLoaderTest, CmdlineLongerThanKernelAllowsIsRejected) {
  KernelSpec spec;
  spec.kernel_path = write("bzImage", testing::make_bzimage());
  spec.options.cmdline = std::string(2048, 'a');
  expect_error(spec, "accepts at most 2047");
}

TEST_F(KernelLoaderTest, CmdlineLongerThanBufferIsRejectedForPvh) {
  KernelSpec spec;
  spec.kernel_path = write("guest.elf", testing::make_pvh_elf());
  spec.options.cmdline = std::string(kCmdlineMaxBytes, 'a');
  expect_error(spec, "accepts at most");
}

TEST_F(KernelLoaderTest, CmdlineWithNulIsRejected) {
  KernelSpec spec;
  spec.kernel_path = write("guest.elf", testing::make_pvh_elf());
  spec.options.cmdline = std::string("a\0b", 3);
  expect_error(spec, "NUL");
}

TEST_F(KernelLoaderTest, InitrdTooBigIsRejected) {
  KernelSpec spec;
  spec.kernel_path = write("bzImage", testing::make_bzimage());
  // Kernel runs up to 17 MiB; 64 MiB of RAM leaves less than 48 MiB.
  spec.initrd_path = write("initrd", std::vector<uint8_t>(48 * kMiB));
  const Error e = expect_error(spec, "does not fit");
  EXPECT_NE(e.message.find("initrd"), std::string::npos);
}

TEST_F(KernelLoaderTest, InitrdAboveInitrdAddrMaxIsNotUsed) {
  auto image = testing::make_bzimage();
  store_le<uint32_t>(image, 0x22c, 0x1800000 - 1);  // initrd must end below 24 MiB
  KernelSpec spec;
  spec.kernel_path = write("bzImage", image);
  spec.initrd_path = write("initrd", std::vector<uint8_t>(8 * kMiB));  // 17 + 8 > 24
  expect_error(spec, "does not fit");
}

TEST_F(KernelLoaderTest, EmptyInitrdIsRejected) {
  KernelSpec spec;
  spec.kernel_path = write("guest.elf", testing::make_pvh_elf());
  spec.initrd_path = write("initrd", {});
  expect_error(spec, "initrd is empty");
}

TEST_F(KernelLoaderTest, TooManyVcpusAreRejected) {
  KernelSpec spec;
  spec.kernel_path = write("guest.elf", testing::make_pvh_elf());
  spec.options.vcpu_count = 255;
  expect_error(spec, "vCPU count");
}

TEST_F(KernelLoaderTest, MemoryNotFromRamRegionsIsRejected) {
  KernelSpec spec;
  spec.kernel_path = write("guest.elf", testing::make_pvh_elf());
  auto mem = memory::GuestMemory::create({{GuestAddress(0), 8 * kMiB}}).value();
  EXPECT_EQ(load_kernel(mem, spec).error().kind, ErrorKind::kInvalidInput);
}

TEST(PlaceInitrd, GoesToTheTopOfTheLimitPageAligned) {
  LoadedKernel k;
  k.end_gpa = 2 * kMiB;
  k.initrd_limit_gpa = 64 * kMiB;
  const auto p = place_initrd(k, kPageSize + 1).value();
  EXPECT_EQ(p.gpa, 64 * kMiB - 2 * kPageSize);
  EXPECT_FALSE(place_initrd(k, 62 * kMiB + 1));
  EXPECT_TRUE(place_initrd(k, 62 * kMiB));
  EXPECT_FALSE(place_initrd(k, UINT64_MAX));
}

TEST(LoadKernelImage, BytesApiMatchesFileApi) {
  auto mem = testing::make_guest_memory();
  const std::vector<uint8_t> initrd(100, 1);
  const BootEntry e =
      load_kernel_image(mem, testing::make_bzimage(), std::span<const uint8_t>(initrd),
                        {.cmdline = "quiet"})
          .value();
  EXPECT_EQ(e.mode, CpuMode::kLong64);
  EXPECT_EQ(mem.read_obj<uint32_t>(GuestAddress(kZeroPageGpa + kBpRamdiskSize)).value(), 100u);
}

// The host's Debian cloud kernel and its initrd, if installed, load as bzImage + initrd.
TEST(LoadKernel, DebianCloudKernelWithInitrdLoads) {
  std::optional<fs::path> kernel;
  std::optional<fs::path> initrd;
  for (const auto& entry : fs::directory_iterator("/boot")) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("vmlinuz-") && name.ends_with("-cloud-amd64")) {
      kernel = entry.path();
      const fs::path i = entry.path().parent_path() / ("initrd.img-" + name.substr(8));
      if (fs::exists(i)) initrd = i;
    }
  }
  if (!kernel || ::access(kernel->c_str(), R_OK) != 0) {
    GTEST_SKIP() << "no readable /boot/vmlinuz-*-cloud-amd64 on this host";
  }
  if (initrd && ::access(initrd->c_str(), R_OK) != 0) {
    initrd.reset();
  }
  auto mem = testing::make_guest_memory(512 * kMiB);
  KernelSpec spec{.kernel_path = *kernel,
                  .initrd_path = initrd,
                  .options = {.cmdline = "console=ttyS0 root=/dev/vda1", .vcpu_count = 2}};
  const BootEntry e = load_kernel(mem, spec).value();
  EXPECT_EQ(e.mode, CpuMode::kLong64);
  EXPECT_EQ(e.rip, kKernelLoadGpa + 0x200);
  if (initrd) {
    const uint32_t image =
        mem.read_obj<uint32_t>(GuestAddress(kZeroPageGpa + kBpRamdiskImage)).value();
    const uint32_t size =
        mem.read_obj<uint32_t>(GuestAddress(kZeroPageGpa + kBpRamdiskSize)).value();
    EXPECT_EQ(size, fs::file_size(*initrd));
    EXPECT_LE(uint64_t{image} + size, 512 * kMiB);
    EXPECT_GE(image, 0x1000000u);
  }
}

// Opt-in: KUMO_TEST_VMLINUX=/path/to/vmlinux boots-loads a real PVH ELF kernel.
TEST(LoadKernelImage, RealVmlinuxLoadsThroughPvh) {
  const char* path = std::getenv("KUMO_TEST_VMLINUX");
  if (path == nullptr) {
    GTEST_SKIP() << "set KUMO_TEST_VMLINUX to an uncompressed vmlinux to run";
  }
  auto mem = testing::make_guest_memory(512 * kMiB);
  const BootEntry e = load_kernel(mem, {.kernel_path = path, .initrd_path = std::nullopt, .options = {.cmdline = "x"}}).value();
  EXPECT_EQ(e.mode, CpuMode::kProtected32);
  EXPECT_GE(e.rip, kKernelLoadGpa);
}

}  // namespace
}  // namespace kumo::arch::x86_64

namespace kumo::arch::x86_64 {
namespace {

TEST(IsLinuxKernel, BzImageIsLinuxAndPlainPvhElfIsNot) {
  const fs::path dir = fs::temp_directory_path() / ("kumo-is-linux-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return dir / name;
  };
  EXPECT_TRUE(is_linux_kernel(write("bzImage", testing::make_bzimage())).value());
  EXPECT_FALSE(is_linux_kernel(write("guest.elf", testing::make_pvh_elf())).value());
  EXPECT_FALSE(is_linux_kernel(write("junk", std::vector<uint8_t>(64, 0x5a))).value());
  EXPECT_FALSE(is_linux_kernel(dir));  // a directory is an error, not "not Linux"
  EXPECT_FALSE(is_linux_kernel(dir / "missing"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kumo::arch::x86_64
