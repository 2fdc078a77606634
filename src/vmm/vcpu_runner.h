#pragma once
// VcpuRunner: one vCPU thread running the KVM_RUN loop and dispatching exits to the PIO and
// MMIO buses. A fatal exit (triple fault, emulation failure, failed entry, an exit kumo does
// not handle) is reported once through `on_exit` with a register dump on stderr.
//
// Stopping: request_stop() sets kvm_run.immediate_exit and signals the thread (kKickSignal,
// installed without SA_RESTART), so KVM_RUN returns EINTR whether or not the thread was
// inside it. The thread is joined by the destructor (or join()). A runner runs its thread
// once; the VcpuFd belongs to the Vm and outlives it.

#include <atomic>
#include <functional>
#include <pthread.h>
#include <thread>

#include "base/cpu_set.h"
#include "devices/bus.h"
#include "kvm/vcpu_fd.h"
#include "vmm/vm_exit.h"

namespace kumo::vmm {

class VcpuRunner final {
 public:
  using ExitHandler = std::function<void(VmExit)>;
  static int kick_signal();
  // Installs the no-op handler for kick_signal(); call once per process before start().
  static void install_kick_handler();

  // `cpus`: host CPUs the vCPU thread may run on (empty: anywhere; validated by the caller).
  VcpuRunner(const kvm::VcpuFd& vcpu, uint32_t index, const devices::Bus& pio,
             const devices::Bus& mmio, ExitHandler on_exit, CpuList cpus = {});
  VcpuRunner(const VcpuRunner&) = delete;
  VcpuRunner& operator=(const VcpuRunner&) = delete;
  ~VcpuRunner();

  [[nodiscard]] const kvm::VcpuFd& vcpu() const { return vcpu_; }
  void start();
  void request_stop();
  void join();

 private:
  void thread_main();
  // Returns false when the loop must end.
  bool handle_exit();
  void handle_io(kvm_run* run);
  void handle_mmio(kvm_run* run);
  void fail(std::string detail);
  [[nodiscard]] std::string register_dump() const;

  const kvm::VcpuFd& vcpu_;  // owned by the Vm, outlives the runner
  uint32_t index_;
  CpuList cpus_;
  const devices::Bus& pio_;
  const devices::Bus& mmio_;
  ExitHandler on_exit_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace kumo::vmm
