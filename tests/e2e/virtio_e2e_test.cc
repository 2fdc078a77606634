// End-to-end tests of kumo's virtio devices, driven through `kumo run` and the test guest as a
// user would: raw and qcow2 disk files, a real tap with a host responder, two VMs on a bridge
// inside a network namespace, and the bad input each option must reject (exit status 2, one
// line on stderr naming the problem).
//
// Every interface and namespace a test creates carries this process's pid in its name and is
// removed by an RAII guard, also when the test fails.

#include <grp.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kvm/testing/require_kvm.h"
#include "process.h"

namespace kumo::test {
namespace {

const std::string kKumo = KUMO_BINARY;
const std::string kTestGuest = KUMO_TEST_GUEST;
const std::string kTapEcho = KUMO_TAP_ECHO;

constexpr int kVmTimeoutMs = 60000;


std::optional<std::string> find_program(const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  return std::nullopt;
}

std::optional<std::string> ip_program() {
  return find_program({"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"});
}

// Root, /dev/net/tun and iproute2: what creating taps, bridges and namespaces needs.
std::optional<std::string> why_no_host_networking() {
  if (::geteuid() != 0) return "needs root to create taps, bridges and namespaces";
  if (::access("/dev/net/tun", R_OK | W_OK) != 0) return "/dev/net/tun not available";
  if (!ip_program()) return "iproute2 (ip) not installed";
  return std::nullopt;
}

// Runs a shell command; true when it exited 0. Output goes to the test log.
bool sh(const std::string& command) { return std::system(command.c_str()) == 0; }

// A unique interface or namespace name: prefix + pid + serial, at most 15 characters.
std::string unique_name(const std::string& prefix) {
  static int serial = 0;
  std::string name = prefix + std::to_string(::getpid()) + "x" + std::to_string(serial++);
  return name.substr(0, 15);
}

// `ip netns add NAME` for the lifetime of the object.
class NetNamespace final {
 public:
  NetNamespace() : name_(unique_name("kvtns")) {
    created_ = sh("ip netns add " + name_) && sh("ip -n " + name_ + " link set lo up");
  }
  ~NetNamespace() {
    if (created_) (void)sh("ip netns del " + name_);
  }
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;
  [[nodiscard]] bool ok() const { return created_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  // argv prefixed with `ip netns exec NAME`.
  [[nodiscard]] std::vector<std::string> exec(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {*ip_program(), "netns", "exec", name_});
    return argv;
  }

 private:
  std::string name_;
  bool created_ = false;
};

// A network interface made by `create_command` (with NAME substituted), deleted at the end.
// `ip_prefix` selects the namespace ("ip" or "ip -n NS").
class Interface final {
 public:
  Interface(std::string name, const std::string& ip_prefix, const std::string& create_args)
      : name_(std::move(name)), ip_(ip_prefix) {
    created_ = sh(ip_ + " link add " + name_ + " " + create_args) &&
               sh(ip_ + " link set " + name_ + " up");
  }
  ~Interface() {
    if (created_) (void)sh(ip_ + " link del " + name_);
  }
  Interface(const Interface&) = delete;
  Interface& operator=(const Interface&) = delete;
  [[nodiscard]] bool ok() const { return created_; }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string ip_;
  bool created_ = false;
};

// A tap in the host namespace (ip tuntap add), up, deleted at the end.
class HostTap final {
 public:
  explicit HostTap(bool multi_queue = false) : name_(unique_name("kvtap")) {
    created_ = sh("ip tuntap add dev " + name_ + " mode tap vnet_hdr" +
                  (multi_queue ? " multi_queue" : "")) &&
               sh("ip link set " + name_ + " up");
  }
  ~HostTap() {
    if (created_) (void)sh("ip link del " + name_);
  }
  HostTap(const HostTap&) = delete;
  HostTap& operator=(const HostTap&) = delete;
  [[nodiscard]] bool ok() const { return created_; }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool created_ = false;
};

size_t line_count(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

// One line on stderr, naming the problem; exit status 2.
void expect_misuse(const ProcessResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_status, 2) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
}

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class VirtioE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    KUMO_NEED_KVM();
    if (!std::filesystem::exists(kTestGuest)) GTEST_SKIP() << kTestGuest << " not built";
    dir_ = std::filesystem::temp_directory_path() /
           ("kumo-virtio-e2e-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A sparse raw disk image of `mib` MiB.
  std::string raw_disk(const std::string& name, uint64_t mib = 32) {
    const std::string p = path(name);
    std::ofstream(p).close();
    std::filesystem::resize_file(p, mib << 20);
    return p;
  }

  // `kumo run` arguments booting the test guest with `cmdline`, plus `extra`.
  static std::vector<std::string> guest_argv(const std::string& cmdline,
                                             const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kKumo,    "run",     "--kernel",       kTestGuest,
                                     "--cmdline", cmdline, "--no-boot-time"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  static ProcessResult guest(const std::string& cmdline,
                             const std::vector<std::string>& extra = {}) {
    return run_process(guest_argv(cmdline, extra), kVmTimeoutMs);
  }

  std::filesystem::path dir_;
};

// --- virtio-blk -----------------------------------------------------------------------

TEST_F(VirtioE2e, BlkVerifyPassesOnARawFile) {
  auto r = guest("workload=blk-verify", {"--disk", "path=" + raw_disk("d.raw")});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_capacity_sectors=65536")) << r.out;
  EXPECT_TRUE(has(r.out, "blk_verify=ok")) << r.out;
}

TEST_F(VirtioE2e, BlkVerifyWritesReachTheFile) {
  const std::string disk = raw_disk("d.raw");
  auto r = guest("workload=blk-verify", {"--disk", "path=" + disk});
  ASSERT_EQ(r.exit_status, 0) << r.err << r.out;
  // The guest writes 32 KiB at the start of the disk; an all-zero start means it went nowhere.
  std::ifstream in(disk, std::ios::binary);
  std::vector<char> head(32768);
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  EXPECT_TRUE(std::any_of(head.begin(), head.end(), [](char c) { return c != 0; }));
}

TEST_F(VirtioE2e, ReadOnlyDiskFailsGuestWritesWithIoErr) {
  auto r = guest("workload=blk-verify", {"--disk", "path=" + raw_disk("d.raw") + ",readonly=on"});
  // The guest sees VIRTIO_BLK_S_IOERR (1) on its first write and fails; kumo reports the
  // guest's exit status (1), it does not crash.
  EXPECT_EQ(r.exit_status, 1) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "error=write-failed")) << r.out;
  EXPECT_TRUE(has(r.out, "blk_status=1")) << r.out;
  EXPECT_EQ(r.err, "") << r.err;
}

TEST_F(VirtioE2e, ReadOnlyDiskServesReads) {
  auto r = guest("workload=blk-bench rw=randread seconds=1",
                 {"--disk", "path=" + raw_disk("d.raw") + ",readonly=on"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_errors=0")) << r.out;
}

TEST_F(VirtioE2e, ReadOnlyDiskFileIsNotModified) {
  const std::string disk = raw_disk("d.raw");
  const auto before = std::filesystem::last_write_time(disk);
  auto r = guest("workload=blk-verify", {"--disk", "path=" + disk + ",readonly=on"});
  EXPECT_EQ(r.exit_status, 1) << r.err << r.out;
  EXPECT_EQ(std::filesystem::last_write_time(disk), before);
  std::ifstream in(disk, std::ios::binary);
  std::vector<char> head(32768);
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  EXPECT_TRUE(std::all_of(head.begin(), head.end(), [](char c) { return c == 0; }));
}

TEST_F(VirtioE2e, BlkVerifyPassesWithCacheNone) {
  auto r = guest("workload=blk-verify", {"--disk", "path=" + raw_disk("d.raw") + ",cache=none"});
  if (r.exit_status == 2 && has(r.err, "O_DIRECT")) {
    GTEST_SKIP() << "the temporary directory's file system has no O_DIRECT: " << r.err;
  }
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_verify=ok")) << r.out;
}

TEST_F(VirtioE2e, BlkVerifyPassesWithTheSyncEngine) {
  auto r = guest("workload=blk-verify", {"--disk", "path=" + raw_disk("d.raw") + ",io=sync"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_verify=ok")) << r.out;
}

TEST_F(VirtioE2e, BlkBenchRandomReadsForOneSecondWithoutErrors) {
  auto r = guest("workload=blk-bench rw=randread seconds=1", {"--disk", "path=" + raw_disk("d.raw")});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_errors=0")) << r.out;
  EXPECT_FALSE(has(r.out, "blk_requests=0\n")) << r.out;
}

// The worker polls by default (poll-us=50); without polling every request rides on the
// driver's notification and the worker sleeps in between.
// VIRTIO_BLK_F_MQ: four request queues, one worker; every queue carries requests.
TEST_F(VirtioE2e, BlkBenchOverFourQueuesServesEveryQueue) {
  auto r = guest("workload=blk-bench rw=randread qd=32 seconds=1 queues=4",
                 {"--disk", "path=" + raw_disk("d.raw") + ",queues=4"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_errors=0")) << r.out;
  EXPECT_TRUE(has(r.out, "blk_queues=4")) << r.out;
  for (int q = 0; q < 4; ++q) {
    EXPECT_FALSE(has(r.out, "blk_q" + std::to_string(q) + "_requests=0")) << r.out;
  }
  // A guest that asks for more queues than the disk has is told so.
  auto few = guest("workload=blk-bench seconds=1 queues=4", {"--disk", "path=" + raw_disk("e.raw")});
  EXPECT_TRUE(has(few.out, "error=no-mq")) << few.out;
}

TEST_F(VirtioE2e, BlkBenchWithoutPollingServesEveryRequest) {
  auto r = guest("workload=blk-bench rw=randread qd=8 seconds=1",
                 {"--disk", "path=" + raw_disk("d.raw") + ",poll-us=0"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_errors=0")) << r.out;
  EXPECT_FALSE(has(r.out, "blk_requests=0\n")) << r.out;
}

TEST_F(VirtioE2e, BlkBenchSequentialWritesForOneSecondWithoutErrors) {
  auto r = guest("workload=blk-bench rw=write seconds=1", {"--disk", "path=" + raw_disk("d.raw")});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_errors=0")) << r.out;
}

TEST_F(VirtioE2e, Qcow2DiskMadeByQemuImgVerifiesAndStaysConsistent) {
  const auto qemu_img = find_program({"/usr/bin/qemu-img", "/usr/local/bin/qemu-img"});
  if (!qemu_img) GTEST_SKIP() << "qemu-img not installed";
  const std::string disk = path("d.qcow2");
  ASSERT_EQ(run_process({*qemu_img, "create", "-q", "-f", "qcow2", disk, "32M"}).exit_status, 0);
  auto r = guest("workload=blk-verify", {"--disk", "path=" + disk});
  if (r.exit_status == 2 && has(r.err, "qcow2 is not supported")) {
    GTEST_SKIP() << "kumo has no qcow2 back end yet: " << r.err;
  }
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_capacity_sectors=65536")) << r.out;
  EXPECT_TRUE(has(r.out, "blk_verify=ok")) << r.out;
  auto check = run_process({*qemu_img, "check", "-q", disk});
  EXPECT_EQ(check.exit_status, 0) << check.out << check.err;
}

// Metadata caches far smaller than the image's metadata (4 KiB clusters: 16 L2 tables for
// 32 MiB; two fit) keep evicting tables under random writes, and the image stays consistent.
TEST_F(VirtioE2e, Qcow2WithTinyMetadataCachesStaysConsistentUnderRandomWrites) {
  const auto qemu_img = find_program({"/usr/bin/qemu-img", "/usr/local/bin/qemu-img"});
  if (!qemu_img) GTEST_SKIP() << "qemu-img not installed";
  const std::string disk = path("small-cache.qcow2");
  ASSERT_EQ(run_process({*qemu_img, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                         disk, "32M"})
                .exit_status,
            0);
  const std::string spec = "path=" + disk + ",l2-cache-size=8K,refcount-cache-size=8K";
  auto r = guest("workload=blk-bench rw=randwrite qd=8 seconds=1", {"--disk", spec});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "blk_errors=0")) << r.out;
  auto check = run_process({*qemu_img, "check", disk});
  EXPECT_EQ(check.exit_status, 0) << check.out << check.err;
  EXPECT_TRUE(has(r.out, "blk_requests=")) << r.out;
  auto bad = guest("workload=blk-verify", {"--disk", "path=" + disk + ",l2-cache-size=huge"});
  EXPECT_EQ(bad.exit_status, 2) << bad.err;
  EXPECT_TRUE(has(bad.err, "l2-cache-size")) << bad.err;
}

// --- virtio-rng and virtio-console -----------------------------------------------------

TEST_F(VirtioE2e, RngGivesTheGuestVariedBytes) {
  auto r = guest("workload=rng", {"--rng"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "rng_bytes=64")) << r.out;
  EXPECT_TRUE(has(r.out, "rng_varied=yes")) << r.out;
}

// --console virtio puts the virtio-console on stdio (stdin is /dev/null here) and takes the
// serial port off it: only what the guest writes through virtio reaches stdout.
TEST_F(VirtioE2e, VirtioConsoleCarriesGuestOutputToStdout) {
  auto r = guest("workload=console-write", {"--console", "virtio"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_EQ(r.out, "virtio_console=hello\n");
}

TEST_F(VirtioE2e, VirtioConsoleVmBootsAndTheGuestCompletes) {
  auto r = guest("workload=hello", {"--console", "virtio"});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_EQ(r.err, "") << r.err;
}

TEST_F(VirtioE2e, PciEnumeratesEveryVirtioDevice) {
  auto r = guest("workload=pci",
                 {"--disk", "path=" + raw_disk("d.raw"), "--rng", "--console", "file:" + path("c.log")});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  std::ifstream in(path("c.log"));
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(has(out, "=1af4:1042")) << out;
  EXPECT_TRUE(has(out, "=1af4:1044")) << out;
}

TEST_F(VirtioE2e, DiskRngAndVirtioConsoleTogetherLetBlkVerifyPass) {
  auto r = guest("workload=blk-verify",
                 {"--disk", "path=" + raw_disk("d.raw"), "--rng", "--console", "virtio"});
  EXPECT_EQ(r.exit_status, 0) << r.err;
}

// --- guest reboot (--on-reboot restart) ------------------------------------------------

// Boots the test guest with `cmdline reboot=1` (it reboots after each pass) until `boots`
// passes finished, then stops kumo; returns stdout split at each boot's "workload=" line.
std::vector<std::string> boots_until(const std::vector<std::string>& argv, size_t boots) {
  ChildProcess vm(argv);
  EXPECT_TRUE(vm.wait_for_stdout("status=ok\n", kVmTimeoutMs, boots));
  vm.send_signal(SIGTERM);
  const ProcessResult r = vm.finish(kVmTimeoutMs);
  EXPECT_EQ(r.exit_status, 128 + SIGTERM) << r.err;
  std::vector<std::string> outputs;
  for (size_t at = r.out.find("workload="); at != std::string::npos;) {
    const size_t next = r.out.find("workload=", at + 1);
    outputs.push_back(r.out.substr(at, next == std::string::npos ? next : next - at));
    at = next;
  }
  return outputs;
}

// A reboot resets every PCI function: each boot finds Command 0 and the BARs where kumo
// placed them, although the boot before moved them and enabled the functions.
TEST_F(VirtioE2e, EveryBootFindsThePciFunctionsAtPowerOn) {
  const auto boots = boots_until(guest_argv("workload=pci pci_move=1 reboot=1",
                                            {"--disk", "path=" + raw_disk("d.raw"), "--rng",
                                             "--on-reboot", "restart"}),
                                 3);
  ASSERT_GE(boots.size(), 3u);
  EXPECT_TRUE(has(boots[0], "pci_01_0_command=0x0000")) << boots[0];
  EXPECT_TRUE(has(boots[0], "pci_02_0_command=0x0000")) << boots[0];
  EXPECT_TRUE(has(boots[0], "pci_01_0_moved_bar0=")) << boots[0];
  EXPECT_TRUE(has(boots[0], "status=ok")) << boots[0];
  for (size_t i = 1; i < 3; ++i) EXPECT_EQ(boots[i], boots[0]) << "boot " << i;
}

TEST_F(VirtioE2e, DiskServesTheGuestAgainAfterAReboot) {
  const auto boots = boots_until(guest_argv("workload=blk-verify reboot=1",
                                            {"--disk", "path=" + raw_disk("d.raw"),
                                             "--on-reboot", "restart"}),
                                 2);
  ASSERT_GE(boots.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(has(boots[i], "blk_verify=ok")) << boots[i];
}

// --vcpu-cpus / --io-cpus: the vCPU thread runs where told, the device worker and the main
// thread on the I/O CPUs (read back from /proc while the guest runs).
std::map<std::string, std::string> cpus_of_threads(pid_t pid) {
  std::map<std::string, std::string> out;  // thread name -> Cpus_allowed_list
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) {
        out[name] = line.substr(line.find_first_not_of(" \t", 18));
      }
    }
  }
  return out;
}

TEST_F(VirtioE2e, ThreadsRunOnTheCpusGivenForVcpusAndIo) {
  cpu_set_t allowed;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  if (!CPU_ISSET(0, &allowed) || !CPU_ISSET(1, &allowed)) {
    GTEST_SKIP() << "needs CPUs 0 and 1";
  }
  ChildProcess vm(guest_argv("workload=blk-bench rw=randread seconds=3",
                             {"--disk", "path=" + raw_disk("d.raw"), "--vcpu-cpus", "0",
                              "--io-cpus", "1"}));
  std::map<std::string, std::string> threads;
  for (int i = 0; i < 200 && !threads.count("virtio-blk"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    threads = cpus_of_threads(vm.pid());
  }
  EXPECT_EQ(threads["kumo-vcpu0"], "0");
  EXPECT_EQ(threads["virtio-blk"], "1");
  EXPECT_EQ(threads["kumo"], "1");  // the main thread
  auto r = vm.finish(kVmTimeoutMs);
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
}

TEST_F(VirtioE2e, CpuListsThatAreMalformedOrUnavailableAreMisuse) {
  expect_misuse(guest("workload=hello", {"--vcpu-cpus", "1-0"}), "--vcpu-cpus");
  expect_misuse(guest("workload=hello", {"--io-cpus", "x"}), "--io-cpus");
  expect_misuse(guest("workload=hello", {"--io-cpus", "1023"}), "not available");
}

// --- virtio-net -------------------------------------------------------------------------

class VirtioNetE2e : public VirtioE2e {
 protected:
  void SetUp() override {
    VirtioE2e::SetUp();
    if (IsSkipped()) return;
    if (auto why = why_no_host_networking()) GTEST_SKIP() << *why;
  }
};

TEST_F(VirtioNetE2e, NetEchoThroughATapLosesNothing) {
  HostTap tap;
  ASSERT_TRUE(tap.ok());
  ChildProcess echo({kTapEcho, tap.name(), "60"});
  ASSERT_TRUE(echo.wait_for_stdout("ready", 10000)) << "kumo-tap-echo did not start";
  auto r = guest("workload=net-echo count=100", {"--net", "tap=" + tap.name()});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "net_replies=100")) << r.out;
  EXPECT_TRUE(has(r.out, "net_lost=0")) << r.out;
}

TEST_F(VirtioNetE2e, NetBenchLosesNothingWithAndWithoutPolling) {
  HostTap tap;
  ASSERT_TRUE(tap.ok());
  ChildProcess echo({kTapEcho, tap.name(), "60"});
  ASSERT_TRUE(echo.wait_for_stdout("ready", 10000)) << "kumo-tap-echo did not start";
  for (const std::string poll : {"0", "50", "1000"}) {
    auto r = guest("workload=net-bench seconds=1 window=32",
                   {"--net", "tap=" + tap.name() + ",poll-us=" + poll});
    EXPECT_EQ(r.exit_status, 0) << "poll-us=" << poll << r.err << r.out;
    EXPECT_TRUE(has(r.out, "net_lost=0")) << "poll-us=" << poll << r.out;
  }
}

// VIRTIO_NET_F_MRG_RXBUF: full-size frames spread over 64-byte receive buffers (24 per
// frame), 32 in flight; the guest reassembles and checks every byte of every reply.
TEST_F(VirtioNetE2e, MergedReceiveBuffersCarryFullSizeFrames) {
  HostTap tap;
  ASSERT_TRUE(tap.ok());
  ChildProcess echo({kTapEcho, tap.name(), "60"});
  ASSERT_TRUE(echo.wait_for_stdout("ready", 10000)) << "kumo-tap-echo did not start";
  for (const std::string cmdline : {"workload=net-echo count=50 frame=1514 mrg=1 rxbuf=64",
                                    "workload=net-bench seconds=1 frame=1514 mrg=1 rxbuf=200"}) {
    auto r = guest(cmdline, {"--net", "tap=" + tap.name()});
    EXPECT_EQ(r.exit_status, 0) << cmdline << r.err << r.out;
    EXPECT_TRUE(has(r.out, "net_rx_bad=0")) << cmdline << r.out;
    EXPECT_TRUE(has(r.out, "net_lost=0")) << cmdline << r.out;
  }
}

// Multiqueue: the guest asks for pairs through the control queue and sends round-robin;
// the host's tap spreads the replies over the tap queues, so every pair receives.
TEST_F(VirtioNetE2e, MultiqueueCarriesFramesOnEveryPair) {
  HostTap tap(/*multi_queue=*/true);
  ASSERT_TRUE(tap.ok());
  ChildProcess echo({kTapEcho, tap.name(), "60"});
  ASSERT_TRUE(echo.wait_for_stdout("ready", 10000)) << "kumo-tap-echo did not start";
  auto r = guest("workload=net-bench seconds=1 queues=4",
                 {"--net", "tap=" + tap.name() + ",queues=4"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "net_pairs=4")) << r.out;
  EXPECT_TRUE(has(r.out, "net_lost=0")) << r.out;
  for (int q = 0; q < 4; ++q) {
    EXPECT_FALSE(has(r.out, "net_rx_q" + std::to_string(q) + "=0")) << r.out;
    EXPECT_FALSE(has(r.out, "net_tx_q" + std::to_string(q) + "=0")) << r.out;
  }
  // Fewer pairs than the device has: the others stay idle (their tap queues detached).
  auto two = guest("workload=net-echo count=50 queues=2",
                   {"--net", "tap=" + tap.name() + ",queues=4"});
  EXPECT_EQ(two.exit_status, 0) << two.err << two.out;
  EXPECT_TRUE(has(two.out, "net_replies=50")) << two.out;
}

TEST_F(VirtioNetE2e, MultiqueueOnASingleQueueTapIsMisuse) {
  HostTap tap;
  ASSERT_TRUE(tap.ok());
  expect_misuse(guest("workload=hello", {"--net", "tap=" + tap.name() + ",queues=2"}),
                "multi-queue");
}

TEST_F(VirtioNetE2e, GuestSeesTheMacGivenOnTheCommandLine) {
  HostTap tap;
  ASSERT_TRUE(tap.ok());
  ChildProcess echo({kTapEcho, tap.name(), "60"});
  ASSERT_TRUE(echo.wait_for_stdout("ready", 10000));
  auto r = guest("workload=net-echo count=5",
                 {"--net", "tap=" + tap.name() + ",mac=52:54:00:12:34:56"});
  EXPECT_EQ(r.exit_status, 0) << r.err << r.out;
  EXPECT_TRUE(has(r.out, "net_mac=52:54:00:12:34:56")) << r.out;
}

// The scenario: two VMs on one bridge in a namespace of their own. VM A reflects
// what it receives; VM B probes and must get every probe back, through the bridge only.
TEST_F(VirtioNetE2e, TwoVmsOnABridgeInANamespaceExchangeFrames) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  Interface bridge(unique_name("kvtbr"), "ip -n " + ns.name(), "type bridge");
  ASSERT_TRUE(bridge.ok());
  ChildProcess a(ns.exec(guest_argv("workload=net-reflect count=50 seconds=50 expect=50",
                                    {"--net", "bridge=" + bridge.name()})));
  ASSERT_TRUE(a.wait_for_stdout("net_mac=", kVmTimeoutMs)) << "VM A did not bring up its NIC";
  auto b = run_process(ns.exec(guest_argv("workload=net-echo count=50",
                                          {"--net", "bridge=" + bridge.name()})),
                       kVmTimeoutMs);
  auto ra = a.finish(kVmTimeoutMs);
  EXPECT_EQ(b.exit_status, 0) << b.err << b.out;
  EXPECT_TRUE(has(b.out, "net_replies=50")) << b.out;
  EXPECT_TRUE(has(b.out, "net_lost=0")) << b.out;
  EXPECT_EQ(ra.exit_status, 0) << ra.err << ra.out;
  EXPECT_TRUE(has(ra.out, "net_reflected=50")) << ra.out;
}

TEST_F(VirtioNetE2e, TapKumoCreatesForABridgeIsUpAndEnslaved) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  Interface bridge(unique_name("kvtbr"), "ip -n " + ns.name(), "type bridge");
  ASSERT_TRUE(bridge.ok());
  const std::string tap = unique_name("kvtt");
  ChildProcess vm(ns.exec(guest_argv("workload=net-reflect seconds=30",
                                     {"--net", "bridge=" + bridge.name() + ",tap=" + tap})));
  ASSERT_TRUE(vm.wait_for_stdout("net_mac=", kVmTimeoutMs));
  auto link = run_process(ns.exec({*ip_program(), "-o", "link", "show", "dev", tap}));
  vm.send_signal(SIGTERM);
  (void)vm.finish(kVmTimeoutMs);
  EXPECT_TRUE(has(link.out, "master " + bridge.name())) << link.out;
  EXPECT_TRUE(has(link.out, ",UP") || has(link.out, "<UP")) << link.out;
}

TEST_F(VirtioNetE2e, TapKumoCreatedIsGoneAfterExit) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  Interface bridge(unique_name("kvtbr"), "ip -n " + ns.name(), "type bridge");
  ASSERT_TRUE(bridge.ok());
  const std::string tap = unique_name("kvtt");
  auto r = run_process(ns.exec(guest_argv("workload=hello",
                                          {"--net", "bridge=" + bridge.name() + ",tap=" + tap})),
                       kVmTimeoutMs);
  EXPECT_EQ(r.exit_status, 0) << r.err;
  auto link = run_process(ns.exec({*ip_program(), "-o", "link", "show", "dev", tap}));
  EXPECT_NE(link.exit_status, 0) << link.out;
}

// --- bad input: exit status 2, one line naming the problem --------------------------------

TEST_F(VirtioE2e, MissingDiskFileIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "path=" + path("nope.raw")}), path("nope.raw"));
}

TEST_F(VirtioE2e, DirectoryAsDiskIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "path=" + dir_.string()}), "directory");
}

TEST_F(VirtioE2e, SameImageTwiceInOneVmIsMisuse) {
  const std::string disk = raw_disk("d.raw");
  expect_misuse(guest("workload=hello", {"--disk", "path=" + disk, "--disk", "path=" + disk}),
                "in use");
}

TEST_F(VirtioE2e, ImageWrittenByAnotherVmIsMisuse) {
  const std::string disk = raw_disk("d.raw");
  // The first VM holds the image (irq workload: runs for a while).
  ChildProcess first(guest_argv("workload=irq period_ms=3000", {"--disk", "path=" + disk}));
  ASSERT_TRUE(first.wait_for_stdout("workload=irq", kVmTimeoutMs));
  expect_misuse(guest("workload=hello", {"--disk", "path=" + disk + ",readonly=on"}), "in use");
  first.send_signal(SIGTERM);
  (void)first.finish(kVmTimeoutMs);
}

TEST_F(VirtioE2e, ReadOnlyImageIsSharedByTwoVms) {
  const std::string disk = raw_disk("d.raw");
  ChildProcess first(guest_argv("workload=irq period_ms=3000", {"--disk", "path=" + disk + ",readonly=on"}));
  ASSERT_TRUE(first.wait_for_stdout("workload=irq", kVmTimeoutMs));
  auto second = guest("workload=hello", {"--disk", "path=" + disk + ",readonly=on"});
  EXPECT_EQ(second.exit_status, 0) << second.err;
  first.send_signal(SIGTERM);
  (void)first.finish(kVmTimeoutMs);
}

TEST_F(VirtioE2e, UnknownDiskKeyIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "path=" + raw_disk("d.raw") + ",colour=red"}),
                "'colour'");
}

TEST_F(VirtioE2e, ReadonlyMaybeIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "path=" + raw_disk("d.raw") + ",readonly=maybe"}),
                "'maybe'");
}

TEST_F(VirtioE2e, EmptyDiskPathIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "path="}), "'path'");
}

TEST_F(VirtioE2e, DiskWithoutPathIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "readonly=on"}), "'path'");
}

TEST_F(VirtioE2e, BadCacheModeIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "path=" + raw_disk("d.raw") + ",cache=maybe"}),
                "cache");
}

TEST_F(VirtioE2e, PollWindowBeyondTenMillisecondsIsMisuse) {
  expect_misuse(guest("workload=hello", {"--disk", "path=" + raw_disk("d.raw") + ",poll-us=20000"}),
                "poll-us");
  expect_misuse(guest("workload=hello", {"--net", "tap=kvtx0,poll-us=fast"}), "poll-us");
}

TEST_F(VirtioE2e, DiskErrorNamesTheOptionOnce) {
  auto r = guest("workload=hello", {"--disk", "path=" + raw_disk("d.raw") + ",colour=red"});
  EXPECT_FALSE(has(r.err, "--disk: --disk")) << r.err;
}

TEST_F(VirtioE2e, UnknownNetKeyIsMisuse) {
  expect_misuse(guest("workload=hello", {"--net", "tap=kvtx0,colour=red"}), "'colour'");
}

TEST_F(VirtioE2e, BadMacIsMisuse) {
  expect_misuse(guest("workload=hello", {"--net", "tap=kvtx0,mac=52:54:00:zz:00:01"}), "mac");
}

TEST_F(VirtioE2e, NetWithoutTapOrBridgeIsMisuse) {
  expect_misuse(guest("workload=hello", {"--net", "mac=52:54:00:00:00:01"}), "'tap' or 'bridge'");
}

TEST_F(VirtioE2e, NetErrorNamesTheOptionOnce) {
  auto r = guest("workload=hello", {"--net", "tap=kvtx0,colour=red"});
  EXPECT_FALSE(has(r.err, "--net: --net")) << r.err;
}

TEST_F(VirtioNetE2e, UnknownBridgeIsMisuse) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  const std::string missing = unique_name("kvtnb");
  expect_misuse(run_process(ns.exec(guest_argv("workload=hello", {"--net", "bridge=" + missing})),
                            kVmTimeoutMs),
                missing);
}

TEST_F(VirtioNetE2e, DuplicateMacIsMisuse) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  const std::string mac = "mac=52:54:00:00:00:42";
  expect_misuse(run_process(ns.exec(guest_argv("workload=hello",
                                               {"--net", "tap=" + unique_name("kvtt") + "," + mac,
                                                "--net", "tap=" + unique_name("kvtt") + "," + mac})),
                            kVmTimeoutMs),
                "52:54:00:00:00:42");
}

TEST_F(VirtioNetE2e, SameTapTwiceIsMisuse) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  const std::string tap = unique_name("kvtt");
  expect_misuse(run_process(ns.exec(guest_argv("workload=hello",
                                               {"--net", "tap=" + tap, "--net", "tap=" + tap})),
                            kVmTimeoutMs),
                "two NICs");
}

TEST_F(VirtioNetE2e, TapInUseByAnotherVmIsMisuse) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  const std::string tap = unique_name("kvtt");
  ChildProcess first(ns.exec(guest_argv("workload=net-reflect seconds=30", {"--net", "tap=" + tap})));
  ASSERT_TRUE(first.wait_for_stdout("net_mac=", kVmTimeoutMs));
  expect_misuse(run_process(ns.exec(guest_argv("workload=hello", {"--net", "tap=" + tap})),
                            kVmTimeoutMs),
                "in use");
}

TEST_F(VirtioNetE2e, NonTapInterfaceAsTapIsMisuse) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  Interface bridge(unique_name("kvtbr"), "ip -n " + ns.name(), "type bridge");
  ASSERT_TRUE(bridge.ok());
  expect_misuse(run_process(ns.exec(guest_argv("workload=hello", {"--net", "tap=" + bridge.name()})),
                            kVmTimeoutMs),
                "not a tap");
}

TEST_F(VirtioNetE2e, NonBridgeInterfaceAsBridgeIsMisuse) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  expect_misuse(run_process(ns.exec(guest_argv("workload=hello", {"--net", "bridge=lo"})),
                            kVmTimeoutMs),
                "not a bridge");
}

TEST_F(VirtioNetE2e, MacOfAHostInterfaceIsMisuse) {
  NetNamespace ns;
  ASSERT_TRUE(ns.ok());
  Interface veth(unique_name("kvtv"), "ip -n " + ns.name(),
                 "address 52:54:00:00:00:43 type veth peer name " + unique_name("kvtv"));
  ASSERT_TRUE(veth.ok());
  expect_misuse(run_process(ns.exec(guest_argv("workload=hello",
                                               {"--net", "tap=" + unique_name("kvtt") +
                                                             ",mac=52:54:00:00:00:43"})),
                            kVmTimeoutMs),
                veth.name());
}

// --- an unprivileged user -----------------------------------------------------------------

class UnprivilegedE2e : public VirtioE2e {
 protected:
  static constexpr const char* kNobody = "65534";
  void SetUp() override {
    VirtioE2e::SetUp();
    if (IsSkipped()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
    setpriv_ = find_program({"/usr/bin/setpriv", "/bin/setpriv"});
    if (!setpriv_) GTEST_SKIP() << "setpriv (util-linux) not installed";
    // The unprivileged user must be able to read the binaries it runs.
    for (const std::string& p : {kKumo, kTestGuest}) {
      if (::access(p.c_str(), R_OK) != 0) GTEST_SKIP() << p << " unreadable";
    }
    // kumo and the guest live in the build tree; nobody must be able to reach them.
    if (run_process(as_nobody({"/usr/bin/test", "-r", kTestGuest})).exit_status != 0) {
      GTEST_SKIP() << "the unprivileged user cannot read " << kTestGuest;
    }
  }
  // argv run as uid/gid 65534 with the supplementary groups `groups` (comma-separated gids).
  std::vector<std::string> as_nobody(std::vector<std::string> argv,
                                     const std::string& groups = "") const {
    std::vector<std::string> prefix = {*setpriv_, "--reuid=" + std::string(kNobody),
                                       "--regid=" + std::string(kNobody)};
    prefix.push_back(groups.empty() ? "--clear-groups" : "--groups=" + groups);
    argv.insert(argv.begin(), prefix.begin(), prefix.end());
    return argv;
  }
  std::optional<std::string> setpriv_;
};

TEST_F(UnprivilegedE2e, NoKvmAccessIsOneClearLine) {
  if (run_process(as_nobody({"/usr/bin/test", "-w", "/dev/kvm"})).exit_status == 0) {
    GTEST_SKIP() << "/dev/kvm is writable by everyone here";
  }
  auto r = run_process(as_nobody(guest_argv("workload=hello", {"--net", "tap=kvtx0"})),
                       kVmTimeoutMs);
  // Documented in `kumo run --help`: 1 when the host cannot run the VM.
  EXPECT_EQ(r.exit_status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "/dev/kvm")) << r.err;
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
}

TEST_F(UnprivilegedE2e, NoPermissionToCreateATapIsMisuse) {
  const group* kvm = ::getgrnam("kvm");
  if (kvm == nullptr) GTEST_SKIP() << "no kvm group to grant /dev/kvm access";
  const std::string groups = std::to_string(kvm->gr_gid);
  if (run_process(as_nobody({"/usr/bin/test", "-w", "/dev/kvm"}, groups)).exit_status != 0) {
    GTEST_SKIP() << "the kvm group cannot open /dev/kvm here";
  }
  const std::string tap = unique_name("kvtt");
  expect_misuse(run_process(as_nobody(guest_argv("workload=hello", {"--net", "tap=" + tap}), groups),
                            kVmTimeoutMs),
                "CAP_NET_ADMIN");
}

TEST_F(UnprivilegedE2e, NoPermissionToCreateABridgeTapIsMisuse) {
  const group* kvm = ::getgrnam("kvm");
  if (kvm == nullptr) GTEST_SKIP() << "no kvm group to grant /dev/kvm access";
  const std::string groups = std::to_string(kvm->gr_gid);
  if (run_process(as_nobody({"/usr/bin/test", "-w", "/dev/kvm"}, groups)).exit_status != 0) {
    GTEST_SKIP() << "the kvm group cannot open /dev/kvm here";
  }
  auto r = run_process(as_nobody(guest_argv("workload=hello", {"--net", "bridge=kvtnobr"}), groups),
                       kVmTimeoutMs);
  expect_misuse(r, "CAP_NET_ADMIN");
  EXPECT_FALSE(has(r.err, "''")) << r.err;
}

}  // namespace
}  // namespace kumo::test
