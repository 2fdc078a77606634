#include "kvm/kvm_system.h"
#include "kvm/testing/require_kvm.h"

#include <gtest/gtest.h>

namespace kumo::kvm {
namespace {

TEST(KvmSystem, MissingDeviceIsHostErrorNamingPath) {
  auto kvm = KvmSystem::open("/nonexistent/kvm");
  ASSERT_FALSE(kvm);
  EXPECT_EQ(kvm.error().kind, ErrorKind::kHost);
  EXPECT_NE(kvm.error().message.find("/nonexistent/kvm"), std::string::npos);
}

TEST(KvmSystem, OpensAndCreatesVmWithVcpu) {
  KUMO_NEED_KVM();
  auto kvm = KvmSystem::open();
  ASSERT_TRUE(kvm) << kvm.error().to_string();
  EXPECT_GE(kvm->max_vcpus(), 1);
  auto cpuid = kvm->supported_cpuid();
  ASSERT_TRUE(cpuid) << cpuid.error().to_string();
  EXPECT_FALSE(cpuid->empty());
  auto vm = kvm->create_vm();
  ASSERT_TRUE(vm);
  ASSERT_TRUE(vm->create_irqchip());
  auto vcpu = vm->create_vcpu(0);
  ASSERT_TRUE(vcpu) << vcpu.error().to_string();
  EXPECT_NE(vcpu->run_state(), nullptr);
  auto regs = vcpu->get_regs();
  ASSERT_TRUE(regs);
  EXPECT_EQ(regs->rip, 0xfff0u);  // reset vector
}

}  // namespace
}  // namespace kumo::kvm
