#include "vmm/vcpu_runner.h"

#include <signal.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace kumo::vmm {
namespace {

void kick_handler(int) {}

const char* exit_reason_name(uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
    case KVM_EXIT_EXCEPTION: return "KVM_EXIT_EXCEPTION";
    case KVM_EXIT_HLT: return "KVM_EXIT_HLT";
    case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN (triple fault)";
    case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
    default: return "unhandled exit";
  }
}

}  // namespace

int VcpuRunner::kick_signal() { return SIGRTMIN; }

void VcpuRunner::install_kick_handler() {
  struct sigaction sa {};
  sa.sa_handler = kick_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  sigaction(kick_signal(), &sa, nullptr);
}

VcpuRunner::VcpuRunner(const kvm::VcpuFd& vcpu, uint32_t index, const devices::Bus& pio,
                       const devices::Bus& mmio, ExitHandler on_exit, CpuList cpus)
    : vcpu_(vcpu), index_(index), cpus_(std::move(cpus)), pio_(pio), mmio_(mmio),
      on_exit_(std::move(on_exit)) {}

VcpuRunner::~VcpuRunner() {
  request_stop();
  join();
}

void VcpuRunner::start() {
  vcpu_.set_immediate_exit(false);
  thread_ = std::thread([this] { thread_main(); });
  pthread_setname_np(thread_.native_handle(), fmt::format("kumo-vcpu{}", index_).c_str());
}

void VcpuRunner::request_stop() {
  stop_ = true;
  vcpu_.set_immediate_exit(true);
  if (thread_.joinable()) {
    pthread_kill(thread_.native_handle(), kick_signal());
  }
}

void VcpuRunner::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void VcpuRunner::thread_main() {
  (void)pin_thread(pthread_self(), cpus_);  // the CLI checked that these CPUs are allowed
  // Only this thread takes the kick signal; the process blocks it elsewhere.
  sigset_t kick;
  sigemptyset(&kick);
  sigaddset(&kick, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);

  while (!stop_.load()) {
    Status ran = vcpu_.run();
    if (!ran) {
      if (ran.error().errno_value == EINTR || ran.error().errno_value == EAGAIN) {
        continue;  // kicked: the loop condition decides
      }
      fail(fmt::format("vCPU {}: {}", index_, ran.error().to_string()));
      return;
    }
    if (!handle_exit()) {
      return;
    }
  }
}

bool VcpuRunner::handle_exit() {
  kvm_run* run = vcpu_.run_state();
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      handle_io(run);
      return true;
    case KVM_EXIT_MMIO:
      handle_mmio(run);
      return true;
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_RESET:
          on_exit_(VmExit{VmExit::Kind::kReset, 0, "guest requested a reset"});
          return false;
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          on_exit_(VmExit{VmExit::Kind::kShutdown, 0, "guest powered off"});
          return false;
        default:
          fail(fmt::format("vCPU {}: system event {} (guest crash)", index_,
                           run->system_event.type));
          return false;
      }
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string detail = fmt::format("vCPU {}: KVM internal error, suberror {}{}", index_,
                                       run->internal.suberror,
                                       run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                                           ? " (instruction emulation failed)"
                                           : "");
      for (uint32_t i = 0; i < std::min<uint32_t>(run->internal.ndata, 16); ++i) {
        detail += fmt::format(" data[{}]={:#x}", i, run->internal.data[i]);
      }
      fail(std::move(detail));
      return false;
    }
    case KVM_EXIT_FAIL_ENTRY:
      fail(fmt::format("vCPU {}: KVM_EXIT_FAIL_ENTRY, hardware reason {:#x}", index_,
                       run->fail_entry.hardware_entry_failure_reason));
      return false;
    default:
      fail(fmt::format("vCPU {}: {} (exit reason {})", index_,
                       exit_reason_name(run->exit_reason), run->exit_reason));
      return false;
  }
}

void VcpuRunner::handle_io(kvm_run* run) {
  auto* base = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  const size_t size = run->io.size;
  for (uint32_t i = 0; i < run->io.count; ++i) {
    std::span<uint8_t> data(base + i * size, size);
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      pio_.write(run->io.port, data);
    } else if (!pio_.read(run->io.port, data)) {
      std::fill(data.begin(), data.end(), uint8_t{0xff});  // nothing there: floating bus
    }
  }
}

void VcpuRunner::handle_mmio(kvm_run* run) {
  const size_t len = std::min<size_t>(run->mmio.len, sizeof(run->mmio.data));
  std::span<uint8_t> data(run->mmio.data, len);
  if (run->mmio.is_write) {
    mmio_.write(run->mmio.phys_addr, data);
  } else if (!mmio_.read(run->mmio.phys_addr, data)) {
    std::fill(data.begin(), data.end(), uint8_t{0xff});
  }
}

void VcpuRunner::fail(std::string detail) {
  fmt::print(stderr, "kumo: {}\n{}", detail, register_dump());
  on_exit_(VmExit{VmExit::Kind::kFailure, kExitStatusVmFailure, std::move(detail)});
}

std::string VcpuRunner::register_dump() const {
  auto regs = vcpu_.get_regs();
  auto sregs = vcpu_.get_sregs();
  if (!regs || !sregs) {
    return "  (registers unavailable)\n";
  }
  const kvm_regs& r = *regs;
  const kvm_sregs& s = *sregs;
  return fmt::format(
      "  rip={:#018x} rsp={:#018x} rflags={:#010x}\n"
      "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n"
      "  rsi={:#018x} rdi={:#018x} rbp={:#018x}\n"
      "  r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}\n"
      "  r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n"
      "  cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x}\n"
      "  cs={:#06x} (l={} db={} dpl={}) ss={:#06x} idt={:#x}+{:#x} gdt={:#x}+{:#x}\n",
      r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9,
      r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cr0, s.cr2, s.cr3, s.cr4, s.efer,
      s.cs.selector, s.cs.l, s.cs.db, s.cs.dpl, s.ss.selector, s.idt.base, s.idt.limit,
      s.gdt.base, s.gdt.limit);
}

}  // namespace kumo::vmm
