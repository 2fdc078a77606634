// libFuzzer target for everything a guest can write to the PCI side of a virtio device: PCI
// configuration mechanism #1 (ports 0xcf8/0xcfc through the PIO Bus and PciRoot), the
// device's configuration space (BARs and their sizing and moves, command register,
// capability list, the virtio PCI_CFG window, MSI-X Message Control) and BAR 0 through the
// MMIO Bus as Vm maps it with PciBarMapper (common configuration, ISR, device
// configuration, notifications, MSI-X table and PBA), plus guest RAM, so a driver the
// fuzzer plays can bring a virtio-blk device (in-memory back end) to DRIVER_OK with rings
// anywhere and kick it: descriptor and request processing on fuzzer-controlled memory is
// reached too. A platform reset (PciRoot::reset, the guest rebooting) can come between any
// two operations.
//
// The input is a flags byte (bit 0 MSI-X, 1 INTx, 2 ioeventfds, 3 read-only disk, 4 a
// second device whose BAR ours can be moved onto, 5 a back end that fails every request)
// followed by operations, each an opcode byte and its operands; widths include 3/5/6/7 and
// offsets are unaligned at will. Some operations are shortcuts a real driver would take
// (negotiate and set up queue 0, write a descriptor, publish a chain, build a whole block
// request, size a BAR), so the fuzzer does not have to discover every step byte by byte.
// PCI_TRANSPORT_FUZZ_TRACE=1 prints the accesses an input makes.
//
// Deterministic and thread-free: EventLoop runs in manual mode, so the device's worker runs
// on this thread when the harness pumps it after every operation; every object (transport,
// device, back end, buses, fds) is created and destroyed per input. Only guest RAM is kept
// (and zeroed).
//
// Invariants (__builtin_trap on violation): reads write no byte beyond the access width;
// functions that do not exist, and direct config accesses that break the PciDevice
// contract, read as all-ones; a device whose status lacks DRIVER_OK has no worker; a status
// write that clears a bit (other than a write of 0) stops the device and sets NEEDS_RESET;
// after a write of 0 to device_status (directly or through PCI_CFG) the device is reset
// (status, features, queues, vectors, ISR, INTx line, worker stopped); MSI vectors never
// fire while masked or disabled; INTx is never asserted while Interrupt Disable is set or
// MSI-X is enabled, and Status.Interrupt Status matches it; after a platform reset the
// function is at power-on (Command 0, BAR 0 unmapped where attach() put it, Interrupt Line
// as attach() wrote it, MSI-X disabled with every entry zero and masked and every vector
// masked, PCI_CFG fields 0, no ioeventfds, INTx deasserted, device reset); notification
// ioeventfds follow BAR 0; read-only configuration bytes (identity, capability list) never
// change; BAR sizing reads back the size mask, and sizing with decoding off (as Linux does)
// leaves the BAR mapped as it was; a mapped BAR is where the guest last put it and reaches
// its device, a BAR at 0 or with Memory Space Enable clear is unmapped and has no
// ioeventfds, a move is refused only over the other device's BAR; a kick finishes in
// bounded work; every worker is gone when the input ends.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "base/event_loop.h"
#include "devices/bus.h"
#include "devices/pci/bar_mapper.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/block/block_device.h"
#include "devices/virtio/block/block_request.h"
#include "devices/virtio/block/memory_backend.h"
#include "devices/virtio/pci_transport.h"
#include "virtio/virtio_spec.h"

namespace {

namespace pci = kumo::devices::pci;
namespace vio = kumo::virtio;
namespace blk = kumo::devices::virtio::block;
using kumo::Result;
using kumo::Status;
using kumo::devices::Bus;
using kumo::devices::InterruptLine;
using kumo::devices::virtio::kBarBytes;
using kumo::devices::virtio::kIsrOffset;
using kumo::devices::virtio::kMsixPbaOffset;
using kumo::devices::virtio::kMsixTableOffset;
using kumo::devices::virtio::kNotifyOffset;
using kumo::devices::virtio::TransportContext;
using kumo::devices::virtio::VirtioPciDevice;
using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

#define FUZZ_CHECK(cond)   \
  do {                     \
    if (!(cond)) {         \
      __builtin_trap();    \
    }                      \
  } while (0)

// PCI_TRANSPORT_FUZZ_TRACE=1 prints every guest access (to read a crash input).
bool g_trace = false;
#define TRACE(...)                      \
  do {                                  \
    if (g_trace) {                      \
      std::fprintf(stderr, __VA_ARGS__); \
      std::fputc('\n', stderr);         \
    }                                   \
  } while (0)

// Guest RAM: 64 KiB at 0 and 4 KiB at 128 KiB (the hole between them is not RAM).
constexpr uint64_t kRamLowBytes = 0x10000;
constexpr uint64_t kRamHighBase = 0x20000;
constexpr uint64_t kRamHighBytes = 0x1000;
constexpr uint64_t kDiskBytes = 64 * 1024;
// Where the request shortcut puts its header, data, status and indirect table.
constexpr uint64_t kReqHeader = 0xc000;
constexpr uint64_t kReqStatus = 0xc010;
constexpr uint64_t kReqIndirect = 0xc100;
constexpr uint64_t kReqData = 0xd000;
constexpr size_t kMaxHandlersPerOp = 1 << 16;

GuestMemory& guest_memory() {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), kRamLowBytes},
                                  {GuestAddress(kRamHighBase), kRamHighBytes}});
    if (!m) __builtin_trap();
    return new GuestMemory(std::move(*m));
  }();
  return *mem;
}

// Reads operands; past the end everything is zero.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool empty() const { return pos_ >= size_; }
  uint64_t take(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n && pos_ < size_; ++i) {
      v |= uint64_t{data_[pos_++]} << (8 * i);
    }
    return v;
  }
  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint16_t u16() { return static_cast<uint16_t>(take(2)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  // An access width: mostly 1/2/4/8, sometimes the odd ones a guest can still produce.
  size_t width() {
    static constexpr std::array<size_t, 16> kWidths = {1, 2, 4, 8, 1, 2, 4, 8,
                                                       1, 2, 4, 8, 3, 5, 6, 7};
    return kWidths[u8() & 15];
  }
  std::span<const uint8_t> bytes(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::span<const uint8_t> s(data_ + pos_, n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// MSI vector that checks the MsiVector contract: trigger() only while unmasked.
class CheckedMsiVector final : public pci::MsiVector {
 public:
  Status trigger() override {
    FUZZ_CHECK(!masked_);
    return {};
  }
  Status update(const pci::MsiMessage&, bool masked) override {
    masked_ = masked;
    return {};
  }
  [[nodiscard]] bool masked() const { return masked_; }

 private:
  bool masked_ = true;
};

class CheckedMsiAllocator final : public pci::MsiVectorAllocator {
 public:
  Result<std::unique_ptr<pci::MsiVector>> allocate() override {
    auto vector = std::make_unique<CheckedMsiVector>();
    vectors.push_back(vector.get());
    return std::unique_ptr<pci::MsiVector>(std::move(vector));
  }
  std::vector<const CheckedMsiVector*> vectors;  // owned by the device
};

class Line final : public InterruptLine {
 public:
  Status set_level(bool asserted) override {
    level = asserted;
    return {};
  }
  Status pulse() override { return {}; }
  bool level = false;
};

// Behaves like KVM_IOEVENTFD: one registration per address, removing a missing one fails.
class IoEvents final : public pci::IoEventRegistry {
 public:
  Status add(uint64_t gpa, uint32_t, int fd) override {
    if (!events.emplace(gpa, fd).second) {
      return kumo::host_error_errno(EEXIST, "ioeventfd at {:#x} exists", gpa);
    }
    return {};
  }
  Status remove(uint64_t gpa, uint32_t, int fd) override {
    auto it = events.find(gpa);
    if (it == events.end() || it->second != fd) {
      return kumo::host_error_errno(ENOENT, "no ioeventfd at {:#x}", gpa);
    }
    events.erase(it);
    return {};
  }
  std::map<uint64_t, int> events;
};

// A read whose buffer has guard bytes on both sides: the device must write exactly `len`.
template <typename F>
uint64_t guarded_read(size_t len, F&& read) {
  std::array<uint8_t, 8 + 8 + 8> buf;
  buf.fill(0xa5);
  read(std::span<uint8_t>(buf.data() + 8, len));
  for (size_t i = 0; i < buf.size(); ++i) {
    if (i < 8 || i >= 8 + len) FUZZ_CHECK(buf[i] == 0xa5);
  }
  uint64_t v = 0;
  std::memcpy(&v, buf.data() + 8, len);
  return v;
}

std::span<const uint8_t> le_bytes(const uint64_t& value, size_t len) {
  return {reinterpret_cast<const uint8_t*>(&value), len};
}

class Harness {
 public:
  explicit Harness(uint8_t flags)
      : msix_(flags & 1), intx_(flags & 2), ioeventfds_(flags & 4),
        backend_(std::make_shared<blk::testing::MemoryBackend>(kDiskBytes)),
        line_(std::make_shared<Line>()),
        root_(std::make_shared<pci::PciRoot>()) {
    blk::DiskOptions options;
    options.path = "fuzz";
    options.read_only = (flags & 8) != 0;
    options.serial = "fuzz-disk";
    if (flags & 32) backend_->fail_errno = EIO;  // every request completes with an error
    auto device = std::make_unique<blk::VirtioBlock>(backend_, options);
    num_queues_ = device->num_queues();
    max_queue_size_ = device->max_queue_size();
    TransportContext context{&guest_memory(), msix_ ? &msi_ : nullptr,
                             intx_ ? std::shared_ptr<InterruptLine>(line_) : nullptr,
                             ioeventfds_ ? &ioevents_ : nullptr};
    auto created = VirtioPciDevice::create(std::move(device), context);
    FUZZ_CHECK(created.has_value());
    dev_ = *created;
    FUZZ_CHECK(pio_.insert(pci::kConfigIoBase, pci::kConfigIoLen, root_).has_value());
    auto attached = root_->attach(dev_, 10);
    FUZZ_CHECK(attached.has_value() && attached->bars.size() == 1);
    slot_ = attached->slot;
    bar0_placement_ = attached->bars[0].address;
    mapper_.add(dev_, *attached);
    if (flags & 16) {  // a second device, whose BAR the guest can move ours onto (or back)
      auto other = VirtioPciDevice::create(
          std::make_unique<blk::VirtioBlock>(
              std::make_shared<blk::testing::MemoryBackend>(4096), options),
          TransportContext{&guest_memory(), nullptr, nullptr, nullptr});
      FUZZ_CHECK(other.has_value());
      other_ = *other;
      auto placed = root_->attach(other_);
      FUZZ_CHECK(placed.has_value());
      other_slot_ = placed->slot;
      mapper_.add(other_, *placed);
    }
    // As Vm does (src/vmm/vm.cc): the mapper follows the guest's BAR moves.
    root_->set_bar_moved_handler([this](uint8_t slot, const pci::BarMove& move) {
      FUZZ_CHECK((slot == slot_ || slot == other_slot_) && move.index == 0);
      const Status moved = mapper_.on_move(slot, move);
      TRACE("  slot %u BAR %u moved %#lx -> %#lx: %s", slot, move.index, move.old_address,
            move.new_address, moved ? "mapped" : moved.error().to_string().c_str());
      const auto at = mapper_.mapped_address(slot, 0);
      if (moved) {
        FUZZ_CHECK(at == (move.new_address != 0 ? std::optional(move.new_address) : std::nullopt));
      } else {
        // Refused only when the new range overlaps the other device's BAR.
        FUZZ_CHECK(!at.has_value());
        const auto other = mapper_.mapped_address(slot == slot_ ? other_slot_ : slot_, 0);
        FUZZ_CHECK(other && move.new_address < *other + kBarBytes &&
                   *other < move.new_address + kBarBytes);
      }
    });
    enable_other();
    find_capabilities();
    snapshot_read_only();
  }

  ~Harness() {
    dev_->shutdown();
    if (other_) other_->shutdown();
    FUZZ_CHECK(kumo::EventLoop::manual_loops_for_testing() == 0);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void run(Input& in) {
    for (size_t ops = 0; !in.empty() && ops < 512; ++ops) {
      step(in);
      FUZZ_CHECK(kumo::EventLoop::run_manual_loops_for_testing(kMaxHandlersPerOp));
      check_invariants();
    }
    check_read_only();
  }

 private:
  // --- guest accesses ------------------------------------------------------------------
  void pio_write(uint64_t port, uint64_t value, size_t len) {
    TRACE("  out %#lx <- %#lx (%zu)", port, value, len);
    (void)pio_.write(port, le_bytes(value, len));
  }
  uint64_t pio_read(uint64_t port, size_t len) {
    return guarded_read(len, [&](std::span<uint8_t> d) {
      if (!pio_.read(port, d)) std::fill(d.begin(), d.end(), uint8_t{0xff});
    });
  }
  void mmio_write(uint64_t addr, uint64_t value, size_t len) {
    TRACE("  mmio %#lx <- %#lx (%zu)", addr, value, len);
    (void)mmio_.write(addr, le_bytes(value, len));
  }
  uint64_t mmio_read(uint64_t addr, size_t len) {
    return guarded_read(len, [&](std::span<uint8_t> d) {
      if (!mmio_.read(addr, d)) std::fill(d.begin(), d.end(), uint8_t{0xff});
    });
  }
  // BAR 0 accesses go through the MMIO bus where the BAR is mapped; while it is unmapped
  // (moved to 0, or Memory Space Enable clear), straight to the device, so the fuzzer can
  // still drive it.
  void bar_write(uint64_t offset, uint64_t value, size_t len) {
    if (auto base = mapper_.mapped_address(slot_, 0)) {
      FUZZ_CHECK(offset + len > kBarBytes || mmio_.write(*base + offset, le_bytes(value, len)));
    } else {
      TRACE("  unmapped bar0 +%#lx <- %#lx (%zu)", offset, value, len);
      dev_->bar_write(0, offset, le_bytes(value, len));
    }
  }
  uint64_t bar_read(uint64_t offset, size_t len) {
    if (auto base = mapper_.mapped_address(slot_, 0)) {
      return mmio_read(*base + offset, len);
    }
    return guarded_read(len, [&](std::span<uint8_t> d) { dev_->bar_read(0, offset, d); });
  }
  // Configuration space straight from the device (no side effects outside PCI_CFG data).
  uint32_t cfg(uint64_t offset, size_t len) {
    return static_cast<uint32_t>(
        guarded_read(len, [&](std::span<uint8_t> d) { dev_->config_read(offset, d); }));
  }
  void cfg_write(uint64_t offset, uint64_t value, size_t len) {
    TRACE("  cfg %#lx <- %#lx (%zu)", offset, value, len);
    root_->config_write(slot_, 0, offset, le_bytes(value, len));
  }

  void find_capabilities() {
    uint32_t cap = cfg(pci::kRegCapabilitiesPointer, 1);
    for (int hops = 0; cap != 0 && hops < 64; ++hops) {
      const uint32_t id = cfg(cap, 1);
      if (id == pci::kCapIdMsix) msix_cap_ = static_cast<uint8_t>(cap);
      if (id == pci::kCapIdVendor && cfg(cap + 3, 1) == 5) pci_cfg_cap_ = static_cast<uint8_t>(cap);
      cap = cfg(cap + 1, 1);
    }
    FUZZ_CHECK(cap == 0);
    FUZZ_CHECK(pci_cfg_cap_ != 0);
    FUZZ_CHECK(msix_ == (msix_cap_ != 0));
  }

  // Bytes the guest may change: command, status (write-1-to-clear), cache line size and
  // latency timer, BAR 0, interrupt line, PCI_CFG's bar/offset/length/data, MSI-X control.
  bool guest_writable(size_t offset) const {
    if (offset == 0x04 || offset == 0x05 || offset == 0x06 || offset == 0x07 ||
        offset == 0x0c || offset == 0x0d || (offset >= 0x10 && offset < 0x14) ||
        offset == pci::kRegInterruptLine) {
      return true;
    }
    if (offset == pci_cfg_cap_ + 4u || (offset >= pci_cfg_cap_ + 8u && offset < pci_cfg_cap_ + 20u)) {
      return true;
    }
    return msix_cap_ != 0 && offset == msix_cap_ + 3u;
  }
  void snapshot_read_only() {
    for (size_t i = 0; i < pci::kConfigSpaceBytes; ++i) read_only_[i] = static_cast<uint8_t>(cfg(i, 1));
  }
  void check_read_only() {
    for (size_t i = 0; i < pci::kConfigSpaceBytes; ++i) {
      if (!guest_writable(i)) FUZZ_CHECK(cfg(i, 1) == read_only_[i]);
    }
    FUZZ_CHECK((cfg(0x10, 4) & 0x7fff) == 0);  // 32-bit, non-prefetchable, 32 KiB aligned
    // The host bridge stays what it was.
    FUZZ_CHECK(root_->config_read(0, 0, 0, 4) == 0x0d57'8086U);
  }

  bool msix_enabled() { return msix_cap_ != 0 && (cfg(msix_cap_ + 3u, 1) & 0x80) != 0; }

  void check_invariants() {
    const uint8_t status = dev_->device_status();
    const size_t loops = kumo::EventLoop::manual_loops_for_testing();
    FUZZ_CHECK(loops <= 1);
    if ((status & vio::kStatusDriverOk) == 0) FUZZ_CHECK(loops == 0);
    const bool interrupt_status = (cfg(pci::kRegStatus, 1) & pci::kStatusInterrupt) != 0;
    const bool interrupt_disable =
        (cfg(pci::kRegCommand, 2) & pci::kCommandInterruptDisable) != 0;
    if (line_->level) {
      FUZZ_CHECK(!interrupt_disable);
      FUZZ_CHECK(!msix_enabled());
    }
    // Interrupt Status shows a pending INTx; the pin follows it unless Interrupt Disable.
    if (!interrupt_disable) FUZZ_CHECK(interrupt_status == line_->level);
    if (!intx_ || msix_enabled()) FUZZ_CHECK(!interrupt_status);
    if (ioeventfds_) {
      const uint64_t bar = cfg(0x10, 4) & ~uint64_t{0xf};
      if (bar == 0 || !memory_space_enabled(slot_)) {
        FUZZ_CHECK(ioevents_.events.empty());
      } else if (!mid_probe(bar)) {
        FUZZ_CHECK(ioevents_.events.size() == num_queues_);
        for (uint16_t q = 0; q < num_queues_; ++q) {
          FUZZ_CHECK(ioevents_.events.count(bar + kNotifyOffset + 4ULL * q) == 1);
        }
      }
    }
    check_bar_mapping(slot_);
    if (other_) check_bar_mapping(other_slot_);
  }

  // The other device decodes from the start (and again after a reset), so ours can be
  // moved onto it.
  void enable_other() {
    if (!other_) return;
    root_->config_write(other_slot_, 0, pci::kRegCommand, le_bytes(pci::kCommandMemorySpace, 2));
    FUZZ_CHECK(mapper_.mapped_address(other_slot_, 0).has_value());
  }

  static bool mid_probe(uint64_t bar) { return bar == (~(kBarBytes - 1) & 0xffff'ffffULL); }
  bool memory_space_enabled(uint8_t slot) {
    return (root_->config_read(slot, 0, pci::kRegCommand, 2) & pci::kCommandMemorySpace) != 0;
  }

  // A mapped BAR 0 is where the guest last put it and reaches its device; at 0 or while
  // Memory Space Enable is clear it is unmapped.
  void check_bar_mapping(uint8_t slot) {
    const uint64_t bar = root_->config_read(slot, 0, 0x10, 4) & ~uint64_t{0xf};
    const auto mapped = mapper_.mapped_address(slot, 0);
    if (bar == 0 || !memory_space_enabled(slot)) FUZZ_CHECK(!mapped.has_value());
    if (mapped) {
      if (!mid_probe(bar)) FUZZ_CHECK(*mapped == bar);
      FUZZ_CHECK(mmio_read(*mapped + 0x12, 2) == 1);  // num_queues
    }
  }

  void check_reset() {
    FUZZ_CHECK(dev_->device_status() == 0);
    FUZZ_CHECK(kumo::EventLoop::manual_loops_for_testing() == 0);
    FUZZ_CHECK(bar_read(0x14, 1) == 0);
    FUZZ_CHECK(bar_read(0x10, 2) == pci::kMsixNoVector);
    for (uint32_t select : {0U, 1U}) {
      bar_write(0x08, select, 4);
      FUZZ_CHECK(bar_read(0x0c, 4) == 0);
    }
    for (uint16_t q = 0; q < num_queues_; ++q) {
      bar_write(0x16, q, 2);
      FUZZ_CHECK(bar_read(0x18, 2) == max_queue_size_);
      FUZZ_CHECK(bar_read(0x1a, 2) == pci::kMsixNoVector);
      FUZZ_CHECK(bar_read(0x1c, 2) == 0);
      FUZZ_CHECK(bar_read(0x20, 8) == 0 && bar_read(0x28, 8) == 0 && bar_read(0x30, 8) == 0);
    }
    bar_write(0x16, 0, 2);
    FUZZ_CHECK(bar_read(kIsrOffset, 1) == 0);
    FUZZ_CHECK(!line_->level);
  }

  // After PciRoot::reset: the function as at power-on, as firmware left it.
  void check_power_on() {
    check_reset();
    FUZZ_CHECK(cfg(pci::kRegCommand, 2) == 0);
    FUZZ_CHECK(cfg(0x10, 4) == bar0_placement_);
    FUZZ_CHECK(cfg(pci::kRegInterruptLine, 1) == 10);
    FUZZ_CHECK(cfg(0x0c, 2) == 0);
    FUZZ_CHECK(!mapper_.mapped_address(slot_, 0).has_value());
    if (other_) FUZZ_CHECK(!mapper_.mapped_address(other_slot_, 0).has_value());
    FUZZ_CHECK(ioevents_.events.empty());
    FUZZ_CHECK((cfg(pci::kRegStatus, 1) & pci::kStatusInterrupt) == 0);
    FUZZ_CHECK(cfg(pci_cfg_cap_ + 4u, 4) == 0 && cfg(pci_cfg_cap_ + 8u, 4) == 0 &&
               cfg(pci_cfg_cap_ + 12u, 4) == 0);
    if (msix_cap_ != 0) {
      FUZZ_CHECK((cfg(msix_cap_ + 3u, 1) & 0xc0) == 0);
      for (uint16_t v = 0; v < msi_.vectors.size(); ++v) {
        FUZZ_CHECK(msi_.vectors[v]->masked());
        FUZZ_CHECK(bar_read(kMsixTableOffset + 16ULL * v, 8) == 0);
        FUZZ_CHECK(bar_read(kMsixTableOffset + 16ULL * v + 8, 8) == 0x1'0000'0000ULL);
      }
      FUZZ_CHECK(bar_read(kMsixPbaOffset, 8) == 0);
    }
  }

  // --- operations ----------------------------------------------------------------------
  void step(Input& in) {
    const int op = in.u8() % 20;
    TRACE("op %d", op);
    switch (op) {
      case 0: {  // raw port write in 0xcf8..0xcff
        const uint64_t port = pci::kConfigIoBase + (in.u8() & 7);
        const size_t len = in.width();
        pio_write(port, in.u64(), len);
        break;
      }
      case 1: {  // raw port read
        const uint64_t port = pci::kConfigIoBase + (in.u8() & 7);
        (void)pio_read(port, in.width());
        break;
      }
      case 2: {  // one configuration cycle through mechanism #1
        const uint8_t target = in.u8();
        const uint8_t reg = in.u8();
        const uint8_t kind = in.u8();
        const size_t len = in.width();
        // bit 7: enable; bits 0-4: slot (bit 5 forces the virtio slot); bit 6: function 1;
        // the bus is non-zero when kind bit 7 is set.
        const uint32_t slot = (target & 0x20) ? slot_ : (target & 0x1f);
        const uint32_t function = (target & 0x40) ? 1 : 0;
        const uint32_t bus = (kind & 0x80) ? 1 : 0;
        const bool enabled = (target & 0x80) == 0;  // mostly enabled
        const uint32_t address = (enabled ? 0x8000'0000U : 0) | (bus << 16) | (slot << 11) |
                                 (function << 8) | (reg & 0xfcU) | (kind & 0x40 ? 3U : 0U);
        pio_write(pci::kConfigIoBase, address, 4);
        const uint64_t port = pci::kConfigIoBase + 4 + (reg & 3);
        if (kind & 1) {
          pio_write(port, in.u64(), len);
        } else {
          const uint64_t v = pio_read(port, len);
          const bool absent = !enabled || bus != 0 || function != 0 ||
                              (slot != 0 && slot != slot_ && slot != other_slot_) ||
                              (reg & 3) + len > 4;
          if (absent) FUZZ_CHECK(v == (len == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * len)) - 1));
        }
        break;
      }
      case 3: {  // direct configuration access (PciRoot::config_read/config_write)
        const uint8_t slot = in.u8() & 1 ? slot_ : static_cast<uint8_t>(in.u8() & 0x1f);
        const uint64_t offset = in.u16() & 0x1ff;
        const size_t len = in.width();
        if (in.u8() & 1) {
          const uint64_t value = in.u64();
          TRACE("  root cfg slot %u %#lx <- %#lx (%zu)", slot, offset, value, len);
          root_->config_write(slot, 0, offset, le_bytes(value, len));
        } else {
          const uint32_t v = root_->config_read(slot, 0, offset, len);
          const size_t n = std::min<size_t>(len, 4);
          const bool valid = (n == 1 || n == 2 || n == 4) && offset < 256 && offset % 4 + n <= 4;
          if (!valid) FUZZ_CHECK(v == (n == 4 ? 0xffff'ffffU : (1U << (8 * n)) - 1));
        }
        break;
      }
      case 4: {  // BAR 0 write
        const uint64_t offset = in.u16();
        const size_t len = in.width();
        bar_write(offset, in.u64(), len);
        break;
      }
      case 5: {  // BAR 0 read
        const uint64_t offset = in.u16();
        (void)bar_read(offset, in.width());
        break;
      }
      case 6: {  // MMIO anywhere in 32-bit space
        const uint64_t addr = in.u32();
        const size_t len = in.width();
        if (in.u8() & 1) {
          mmio_write(addr, in.u64(), len);
        } else {
          (void)mmio_read(addr, len);
        }
        break;
      }
      case 7: {  // guest RAM write
        const uint64_t gpa = in.u32() % (kRamHighBase + kRamHighBytes + 0x100);
        const auto bytes = in.bytes(in.u8() + 1u);
        (void)guest_memory().write(GuestAddress(gpa), bytes);
        break;
      }
      case 8:
        setup_driver(in);
        break;
      case 9: {  // kick
        const uint16_t q = in.u8() & 3;
        bar_write(kNotifyOffset + 4ULL * q, q, in.u8() & 1 ? 4 : 2);
        break;
      }
      case 10:
        write_descriptor(in.u16(), in.u64(), in.u32(), in.u16(), in.u16());
        break;
      case 11:
        publish(in.u16());
        break;
      case 12: {  // reset through device_status, directly or through the PCI_CFG window
        if (in.u8() & 1) {
          pci_cfg_access(0x14, 1, true, 0);
        } else {
          bar_write(0x14, 0, 1);
        }
        check_reset();
        break;
      }
      case 13: {  // a BAR 0 access through the PCI_CFG capability window
        const uint32_t offset = in.u16();
        const uint32_t length = in.u8() % 9;
        const uint8_t kind = in.u8();
        pci_cfg_access(offset, length, kind & 1, in.u32(), kind & 2 ? 2 : 4,
                       static_cast<uint8_t>(kind >> 4));
        break;
      }
      case 14: {  // MSI-X Message Control, and entries
        const uint8_t control = in.u8();
        if (msix_cap_ != 0) cfg_write(msix_cap_ + 2u, uint64_t{control & 0xc0u} << 8, 2);
        const uint8_t unmask = in.u8();
        for (uint16_t v = 0; v < 3; ++v) {
          if (unmask & (1u << v)) {
            bar_write(kMsixTableOffset + 16ULL * v, 0xfee0'0000, 4);
            bar_write(kMsixTableOffset + 16ULL * v + 8, 0x40u + v, 4);
            bar_write(kMsixTableOffset + 16ULL * v + 12, 0, 4);
          } else if (unmask & (8u << v)) {
            bar_write(kMsixTableOffset + 16ULL * v + 12, 1, 4);
          }
        }
        break;
      }
      case 15:
        block_request(in);
        break;
      case 16: {  // command register and BAR 0 (sizing, moving), as an OS does them
        const uint8_t kind = in.u8();
        if (kind & 1) cfg_write(pci::kRegCommand, in.u16(), 2);
        if (kind & 2) {  // sizing; with kind & 16 as Linux does it, with decoding off
          const bool linux_style = (kind & 16) != 0;
          const uint32_t command = cfg(pci::kRegCommand, 2);
          const uint32_t orig = cfg(0x10, 4);
          const auto mapped = mapper_.mapped_address(slot_, 0);
          if (linux_style) {
            cfg_write(pci::kRegCommand,
                      command & ~uint32_t{pci::kCommandMemorySpace | pci::kCommandIoSpace}, 2);
          }
          cfg_write(0x10, 0xffff'ffff, 4);
          const uint32_t size_mask = cfg(0x10, 4);
          FUZZ_CHECK((size_mask & ~uint32_t{0xf}) == ~(static_cast<uint32_t>(kBarBytes) - 1));
          const bool was_probed = mid_probe(orig & ~uint32_t{0xf});
          cfg_write(0x10, was_probed ? mapped.value_or(0) : orig, 4);
          if (linux_style) {
            cfg_write(pci::kRegCommand, command, 2);
            if (!was_probed) FUZZ_CHECK(mapper_.mapped_address(slot_, 0) == mapped);
          }
        }
        if (kind & 4) {
          const uint32_t page = in.u16();
          cfg_write(0x10, kind & 8 ? uint64_t{page} << 15 : uint64_t{page} << 16, 4);
        }
        break;
      }
      case 17: {  // ISR read
        (void)bar_read(kIsrOffset, 1);
        break;
      }
      case 18: {  // platform reset (the guest rebooted), then the OS enables the other device
        TRACE("  reset");
        root_->reset();
        check_power_on();
        enable_other();
        break;
      }
      case 19: {  // the driver clears status bits without resetting (§2.1.1 forbids it)
        const auto before = static_cast<uint8_t>(bar_read(0x14, 1) & ~vio::kStatusNeedsReset);
        const auto status = static_cast<uint8_t>(before & ~in.u8());
        if (status == 0 || status == before) break;
        bar_write(0x14, status, 1);
        FUZZ_CHECK((dev_->device_status() & vio::kStatusNeedsReset) != 0);
        FUZZ_CHECK(kumo::EventLoop::manual_loops_for_testing() == 0);
        break;
      }
      default:
        break;
    }
  }

  // §4.1.4.8: bar, offset and length through config writes, then the data field.
  void pci_cfg_access(uint32_t offset, uint32_t length, bool write, uint32_t value,
                      size_t data_len = 4, uint8_t bar = 0) {
    const uint32_t cap = pci_cfg_cap_;
    cfg_write(cap + 4u, bar & 7, 1);
    cfg_write(cap + 8u, offset, 4);
    cfg_write(cap + 12u, length, 4);
    if (write) {
      cfg_write(cap + 16u, value, data_len);
    } else {
      // Through port I/O, as a guest would.
      pio_write(pci::kConfigIoBase, 0x8000'0000U | (uint32_t{slot_} << 11) | (cap + 16u), 4);
      (void)pio_read(pci::kConfigIoBase + 4, data_len);
    }
  }

  void setup_driver(Input& in) {
    const uint8_t kind = in.u8();
    uint64_t features = in.u64();
    if (kind & 1) {
      features |= vio::feature_bit(vio::kFeatureVersion1);
      features &= ~(uint64_t{0xffff'ffff'fffe} << 32);  // no transport bits beyond VERSION_1
    }
    const uint16_t size = (kind & 2) ? in.u16() : static_cast<uint16_t>(1U << (in.u8() % 9));
    const uint16_t vector = in.u8() & 3;
    uint64_t desc = in.u16(), avail = in.u16(), used = in.u16();
    if (kind & 4) {
      desc = in.u64();
      avail = in.u64();
      used = in.u64();
    }
    bar_write(0x14, 0, 1);
    bar_write(0x14, vio::kStatusAcknowledge, 1);
    bar_write(0x14, vio::kStatusAcknowledge | vio::kStatusDriver, 1);
    bar_write(0x08, 0, 4);
    bar_write(0x0c, static_cast<uint32_t>(features), 4);
    bar_write(0x08, 1, 4);
    bar_write(0x0c, static_cast<uint32_t>(features >> 32), 4);
    bar_write(0x14, vio::kStatusAcknowledge | vio::kStatusDriver | vio::kStatusFeaturesOk, 1);
    bar_write(0x10, 0, 2);
    bar_write(0x16, 0, 2);
    bar_write(0x18, size, 2);
    bar_write(0x1a, vector, 2);
    if (kind & 8) {  // addresses as dword halves
      for (uint64_t off : {0x20ULL, 0x28ULL, 0x30ULL}) {
        const uint64_t v = off == 0x20 ? desc : off == 0x28 ? avail : used;
        bar_write(off, static_cast<uint32_t>(v), 4);
        bar_write(off + 4, v >> 32, 4);
      }
    } else {
      bar_write(0x20, desc, 8);
      bar_write(0x28, avail, 8);
      bar_write(0x30, used, 8);
    }
    if ((kind & 32) == 0) bar_write(0x1c, 1, 2);  // else DRIVER_OK without the request queue
    if (kind & 16) {
      bar_write(0x14, vio::kStatusAcknowledge | vio::kStatusDriver | vio::kStatusFeaturesOk |
                          vio::kStatusDriverOk, 1);
    }
    queue_ = {desc, avail, used, size};
    avail_idx_ = 0;
    next_desc_ = 0;
  }

  void write_descriptor(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                        uint16_t next) {
    if (queue_.size == 0) return;
    const vio::Descriptor d{addr, len, flags, next};
    const uint64_t at = queue_.desc + 16ULL * (index % queue_.size);
    (void)guest_memory().write_obj(GuestAddress(at), d);
  }

  void publish(uint16_t head) {
    if (queue_.size == 0) return;
    const uint64_t slot = queue_.avail + 4 + 2ULL * (avail_idx_ % queue_.size);
    (void)guest_memory().write_obj(GuestAddress(slot), head);
    ++avail_idx_;
    (void)guest_memory().write_obj(GuestAddress(queue_.avail + 2), avail_idx_);
  }

  // A whole virtio-blk request (header, data, status) as direct or indirect descriptors,
  // published and kicked.
  void block_request(Input& in) {
    static constexpr std::array<uint32_t, 8> kTypes = {0, 1, 4, 8, 11, 13, 2, 0xffff};
    const uint8_t kind = in.u8();
    const uint32_t type = kTypes[kind & 7];
    const uint64_t sector = in.u8() & 0x80 ? in.u64() : in.u8();
    const uint32_t data_len = in.u16() % 0x3000;
    struct {
      uint32_t type;
      uint32_t reserved;
      uint64_t sector;
    } header{type, 0, sector};
    (void)guest_memory().write_obj(GuestAddress(kReqHeader), header);
    if (type == 11 || type == 13) {
      const blk::DiscardSegment seg{in.u8(), in.u8(), in.u8() & 1u};
      (void)guest_memory().write_obj(GuestAddress(kReqData), seg);
    }
    const bool data_writable = type == 0 || type == 8;
    std::vector<vio::Descriptor> chain;
    chain.push_back({kReqHeader, 16, 0, 0});
    if (data_len != 0) {
      chain.push_back({kReqData, data_len, data_writable ? vio::kDescFlagWrite : uint16_t{0}, 0});
    }
    chain.push_back({kReqStatus, 1, vio::kDescFlagWrite, 0});
    if (queue_.size == 0) return;
    const uint16_t head = static_cast<uint16_t>(next_desc_ % queue_.size);
    if (kind & 8) {  // indirect
      for (size_t i = 0; i < chain.size(); ++i) {
        if (i + 1 < chain.size()) {
          chain[i].flags = static_cast<uint16_t>(chain[i].flags | vio::kDescFlagNext);
          chain[i].next = static_cast<uint16_t>(i + 1);
        }
        (void)guest_memory().write_obj(GuestAddress(kReqIndirect + 16 * i), chain[i]);
      }
      write_descriptor(head, kReqIndirect, static_cast<uint32_t>(16 * chain.size()),
                       vio::kDescFlagIndirect, 0);
      next_desc_ = static_cast<uint16_t>(next_desc_ + 1);
    } else {
      for (size_t i = 0; i < chain.size(); ++i) {
        const auto index = static_cast<uint16_t>((next_desc_ + i) % queue_.size);
        const auto next = static_cast<uint16_t>((next_desc_ + i + 1) % queue_.size);
        const bool last = i + 1 == chain.size();
        write_descriptor(index, chain[i].addr, chain[i].len,
                         static_cast<uint16_t>(chain[i].flags | (last ? 0 : vio::kDescFlagNext)),
                         last ? 0 : next);
      }
      next_desc_ = static_cast<uint16_t>(next_desc_ + chain.size());
    }
    publish(head);
    if ((kind & 16) == 0) bar_write(kNotifyOffset, 0, 2);
  }

  struct DriverQueue {
    uint64_t desc = 0;
    uint64_t avail = 0;
    uint64_t used = 0;
    uint16_t size = 0;
  };

  bool msix_;
  bool intx_;
  bool ioeventfds_;
  std::shared_ptr<blk::testing::MemoryBackend> backend_;
  std::shared_ptr<Line> line_;
  CheckedMsiAllocator msi_;
  IoEvents ioevents_;
  Bus pio_;
  Bus mmio_;
  pci::PciBarMapper mapper_{mmio_};
  std::shared_ptr<pci::PciRoot> root_;
  std::shared_ptr<VirtioPciDevice> dev_;
  uint8_t slot_ = 0;
  uint64_t bar0_placement_ = 0;
  std::shared_ptr<VirtioPciDevice> other_;
  uint8_t other_slot_ = 0xff;
  uint16_t num_queues_ = 0;
  uint16_t max_queue_size_ = 0;
  uint8_t msix_cap_ = 0;
  uint8_t pci_cfg_cap_ = 0;
  std::array<uint8_t, pci::kConfigSpaceBytes> read_only_{};
  DriverQueue queue_;
  uint16_t avail_idx_ = 0;
  uint16_t next_desc_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kumo::EventLoop::set_manual_mode_for_testing(true);
  g_trace = std::getenv("PCI_TRANSPORT_FUZZ_TRACE") != nullptr;
  (void)guest_memory();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  (void)guest_memory().fill(GuestAddress(0), 0, kRamLowBytes);
  (void)guest_memory().fill(GuestAddress(kRamHighBase), 0, kRamHighBytes);
  Input in(data + 1, size - 1);
  {
    Harness harness(data[0]);
    harness.run(in);
  }
  FUZZ_CHECK(kumo::EventLoop::manual_loops_for_testing() == 0);
  return 0;
}
