// Boots Debian's cloud kernel (linux-image-cloud-amd64) with a busybox initramfs, as a
// bzImage and as a vmlinux through PVH, and checks on the serial console that the kernel
// started, printed kumo's e820 map, and got as far as this host allows:
//  - on a host with VT-x/AMD-V: the initramfs shell runs (it prints a marker and reboots);
//  - on a host without (KVM nested on a software-emulated ring 0, e.g. KVM PVM): the kernel
//    stops at its int3 self-test, which that emulator cannot execute, and kumo reports the
//    emulation failure with a register dump.
// Skips when the kernel, busybox or lz4 (to extract vmlinux) is missing.

#include <cpuid.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "kvm/testing/require_kvm.h"
#include "process.h"

namespace kumo::test {
namespace {

namespace fs = std::filesystem;

const std::string kKumo = KUMO_BINARY;

bool host_has_hardware_virtualization() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  bool vmx = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 5));
  bool svm = __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & (1u << 2));
  return vmx || svm;
}

std::string find_cloud_kernel() {
  if (!fs::exists("/boot")) return "";
  for (const auto& e : fs::directory_iterator("/boot")) {
    const std::string name = e.path().filename();
    if (name.starts_with("vmlinuz-") && name.ends_with("-cloud-amd64")) return e.path();
  }
  return "";
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

class LinuxBoot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    kernel_ = find_cloud_kernel();
    if (::access("/dev/kvm", R_OK | W_OK) != 0 || kernel_.empty() ||
        !fs::exists("/bin/busybox")) {
      return;
    }
    dir_ = fs::temp_directory_path() / ("kumo-linux-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "initramfs/bin");
    fs::create_directories(dir_ / "initramfs/dev");
    fs::copy_file("/bin/busybox", dir_ / "initramfs/bin/busybox");
    // The marker goes through /dev/kmsg (printk), which reaches the console whether or not the
    // UART serves user space's tty writes.
    std::ofstream(dir_ / "initramfs/init")
        << "#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\n"
           "/bin/busybox echo KUMO_INITRAMFS_SHELL_REACHED >/dev/kmsg\n"
           "/bin/busybox reboot -f\n";
    fs::permissions(dir_ / "initramfs/init", fs::perms::owner_all);
    initrd_ = dir_ / "initrd.img";
    if (sh("cd " + (dir_ / "initramfs").string() + " && find . | cpio -o -H newc 2>/dev/null | gzip > " +
           initrd_) != 0) {
      initrd_.clear();
    }
    // vmlinux: the bzImage payload is LZ4 (legacy frame, magic 02 21 4c 18).
    std::ifstream in(kernel_, std::ios::binary);
    std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = image.find(std::string("\x02\x21\x4c\x18", 4));
    if (at != std::string::npos && ::access("/usr/bin/lz4", X_OK) == 0) {
      std::ofstream(dir_ / "payload.lz4", std::ios::binary) << image.substr(at);
      const std::string out = dir_ / "vmlinux";
      sh("lz4 -dc " + (dir_ / "payload.lz4").string() + " > " + out + " 2>/dev/null");
      if (fs::exists(out) && fs::file_size(out) > 0) vmlinux_ = out;
    }
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    KUMO_NEED_KVM();
    if (kernel_.empty()) GTEST_SKIP() << "no /boot/vmlinuz-*-cloud-amd64 (linux-image-cloud-amd64)";
    if (initrd_.empty()) GTEST_SKIP() << "could not build the busybox initramfs";
  }

  void boot_and_check(const std::string& kernel) {
    auto r = run_process({kKumo, "run", "--kernel", kernel, "--initrd", initrd_, "--memory", "512M",
                          "--cmdline", "console=ttyS0 reboot=k panic=-1 quiet loglevel=8"},
                         120000);
    ASSERT_FALSE(r.timed_out) << r.out.substr(r.out.size() > 2000 ? r.out.size() - 2000 : 0);
    EXPECT_NE(r.out.find("Linux version"), std::string::npos) << r.out;
    // kumo's e820 map for 512 MiB, as the kernel prints it.
    EXPECT_NE(r.out.find("BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"),
              std::string::npos) << r.out;
    EXPECT_NE(r.out.find("BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable"),
              std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ACPI: RSDP 0x00000000000E0000"), std::string::npos) << r.out;
    if (host_has_hardware_virtualization()) {
      EXPECT_NE(r.out.find("KUMO_INITRAMFS_SHELL_REACHED"), std::string::npos) << r.out;
      EXPECT_EQ(r.exit_status, 0) << r.err;
    } else {
      // kumo steered Linux off XSAVE (the probe saw guest CPUID unfiltered) ...
      EXPECT_NE(r.out.find("x87 FPU will use FXSAVE"), std::string::npos) << r.out;
      // ... and it ran until its int3 self-test, which this host cannot emulate in ring 0.
      EXPECT_EQ(r.exit_status, 1) << r.err;
      EXPECT_NE(r.err.find("instruction emulation failed"), std::string::npos) << r.err;
      const std::regex int3_bytes("data\\[1\\]=0x[0-9a-f]*90909090cc");
      EXPECT_TRUE(std::regex_search(r.err, int3_bytes)) << r.err;
    }
  }

  static inline std::string kernel_;
  static inline std::string initrd_;
  static inline std::string vmlinux_;
  static inline fs::path dir_;
};

TEST_F(LinuxBoot, BzImageBootsAsFarAsTheHostAllows) { boot_and_check(kernel_); }

TEST_F(LinuxBoot, VmlinuxBootsThroughPvhAsFarAsTheHostAllows) {
  if (vmlinux_.empty()) GTEST_SKIP() << "could not extract vmlinux (needs lz4)";
  boot_and_check(vmlinux_);
}

}  // namespace
}  // namespace kumo::test
