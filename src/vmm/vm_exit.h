#pragma once
// Why a VM stopped, and the process exit status it maps to.

#include <cstdint>
#include <string>

namespace kumo::vmm {

struct VmExit {
  enum class Kind {
    kGuestExit,     // debug-exit port written: status = the value
    kReset,         // guest asked for a reboot (i8042 0xFE, triple fault is kFailure)
    kShutdown,      // guest powered off (KVM_SYSTEM_EVENT_SHUTDOWN)
    kFailure,       // triple fault, emulation failure, failed entry, unhandled exit
    kSignal,        // SIGINT/SIGTERM, or the console escape
  };
  Kind kind = Kind::kShutdown;
  int status = 0;       // process exit status for kumo run
  std::string detail;   // one line for the log (register dump goes to stderr separately)
};

// Exit statuses that are not the guest's own debug-exit value.
inline constexpr int kExitStatusVmFailure = 1;
inline constexpr int kExitStatusMisuse = 2;

}  // namespace kumo::vmm
