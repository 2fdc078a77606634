#pragma once
// Vm: one virtual machine — KVM VM fd, guest memory, in-kernel irqchip and PIT, the device
// buses, the loaded kernel and one VcpuRunner per vCPU — and the control loop that runs it.
//
// Lifecycle: create() builds everything (no guest code runs); run() starts the vCPUs and
// serves the console, signals (SIGINT/SIGTERM) and VM events on the calling thread until
// the VM stops, then stops and joins every vCPU and returns why it stopped. After a guest
// reboot request, reset() puts the machine back to its power-on state in place (RAM zeroed,
// vCPUs, irqchip and PIT restored to their state at create(), devices reset — every PCI
// function as at power-on, see PciRoot::reset — kernel reloaded) and run() may be called
// again. Resetting in place keeps the KVM VM: tearing one down and creating the next
// concurrently can stall KVM_CREATE_PIT2 on some hosts.

#include <array>
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
#include "devices/pci/bar_mapper.h"
#include "devices/pci/pci_root.h"
#include "devices/shared_interrupt_line.h"
#include "devices/virtio/pci_transport.h"
#include "kvm/kvm_system.h"
#include "memory/guest_memory.h"
#include "vmm/console.h"
#include "vmm/irq_routing.h"
#include "vmm/kvm_pci_glue.h"
#include "vmm/vcpu_runner.h"
#include "vmm/vm_config.h"
#include "vmm/vm_exit.h"

namespace kumo::vmm {

// Blocks SIGINT, SIGTERM, SIGHUP and the vCPU kick signal in the calling thread. Call it
// first thing in a VMM process, before any thread exists: threads inherit the mask, and so
// do the tasks KVM itself adds to the process (e.g. kvm-nx-lpage-recovery, created with the
// VM), which would otherwise be picked to receive SIGTERM and swallow it. Vm::run() then
// takes the stop signals through a signalfd.
void block_vmm_signals();

class Vm final {
 public:
  // `process_start` is when kumo started (boot-timer reference).
  [[nodiscard]] static Result<std::unique_ptr<Vm>> create(
      const VmConfig& config, std::chrono::steady_clock::time_point process_start);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  [[nodiscard]] Result<VmExit> run();
  [[nodiscard]] Status reset();

  [[nodiscard]] const memory::GuestMemory& memory() const { return memory_; }

 private:
  // The state a vCPU had right after create(); reset() restores it.
  struct VcpuResetState {
    kvm_regs regs;
    kvm_sregs sregs;
    kvm_fpu fpu;
    kvm_lapic_state lapic;
    kvm_mp_state mp_state;
    kvm_vcpu_events events;
  };

  Vm(kvm::KvmSystem kvm, kvm::VmFd vm, memory::GuestMemory memory, VmConfig config);
  [[nodiscard]] Status setup_platform();
  [[nodiscard]] Status setup_devices(std::chrono::steady_clock::time_point process_start);
  [[nodiscard]] Status setup_virtio_devices();
  [[nodiscard]] Status add_virtio_device(std::unique_ptr<virtio::VirtioDevice> device);
  [[nodiscard]] Status create_vcpus();
  [[nodiscard]] Status save_reset_state();
  [[nodiscard]] Status load_kernel();
  // Records the first stop reason and wakes the control loop. Thread-safe.
  void request_exit(VmExit exit);
  void stop_vcpus();

  VmConfig config_;
  kvm::KvmSystem kvm_;
  kvm::VmFd vm_;
  memory::GuestMemory memory_;
  IrqRouting irq_routing_{vm_};
  std::vector<kvm::VcpuFd> vcpu_fds_;
  std::vector<VcpuResetState> vcpu_reset_;
  std::vector<kvm_irqchip> irqchip_reset_;
  kvm_pit_state2 pit_reset_{};
  devices::Bus pio_bus_;
  devices::Bus mmio_bus_;
  devices::pci::PciBarMapper bar_mapper_{mmio_bus_};
  std::shared_ptr<devices::Serial> serial_;
  std::shared_ptr<devices::pci::PciRoot> pci_root_;
  std::unique_ptr<Console> console_;
  KvmMsiVectorAllocator msi_allocator_{vm_, irq_routing_};
  KvmIoEventRegistry ioevents_{vm_};
  // PCI INTx: virtio functions alternate between GSIs 10 and 11, wired-OR per GSI.
  std::array<std::shared_ptr<devices::SharedInterruptLine>, 2> pci_intx_;
  std::vector<std::shared_ptr<devices::virtio::VirtioPciDevice>> virtio_devices_;
  std::vector<std::unique_ptr<VcpuRunner>> vcpus_;  // while run() runs; after vcpu_fds_

  UniqueFd exit_event_;  // eventfd: a stop reason is pending
  std::mutex exit_mutex_;
  std::optional<VmExit> exit_;
};

}  // namespace kumo::vmm
