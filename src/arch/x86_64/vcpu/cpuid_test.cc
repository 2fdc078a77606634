#include "arch/x86_64/vcpu/cpuid.h"

#include <gtest/gtest.h>

namespace kumo::arch::x86_64 {
namespace {

std::vector<kvm_cpuid_entry2> sample() {
  kvm_cpuid_entry2 l1{};
  l1.function = 1;
  l1.ecx = (1u << 26) | (1u << 27) | (1u << 28) | (1u << 13) | 1u;  // xsave osxsave avx cx16 sse3
  l1.ebx = 0xff00abcd;
  kvm_cpuid_entry2 l7{};
  l7.function = 7;
  l7.ebx = (1u << 5) | (1u << 0);  // avx2, fsgsbase
  kvm_cpuid_entry2 ld{};
  ld.function = 0xd;
  kvm_cpuid_entry2 lb{};
  lb.function = 0xb;
  return {l1, l7, ld, lb};
}

const kvm_cpuid_entry2* find(const std::vector<kvm_cpuid_entry2>& v, uint32_t fn) {
  for (const auto& e : v) {
    if (e.function == fn) return &e;
  }
  return nullptr;
}

TEST(GuestCpuid, ApicIdAndCountAreSetPerVcpu) {
  auto s = sample();
  auto out = build_guest_cpuid(s, HostCpuFeatures{true}, 3, 4);
  EXPECT_EQ(find(out, 1)->ebx >> 24, 3u);
  EXPECT_EQ((find(out, 1)->ebx >> 16) & 0xff, 4u);
  EXPECT_EQ(find(out, 1)->ebx & 0xffff, 0xabcdu);
  EXPECT_EQ(find(out, 0xb)->edx, 3u);
  EXPECT_NE(find(out, 1)->ecx & (1u << 31), 0u);
}

TEST(GuestCpuid, HardwareHostKeepsXsaveAndCx16) {
  auto s = sample();
  auto out = build_guest_cpuid(s, HostCpuFeatures{true}, 0, 1);
  EXPECT_NE(find(out, 1)->ecx & (1u << 26), 0u);
  EXPECT_NE(find(out, 1)->ecx & (1u << 13), 0u);
  EXPECT_NE(find(out, 7)->ebx & (1u << 5), 0u);
  EXPECT_NE(find(out, 0xd), nullptr);
}

TEST(GuestCpuid, NestedHostWithoutVmxHidesWhatItsEmulatorCannotRun) {
  auto s = sample();
  auto out = build_guest_cpuid(s, HostCpuFeatures{false}, 0, 1);
  const uint32_t ecx = find(out, 1)->ecx;
  EXPECT_EQ(ecx & ((1u << 26) | (1u << 27) | (1u << 28) | (1u << 13)), 0u);
  EXPECT_EQ(ecx & 1u, 1u);  // SSE3 untouched
  EXPECT_EQ(find(out, 7)->ebx, 1u);  // AVX2 gone, FSGSBASE kept
  EXPECT_EQ(find(out, 0xd), nullptr);
}

}  // namespace
}  // namespace kumo::arch::x86_64
