#pragma once
// KUMO_NEED_KVM(): the first statement of a test (or its fixture's SetUp) that needs /dev/kvm.
// Where /dev/kvm cannot be opened the test is skipped, unless the environment says KVM must be
// there (KUMO_REQUIRE_KVM=1: scripts/kvm-tests sets it, on the host that should have it), and
// then it fails: a VM test that skipped tested nothing.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace kumo::test {

inline bool have_kvm() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

inline bool kvm_required() {
  const char* value = std::getenv("KUMO_REQUIRE_KVM");
  return value != nullptr && std::string_view(value) == "1";
}

}  // namespace kumo::test

#define KUMO_NEED_KVM()                                                   \
  do {                                                                    \
    if (!::kumo::test::have_kvm()) {                                      \
      if (::kumo::test::kvm_required()) {                                 \
        GTEST_FAIL() << "/dev/kvm not available and KUMO_REQUIRE_KVM=1";  \
      }                                                                   \
      GTEST_SKIP() << "/dev/kvm not available";                           \
    }                                                                     \
  } while (0)
