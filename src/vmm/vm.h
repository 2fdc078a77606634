#pragma once
// Vm: one virtual machine — KVM VM fd, guest memory, in-kernel irqchip and PIT, the device
// buses, the loaded kernel and one VcpuRunner per vCPU — and the control loop that runs it.
//
// Lifecycle: create() builds everything (no guest code runs); run() starts the vCPUs and
// serves the console, signals (SIGINT/SIGTERM) and VM events on the calling thread until
// the VM stops, then stops and joins every vCPU and returns why it stopped. A Vm runs once;
// a reboot with --on-reboot restart builds a fresh Vm.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "devices/bus.h"
#include "devices/legacy/serial.h"
#include "devices/pci/pci_root.h"
#include "kvm/kvm_system.h"
#include "memory/guest_memory.h"
#include "vmm/console.h"
#include "vmm/vcpu_runner.h"
#include "vmm/vm_config.h"
#include "vmm/vm_exit.h"

namespace kumo::vmm {

class Vm final {
 public:
  // `process_start` is when kumo started (boot-timer reference).
  [[nodiscard]] static Result<std::unique_ptr<Vm>> create(
      const VmConfig& config, std::chrono::steady_clock::time_point process_start);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  [[nodiscard]] Result<VmExit> run();

  [[nodiscard]] const memory::GuestMemory& memory() const { return memory_; }

 private:
  Vm(kvm::KvmSystem kvm, kvm::VmFd vm, memory::GuestMemory memory);
  [[nodiscard]] Status setup_platform();
  [[nodiscard]] Status setup_devices(const VmConfig& config,
                                     std::chrono::steady_clock::time_point process_start);
  [[nodiscard]] Status load_and_create_vcpus(const VmConfig& config);
  // Records the first stop reason and wakes the control loop. Thread-safe.
  void request_exit(VmExit exit);
  void stop_vcpus();

  kvm::KvmSystem kvm_;
  kvm::VmFd vm_;
  memory::GuestMemory memory_;
  devices::Bus pio_bus_;
  devices::Bus mmio_bus_;
  std::shared_ptr<devices::Serial> serial_;
  std::shared_ptr<devices::pci::PciRoot> pci_root_;
  std::unique_ptr<Console> console_;
  std::vector<std::unique_ptr<VcpuRunner>> vcpus_;

  UniqueFd exit_event_;  // eventfd: a stop reason is pending
  std::mutex exit_mutex_;
  std::optional<VmExit> exit_;
};

}  // namespace kumo::vmm
