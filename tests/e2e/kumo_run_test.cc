// End-to-end tests of `kumo run`: bad input (exit 2, one clear line) and VM lifecycle.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "kvm/testing/require_kvm.h"
#include "memory/guest_memory.h"
#include "process.h"
#include "tiny_elf.h"

namespace kumo::test {
namespace {

const std::string kKumo = KUMO_BINARY;
const std::string kTestGuest = KUMO_TEST_GUEST;


// 2 MiB pages of the host's hugetlb pool that are free and not promised to a mapping.
uint64_t unreserved_huge_pages() { return memory::unreserved_huge_pages().value_or(0); }

class KumoRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kumo-e2e-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string tiny(const std::vector<uint8_t>& code) {
    return write_tiny_pvh_elf(path("tiny.elf"), code);
  }
  ProcessResult kumo(std::vector<std::string> args, int timeout_ms = 20000,
                     int signal_after_ms = -1, int signal = 0) {
    args.insert(args.begin(), {kKumo, "run"});
    return run_process(args, timeout_ms, signal_after_ms, signal);
  }
  std::filesystem::path dir_;
};

// One line on stderr, naming the problem; exit status 2.
void expect_misuse(const ProcessResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(KumoRun, HelpExitsZero) {
  auto r = run_process({kKumo, "run", "--help"});
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_NE(r.out.find("--kernel"), std::string::npos);
}

TEST_F(KumoRun, UnknownVerbIsMisuse) { expect_misuse(run_process({kKumo, "frobnicate"}), "unknown verb"); }
TEST_F(KumoRun, UnknownOptionIsMisuse) { expect_misuse(kumo({"--kernel", "x", "--bogus"}), "--bogus"); }
TEST_F(KumoRun, MissingKernelOptionIsMisuse) { expect_misuse(kumo({}), "--kernel"); }

TEST_F(KumoRun, MissingKernelFileIsMisuse) {
  KUMO_NEED_KVM();
  expect_misuse(kumo({"--kernel", path("nope")}), path("nope"));
}

TEST_F(KumoRun, DirectoryAsKernelIsMisuse) {
  KUMO_NEED_KVM();
  expect_misuse(kumo({"--kernel", dir_.string()}), dir_.string());
}

TEST_F(KumoRun, WrongMagicIsMisuse) {
  KUMO_NEED_KVM();
  std::ofstream(path("junk")) << std::string(8192, 'j');
  auto r = kumo({"--kernel", path("junk")});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_NE(r.err.find("junk"), std::string::npos) << r.err;
}

TEST_F(KumoRun, MalformedMemoryIsMisuse) {
  expect_misuse(kumo({"--kernel", "k", "--memory", "12Q"}), "--memory");
  expect_misuse(kumo({"--kernel", "k", "--memory", "-5M"}), "--memory");
}

TEST_F(KumoRun, MemoryTooSmallIsMisuse) {
  KUMO_NEED_KVM();
  expect_misuse(kumo({"--kernel", tiny({0xeb, 0xfe}), "--memory", "1M"}), "--memory");
}

TEST_F(KumoRun, MemoryLargerThanHostIsMisuse) {
  KUMO_NEED_KVM();
  expect_misuse(kumo({"--kernel", tiny({0xeb, 0xfe}), "--memory", "900T"}), "--memory");
}

TEST_F(KumoRun, TooManyCpusIsMisuse) {
  KUMO_NEED_KVM();
  expect_misuse(kumo({"--kernel", tiny({0xeb, 0xfe}), "--cpus", "100000"}), "--cpus");
  expect_misuse(kumo({"--kernel", tiny({0xeb, 0xfe}), "--cpus", "0"}), "--cpus");
  expect_misuse(kumo({"--kernel", "k", "--cpus", "two"}), "--cpus");
}

TEST_F(KumoRun, BadConsoleIsMisuse) {
  expect_misuse(kumo({"--kernel", "k", "--console", "tty"}), "--console");
}

TEST_F(KumoRun, DebugExitValueBecomesExitStatus) {
  KUMO_NEED_KVM();
  // mov dx,0x3f8; mov al,'K'; out dx,al; mov al,42; out 0xf4,al; jmp $
  auto r = kumo({"--kernel", tiny({0x66, 0xba, 0xf8, 0x03, 0xb0, 'K', 0xee, 0xb0, 42, 0xe6, 0xf4,
                                   0xeb, 0xfe})});
  EXPECT_EQ(r.exit_status, 42) << r.err;
  EXPECT_EQ(r.out, "K");
}

TEST_F(KumoRun, TripleFaultStopsWithRegisterDump) {
  KUMO_NEED_KVM();
  auto r = kumo({"--kernel", tiny({0x0f, 0x0b})});  // ud2 with no IDT
  EXPECT_EQ(r.exit_status, 1) << r.err;
  EXPECT_NE(r.err.find("rip="), std::string::npos) << r.err;
}

TEST_F(KumoRun, RebootRequestExitsWithOnRebootExit) {
  KUMO_NEED_KVM();
  // mov al,0xfe; out 0x64,al; jmp $
  auto r = kumo({"--kernel", tiny({0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe}), "--on-reboot", "exit"});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.err.find("reset"), std::string::npos) << r.err;
}

TEST_F(KumoRun, RebootRequestRestartsWithOnRebootRestart) {
  KUMO_NEED_KVM();
  // mov dx,0x3f8; mov al,'B'; out dx,al; mov al,0xfe; out 0x64,al; cli; hlt; jmp .-1
  auto r = kumo({"--kernel", tiny({0x66, 0xba, 0xf8, 0x03, 0xb0, 'B', 0xee, 0xb0, 0xfe, 0xe6,
                                   0x64, 0xfa, 0xf4, 0xeb, 0xfd}),
                 "--on-reboot", "restart"},
                20000, 1500, SIGTERM);
  EXPECT_EQ(r.exit_status, 128 + SIGTERM) << r.err;
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), 'B'), 2) << r.out;
}

// Every boot reads a word at 2 MiB: zero -> sets it, prints 'Z' and requests a reboot; still
// set -> prints 'D' and exits with status 3. Restarts forever while RAM is zeroed by a reset.
//   mov eax,[0x200000]; test eax,eax; jnz dirty; mov dword [0x200000],1
//   mov dx,0x3f8; mov al,'Z'; out dx,al; mov al,0xfe; out 0x64,al; cli; hlt; jmp .-1
//   dirty: mov dx,0x3f8; mov al,'D'; out dx,al; mov al,3; out 0xf4,al; jmp $
const std::vector<uint8_t> kRebootUntilRamIsNotZeroed = {
    0xa1, 0x00, 0x00, 0x20, 0x00, 0x85, 0xc0, 0x75, 0x19, 0xc7, 0x05, 0x00, 0x00, 0x20,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x66, 0xba, 0xf8, 0x03, 0xb0, 'Z',  0xee, 0xb0, 0xfe,
    0xe6, 0x64, 0xfa, 0xf4, 0xeb, 0xfd, 0x66, 0xba, 0xf8, 0x03, 0xb0, 'D',  0xee, 0xb0,
    0x03, 0xe6, 0xf4, 0xeb, 0xfe};

class RestartZeroesRam : public KumoRun, public ::testing::WithParamInterface<std::string> {};

TEST_P(RestartZeroesRam, WithEveryMemoryBackend) {
  KUMO_NEED_KVM();
  if (GetParam() == "hugetlb" && unreserved_huge_pages() < 8) {
    GTEST_SKIP() << "fewer than 8 free 2 MiB hugetlb pages (sysctl vm.nr_hugepages)";
  }
  auto r = kumo({"--kernel", tiny(kRebootUntilRamIsNotZeroed), "--memory", "16M",
                 "--memory-backend", GetParam(), "--on-reboot", "restart"},
                20000, 1500, SIGTERM);
  EXPECT_EQ(r.exit_status, 128 + SIGTERM) << r.err;
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), 'Z'), 2) << r.out;
  EXPECT_EQ(r.out.find('D'), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Backends, RestartZeroesRam,
                         ::testing::Values("anon", "memfd", "hugetlb"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           return param_info.param;
                         });

TEST_F(KumoRun, UnknownMemoryBackendIsMisuse) {
  expect_misuse(kumo({"--kernel", "k", "--memory-backend", "shm"}), "--memory-backend");
}

TEST_F(KumoRun, HugetlbBeyondThePoolIsMisuse) {
  KUMO_NEED_KVM();
  const uint64_t mib = std::max<uint64_t>(16, (unreserved_huge_pages() + 1) * 2);
  if (mib > 4096) GTEST_SKIP() << "hugetlb pool too large to exceed in a test";
  expect_misuse(kumo({"--kernel", tiny({0xeb, 0xfe}), "--memory", std::to_string(mib) + "M",
                      "--memory-backend", "hugetlb"}),
                "vm.nr_hugepages");
}

TEST_F(KumoRun, HugetlbWithPartialHugePageIsMisuse) {
  expect_misuse(kumo({"--kernel", "k", "--memory", "17M", "--memory-backend", "hugetlb"}),
                "2 MiB");
}

TEST_F(KumoRun, SigtermTearsDownCleanly) {
  KUMO_NEED_KVM();
  auto r = kumo({"--kernel", tiny({0xeb, 0xfe}), "--cpus", "2"}, 20000, 500, SIGTERM);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_status, 128 + SIGTERM) << r.err;
  EXPECT_NE(r.err.find("SIGTERM"), std::string::npos) << r.err;
}

TEST_F(KumoRun, FileConsoleReceivesOutput) {
  KUMO_NEED_KVM();
  auto r = kumo({"--kernel", tiny({0x66, 0xba, 0xf8, 0x03, 0xb0, 'F', 0xee, 0xb0, 0, 0xe6, 0xf4,
                                   0xeb, 0xfe}),
                 "--console", "file:" + path("console.log")});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  std::ifstream in(path("console.log"));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "F");
}

TEST_F(KumoRun, SocketConsoleServesAConnectedClient) {
  KUMO_NEED_KVM();
  const std::string sock = path("console.sock");
  // Spin in a loop that prints 'S' forever, so the client sees output after connecting.
  // loop: mov dx,0x3f8; mov al,'S'; out dx,al; jmp loop
  const std::string elf = tiny({0x66, 0xba, 0xf8, 0x03, 0xb0, 'S', 0xee, 0xeb, 0xf7});
  std::string received;
  std::thread client([&] {
    for (int attempt = 0; attempt < 200 && received.empty(); ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock.c_str());
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        char buf[64];
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n > 0) received.assign(buf, static_cast<size_t>(n));
      }
      ::close(fd);
    }
  });
  auto r = kumo({"--kernel", elf, "--console", "socket:" + sock}, 20000, 3000, SIGTERM);
  client.join();
  EXPECT_EQ(r.exit_status, 128 + SIGTERM) << r.err;
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received.find_first_not_of('S'), std::string::npos) << received;
  EXPECT_FALSE(std::filesystem::exists(sock));  // removed on exit
}

TEST_F(KumoRun, KernelLargerThanMemoryIsMisuse) {
  KUMO_NEED_KVM();
  // A PVH ELF whose segment is 64 MiB, booted with 16 MiB of RAM.
  auto r = kumo({"--kernel", tiny(std::vector<uint8_t>(64u << 20, 0x90)), "--memory", "16M"});
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// --- The test guest's workloads ---------------------------------------------------------

class TestGuest : public KumoRun {
 protected:
  void SetUp() override {
    KumoRun::SetUp();
    KUMO_NEED_KVM();
    if (!std::filesystem::exists(kTestGuest)) GTEST_SKIP() << kTestGuest << " not built";
  }
  ProcessResult workload(const std::string& cmdline, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--kernel", kTestGuest, "--cmdline", cmdline};
    args.insert(args.end(), extra.begin(), extra.end());
    return kumo(args, 60000);
  }
};

TEST_F(TestGuest, HelloRunsToCompletion) {
  auto r = workload("workload=hello");
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("hello=world"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("status=ok"), std::string::npos) << r.out;
}

TEST_F(TestGuest, BootMarkerIsLoggedByBootTimer) {
  auto r = workload("workload=boot");
  EXPECT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.err.find("boot-timer marker"), std::string::npos) << r.err;
}

TEST_F(TestGuest, EveryVcpuChecksIn) {
  auto r = workload("workload=smp", {"--cpus", "2"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("cpus_seen=2"), std::string::npos) << r.out;
}

TEST_F(TestGuest, MemoryPatternVerifies) {
  auto r = workload("workload=mem size_mib=32");
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("mem_errors=0"), std::string::npos) << r.out;
}

TEST_F(TestGuest, MemoryPatternVerifiesOnMemfd) {
  auto r = workload("workload=mem size_mib=32", {"--memory-backend", "memfd"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("mem_errors=0"), std::string::npos) << r.out;
}

TEST_F(TestGuest, MemoryPatternVerifiesOnHugetlb) {
  if (unreserved_huge_pages() < 64) GTEST_SKIP() << "fewer than 64 free 2 MiB hugetlb pages";
  auto r = workload("workload=mem size_mib=32", {"--memory-backend", "hugetlb"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("mem_errors=0"), std::string::npos) << r.out;
}

TEST_F(TestGuest, CpuLoopCompletes) {
  auto r = workload("workload=cpu");
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("cpu_checksum="), std::string::npos) << r.out;
}

TEST_F(TestGuest, TimerInterruptsArrive) {
  auto r = workload("workload=irq period_ms=200");
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("irq_count="), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("irq_count=0\n"), std::string::npos) << r.out;
}

TEST_F(TestGuest, LargeMemoryAboveMmioHoleWorks) {
  auto r = workload("workload=hello", {"--memory", "4G"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
}

}  // namespace
}  // namespace kumo::test
