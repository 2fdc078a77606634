#pragma once
// SharedInterruptLine: one level-triggered wire several devices drive, as PCI INTx pins
// sharing an IOAPIC input are wired-OR (PCI 3.0 §2.2.6): the line is asserted while any
// source asserts it. Without this, one device deasserting its pin would drop another's
// pending interrupt.
//
// Thread-safety: sources are called from any thread (vCPU and device workers); the line's
// state is serialized by a mutex, and the underlying line is driven under it, so its level
// always matches the last OR computed.

#include <cstdint>
#include <memory>
#include <mutex>

#include "devices/interrupt.h"

namespace kumo::devices {

class SharedInterruptLine final : public std::enable_shared_from_this<SharedInterruptLine> {
 public:
  // `line` is the wire itself (e.g. a KVM GSI).
  static std::shared_ptr<SharedInterruptLine> create(std::shared_ptr<InterruptLine> line) {
    return std::shared_ptr<SharedInterruptLine>(new SharedInterruptLine(std::move(line)));
  }
  // A new source on this line, initially deasserted; at most 64 sources. Each source's
  // pulse() asserts and deasserts that source only.
  [[nodiscard]] Result<std::shared_ptr<InterruptLine>> add_source();

 private:
  class Source;
  explicit SharedInterruptLine(std::shared_ptr<InterruptLine> line) : line_(std::move(line)) {}
  Status set(uint64_t bit, bool asserted);

  std::shared_ptr<InterruptLine> line_;
  std::mutex mutex_;
  uint64_t asserted_ = 0;  // one bit per source
  unsigned sources_ = 0;
};

}  // namespace kumo::devices
