#pragma once
// Interrupt interfaces a device is given; the VMM implements them on KVM (devices/ never
// includes kvm/). Implementations are thread-safe.

#include <cstdint>

#include "base/result.h"

namespace kumo::devices {

// A wire into the IOAPIC/PIC (GSI). Edge devices call pulse(); level devices set_level().
class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  virtual Status set_level(bool asserted) = 0;
  virtual Status pulse() = 0;
};

}  // namespace kumo::devices
