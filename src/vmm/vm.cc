#include "vmm/vm.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "arch/x86_64/vcpu/cpuid.h"
#include "arch/x86_64/vcpu/vcpu_setup.h"
#include "block/open_backend.h"
#include "devices/legacy/boot_timer.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/virtio/block/block_config.h"
#include "devices/virtio/block/block_device.h"
#include "devices/virtio/console/console_device.h"
#include "devices/virtio/net/net_config.h"
#include "devices/virtio/net/net_device.h"
#include "devices/virtio/rng/rng_device.h"
#include "vmm/boot.h"
#include "vmm/kvm_irq_line.h"

namespace kumo::vmm {
namespace {

// KVM needs three pages for the real-mode TSS and one for the identity map (VMX) just below
// the 4 GiB boundary, inside the MMIO hole and clear of the IOAPIC/LAPIC.
constexpr uint64_t kTssGpa = 0xfffb'd000;
constexpr uint64_t kIdentityMapGpa = 0xfffb'c000;

}  // namespace

Vm::Vm(kvm::KvmSystem kvm, kvm::VmFd vm, memory::GuestMemory memory, VmConfig config)
    : config_(std::move(config)),
      kvm_(std::move(kvm)),
      vm_(std::move(vm)),
      memory_(std::move(memory)) {}

Vm::~Vm() {
  stop_vcpus();
  for (auto& d : virtio_devices_) {
    d->shutdown();
  }
}

Result<std::unique_ptr<Vm>> Vm::create(const VmConfig& config,
                                       std::chrono::steady_clock::time_point process_start) {
  auto kvm = KUMO_TRY(kvm::KvmSystem::open());
  const int max_vcpus = kvm.max_vcpus();
  if (config.vcpus == 0 || config.vcpus > static_cast<uint32_t>(max_vcpus)) {
    return invalid_input("--cpus {} is out of range: KVM on this host allows 1 to {}",
                         config.vcpus, max_vcpus);
  }
  auto regions = KUMO_TRY(guest_ram_regions(config.memory_bytes));
  auto memory = memory::GuestMemory::create(regions, config.memory_backend);
  if (!memory) {
    return tl::unexpected(memory.error().kind == ErrorKind::kInvalidInput
                              ? memory.error().with_context("--memory-backend")
                              : memory.error());
  }
  VmConfig effective = config;
  effective.cmdline = KUMO_TRY(kernel_cmdline_for_host(kvm, config));
  auto vm_fd = KUMO_TRY(kvm.create_vm());
  std::unique_ptr<Vm> vm(
      new Vm(std::move(kvm), std::move(vm_fd), std::move(*memory), effective));
  vm->exit_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!vm->exit_event_) {
    return host_error("eventfd for VM events");
  }
  KUMO_TRY(vm->setup_platform());
  KUMO_TRY(vm->setup_devices(process_start));
  KUMO_TRY(vm->create_vcpus());
  KUMO_TRY(vm->save_reset_state());
  KUMO_TRY(vm->load_kernel());
  return vm;
}

Status Vm::setup_platform() {
  // RAM first: once the irqchip and the PIT (with its kernel thread) exist, every memslot
  // change waits for an SRCU grace period — measured at ~7 ms per slot on a nested host,
  // against 0.04 ms before them.
  uint32_t slot = 0;
  for (const memory::GuestRegion& r : memory_.regions()) {
    KUMO_TRY(vm_.set_user_memory_region(slot++, r.start().raw(), r.size_bytes(), r.host_base()));
  }
  KUMO_TRY(vm_.set_tss_addr(kTssGpa));
  KUMO_TRY(vm_.set_identity_map_addr(kIdentityMapGpa));
  KUMO_TRY(vm_.create_irqchip());
  KUMO_TRY(irq_routing_.install());
  KUMO_TRY(vm_.create_pit2());
  return {};
}

Status Vm::setup_devices(std::chrono::steady_clock::time_point process_start) {
  console_ = KUMO_TRY(Console::open(config_.console));
  Console* console = console_.get();
  serial_ = std::make_shared<devices::Serial>(
      [console](std::span<const uint8_t> bytes) { console->write(bytes); },
      std::make_shared<KvmIrqLine>(vm_, devices::Serial::kCom1Irq));
  KUMO_TRY(pio_bus_.insert(devices::Serial::kCom1Port, 8, serial_));
  KUMO_TRY(pio_bus_.insert(
      devices::I8042::kDataPort, devices::I8042::kRangeBytes,
      std::make_shared<devices::I8042>([this] {
        request_exit(VmExit{VmExit::Kind::kReset, 0, "guest requested a reset (i8042)"});
      })));
  KUMO_TRY(pio_bus_.insert(devices::DebugExit::kPort, devices::DebugExit::kRangeBytes,
                           std::make_shared<devices::DebugExit>([this](uint8_t code) {
                             request_exit(VmExit{VmExit::Kind::kGuestExit, code,
                                                 fmt::format("guest exit code {}", code)});
                           })));
  const bool log_boot = config_.log_boot_time;
  KUMO_TRY(pio_bus_.insert(
      devices::BootTimer::kPort, devices::BootTimer::kRangeBytes,
      std::make_shared<devices::BootTimer>(process_start, [log_boot](const devices::BootTime& t) {
        if (log_boot) {
          fmt::print(stderr, "kumo: boot-timer marker {:#04x}: {} us since start, {} us CPU\n",
                     t.marker, t.wall_us, t.process_cpu_us);
        }
      })));
  pci_root_ = std::make_shared<devices::pci::PciRoot>();
  KUMO_TRY(pio_bus_.insert(devices::pci::kConfigIoBase, devices::pci::kConfigIoLen, pci_root_));
  pci_root_->set_bar_moved_handler([this](uint8_t slot, const devices::pci::BarMove& move) {
    if (Status moved = bar_mapper_.on_move(slot, move); !moved) {
      fmt::print(stderr, "kumo: PCI slot {} BAR {} moved to {:#x}: {}\n", slot, move.index,
                 move.new_address, moved.error().to_string());
    }
  });
  return setup_virtio_devices();
}

Status Vm::add_virtio_device(std::unique_ptr<virtio::VirtioDevice> device) {
  // INTx for devices whose driver does not enable MSI-X: PCI IRQs 10/11 (level, shared).
  const size_t pin = virtio_devices_.size() % pci_intx_.size();
  const auto intx_gsi = static_cast<uint8_t>(10 + pin);
  if (!pci_intx_[pin]) {
    pci_intx_[pin] =
        devices::SharedInterruptLine::create(std::make_shared<KvmIrqLine>(vm_, intx_gsi));
  }
  devices::virtio::TransportContext context{&memory_, &msi_allocator_,
                                            KUMO_TRY(pci_intx_[pin]->add_source()), &ioevents_};
  auto pci_device = KUMO_TRY(devices::virtio::VirtioPciDevice::create(std::move(device), context));
  const auto placed = KUMO_TRY(pci_root_->attach(pci_device, intx_gsi));
  bar_mapper_.add(pci_device, placed);
  virtio_devices_.push_back(std::move(pci_device));
  return {};
}

Status Vm::setup_virtio_devices() {
  for (const std::string& spec : config_.disks) {
    auto disk = devices::virtio::block::parse_disk_options(spec);
    if (!disk) {
      return tl::unexpected(disk.error());  // the parser's message starts with "--disk:"
    }
    block::OpenOptions open;
    open.lock = true;
    open.read_only = disk->read_only;
    open.cache = disk->cache == devices::virtio::block::CacheMode::kNone ? block::CacheMode::kNone
                                                                          : block::CacheMode::kWriteback;
    open.io = disk->io == devices::virtio::block::IoEngine::kSync ? block::EngineKind::kThreadPool
                                                                  : block::EngineKind::kIoUring;
    open.l2_cache_bytes = disk->l2_cache_bytes;
    open.refcount_cache_bytes = disk->refcount_cache_bytes;
    auto backend = block::open_block_backend(disk->path, open);
    if (!backend) {
      return tl::unexpected(backend.error().with_context("--disk"));
    }
    KUMO_TRY(add_virtio_device(std::make_unique<devices::virtio::block::VirtioBlock>(
        std::shared_ptr<block::BlockBackend>(std::move(*backend)), *disk)));
  }
  std::vector<std::string> macs;
  std::vector<std::string> taps;
  for (const std::string& spec : config_.nets) {
    auto net = devices::virtio::net::parse_net_options(spec);
    if (!net) {
      return tl::unexpected(net.error());  // the parser's message starts with "--net:"
    }
    if (!net->tap.empty()) {
      if (std::find(taps.begin(), taps.end(), net->tap) != taps.end()) {
        return invalid_input("--net: tap '{}' is used by two NICs of this VM", net->tap);
      }
      taps.push_back(net->tap);
    }
    const kumo::net::MacAddress mac = net->mac.value_or(kumo::net::random_mac());
    if (std::find(macs.begin(), macs.end(), mac.to_string()) != macs.end()) {
      return invalid_input("--net: MAC address {} is used by two NICs of this VM", mac.to_string());
    }
    macs.push_back(mac.to_string());
    auto backend = devices::virtio::net::open_tap_backends(*net, mac);
    if (!backend) {
      return tl::unexpected(backend.error().with_context("--net"));
    }
    KUMO_TRY(add_virtio_device(std::make_unique<devices::virtio::net::VirtioNet>(
        std::move(*backend), mac,
        devices::virtio::net::NetWorkerSettings{net->bandwidth, net->ops, net->poll_ns})));
  }
  if (config_.rng) {
    KUMO_TRY(add_virtio_device(std::make_unique<devices::virtio::rng::VirtioRng>()));
  }
  if (config_.console.kind == ConsoleConfig::Kind::kVirtio) {
    KUMO_TRY(add_virtio_device(
        std::make_unique<devices::virtio::console::VirtioConsole>(STDIN_FILENO, STDOUT_FILENO)));
  }
  return {};
}

Status Vm::create_vcpus() {
  const auto supported_cpuid = KUMO_TRY(kvm_.supported_cpuid());
  const auto msr_list = KUMO_TRY(kvm_.msr_index_list());
  const auto host = arch::x86_64::probe_host_cpu();
  VcpuRunner::install_kick_handler();
  for (uint32_t i = 0; i < config_.vcpus; ++i) {
    auto vcpu = KUMO_TRY(vm_.create_vcpu(i));
    const auto cpuid = arch::x86_64::build_guest_cpuid(supported_cpuid, host, i, config_.vcpus);
    KUMO_TRY(arch::x86_64::configure_vcpu(vcpu, cpuid, msr_list));
    vcpu_fds_.push_back(std::move(vcpu));
  }
  return {};
}

Status Vm::save_reset_state() {
  for (const kvm::VcpuFd& v : vcpu_fds_) {
    VcpuResetState st{};
    st.regs = KUMO_TRY(v.get_regs());
    st.sregs = KUMO_TRY(v.get_sregs());
    st.fpu = KUMO_TRY(v.get_fpu());
    st.lapic = KUMO_TRY(v.get_lapic());
    st.mp_state = KUMO_TRY(v.get_mp_state());
    st.events = KUMO_TRY(v.get_vcpu_events());
    vcpu_reset_.push_back(st);
  }
  for (const uint32_t chip : {uint32_t{KVM_IRQCHIP_PIC_MASTER}, uint32_t{KVM_IRQCHIP_PIC_SLAVE},
                             uint32_t{KVM_IRQCHIP_IOAPIC}}) {
    irqchip_reset_.push_back(KUMO_TRY(vm_.get_irqchip(chip)));
  }
  pit_reset_ = KUMO_TRY(vm_.get_pit2());
  return {};
}

Status Vm::load_kernel() {
  const BootPlan plan = KUMO_TRY(load_guest(memory_, config_));
  return apply_boot_entry(vcpu_fds_.front(), plan);
}

Status Vm::reset() {
  KUMO_TRY(memory_.discard_all());
  for (size_t i = 0; i < vcpu_fds_.size(); ++i) {
    const kvm::VcpuFd& v = vcpu_fds_[i];
    const VcpuResetState& st = vcpu_reset_[i];
    KUMO_TRY(v.set_sregs(st.sregs));
    KUMO_TRY(v.set_regs(st.regs));
    KUMO_TRY(v.set_fpu(st.fpu));
    KUMO_TRY(v.set_lapic(st.lapic));
    KUMO_TRY(v.set_vcpu_events(st.events));
    KUMO_TRY(v.set_mp_state(st.mp_state));
  }
  for (const kvm_irqchip& chip : irqchip_reset_) {
    KUMO_TRY(vm_.set_irqchip(chip));
  }
  KUMO_TRY(vm_.set_pit2(pit_reset_));
  serial_->reset();
  // Every PCI function at power-on: virtio devices stopped, BARs unmapped until the guest
  // enables them again, MSI-X off and its routes gone, INTx deasserted.
  pci_root_->reset();
  {
    std::lock_guard lock(exit_mutex_);
    exit_.reset();
  }
  uint64_t drained = 0;
  (void)::read(exit_event_.get(), &drained, sizeof(drained));
  return load_kernel();
}

void Vm::request_exit(VmExit exit) {
  {
    std::lock_guard lock(exit_mutex_);
    // The first reason wins, except that a stop signal overrides a pending reboot: the user
    // asked kumo to stop, and a restart would lose that request.
    const bool signal_over_reset =
        exit.kind == VmExit::Kind::kSignal && exit_ && exit_->kind == VmExit::Kind::kReset;
    if (!exit_ || signal_over_reset) {
      exit_ = std::move(exit);
    }
  }
  const uint64_t one = 1;
  (void)::write(exit_event_.get(), &one, sizeof(one));
}

void Vm::stop_vcpus() {
  for (auto& v : vcpus_) {
    v->request_stop();
  }
  vcpus_.clear();  // joins
}

void block_vmm_signals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, VcpuRunner::kick_signal());
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
}

Result<VmExit> Vm::run() {
  // SIGINT/SIGTERM/SIGHUP arrive through a signalfd on this thread (block_vmm_signals() has
  // blocked them everywhere); each vCPU thread unblocks only its kick signal.
  block_vmm_signals();
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  UniqueFd signal_fd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd) {
    return host_error("signalfd");
  }

  for (uint32_t i = 0; i < vcpu_fds_.size(); ++i) {
    vcpus_.push_back(std::make_unique<VcpuRunner>(vcpu_fds_[i], i, pio_bus_, mmio_bus_,
                                                  [this](VmExit e) { request_exit(std::move(e)); },
                                                  config_.vcpu_cpus));
    vcpus_.back()->start();
  }

  while (true) {
    std::vector<pollfd> fds = {{exit_event_.get(), POLLIN, 0}, {signal_fd.get(), POLLIN, 0}};
    for (int fd : console_->poll_fds()) {
      fds.push_back({fd, POLLIN, 0});
    }
    const int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      stop_vcpus();
      return host_error("poll in the VM control loop");
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
        const int signo = static_cast<int>(info.ssi_signo);
        request_exit(VmExit{VmExit::Kind::kSignal, 128 + signo,
                            fmt::format("stopped by SIG{}", sigabbrev_np(signo))});
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        Console::InputResult input = console_->on_readable(fds[i].fd);
        if (input.quit) {
          request_exit(VmExit{VmExit::Kind::kSignal, 0, "console escape (Ctrl-A x)"});
        }
        if (!input.to_guest.empty()) {
          serial_->enqueue_input(input.to_guest);
        }
      }
    }
    std::lock_guard lock(exit_mutex_);
    if (exit_) {
      break;
    }
  }
  stop_vcpus();
  std::lock_guard lock(exit_mutex_);
  return *exit_;
}

}  // namespace kumo::vmm
