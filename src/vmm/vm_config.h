#pragma once
// VmConfig: everything `kumo run` was asked for, validated by the CLI before Vm::create().

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/cpu_set.h"
#include "memory/guest_memory.h"

namespace kumo::vmm {

struct ConsoleConfig {
  // kVirtio: virtio-console on stdio (the UART stays, with its output discarded).
  enum class Kind { kStdio, kFile, kSocket, kNone, kVirtio };
  Kind kind = Kind::kStdio;
  std::string path;  // kFile: output file; kSocket: unix socket path kumo listens on
};

enum class OnReboot { kRestart, kExit };

struct VmConfig {
  std::string kernel_path;
  std::optional<std::string> initrd_path;
  std::string cmdline;
  uint64_t memory_bytes = 128ull << 20;
  memory::Backend memory_backend = memory::Backend::kAnonymous;
  uint32_t vcpus = 1;
  // Host CPUs for the vCPU threads and for everything else (device workers, main thread);
  // empty: anywhere. Checked against the CPUs kumo may use.
  CpuList vcpu_cpus;
  CpuList io_cpus;
  ConsoleConfig console;
  OnReboot on_reboot = OnReboot::kExit;
  // Raw --disk / --net option strings, parsed by the devices (errors name the bad key).
  std::vector<std::string> disks;
  std::vector<std::string> nets;
  bool rng = false;
  // Print the boot-timer line (guest wrote port 0x440) on stderr.
  bool log_boot_time = true;
};

}  // namespace kumo::vmm
