#include "devices/pci/pci_root.h"

#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <vector>

namespace kumo::devices::pci {
namespace {

class FakeDevice final : public PciDevice {
 public:
  FakeDevice()
      : config_(PciIdentity{.vendor_id = 0x1af4,
                            .device_id = 0x1042,
                            .revision = 1,
                            .class_code = 0x01,
                            .subclass = 0x00,
                            .prog_if = 0,
                            .subsystem_vendor_id = 0x1af4,
                            .subsystem_id = 2,
                            .interrupt_pin = 1}) {
    EXPECT_TRUE(config_.add_bar({0, 0x1000, BarKind::kMmio32, false}));
    EXPECT_TRUE(config_.add_bar({2, 0x4000, BarKind::kMmio64, true}));
    EXPECT_TRUE(config_.add_bar({4, 0x20, BarKind::kIo, false}));
  }
  void config_read(uint64_t offset, std::span<uint8_t> data) override {
    config_.read_bytes(offset, data);
  }
  std::vector<BarMove> config_write(uint64_t offset, std::span<const uint8_t> data) override {
    return config_.write(offset, data);
  }
  std::vector<BarMove> reset() override { return config_.reset(); }
  std::vector<BarSpec> bars() const override {
    return {*config_.bar(0), *config_.bar(2), *config_.bar(4)};
  }
  void set_bar_address(uint8_t index, uint64_t address) override {
    config_.set_bar_address(index, address);
  }
  void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) override {
    for (auto& b : data) b = static_cast<uint8_t>(index * 16 + offset);
  }
  void bar_write(uint8_t, uint64_t, std::span<const uint8_t>) override {}

  PciConfigSpace config_;
};

// Plays the guest on ports 0xcf8/0xcfc.
uint32_t cf8_read(PciRoot& root, uint8_t slot, uint8_t reg, size_t len = 4) {
  const uint32_t address = 0x8000'0000U | (uint32_t{slot} << 11) | (reg & 0xfcU);
  root.write(0, std::span(reinterpret_cast<const uint8_t*>(&address), 4));
  uint8_t buf[4] = {};
  root.read(4 + (reg & 3U), std::span(buf, len));
  uint32_t v = 0;
  std::memcpy(&v, buf, len);
  return v;
}

void cf8_write(PciRoot& root, uint8_t slot, uint8_t reg, uint32_t value, size_t len = 4) {
  const uint32_t address = 0x8000'0000U | (uint32_t{slot} << 11) | (reg & 0xfcU);
  root.write(0, std::span(reinterpret_cast<const uint8_t*>(&address), 4));
  root.write(4 + (reg & 3U), std::span(reinterpret_cast<const uint8_t*>(&value), len));
}

TEST(PciRoot, HostBridgeIsAtSlotZero) {
  PciRoot root;
  EXPECT_EQ(cf8_read(root, 0, 0x00), 0x0d57'8086U);
  EXPECT_EQ(cf8_read(root, 0, 0x08) >> 8, 0x060000U);
  EXPECT_EQ(cf8_read(root, 0, 0x0a, 2), 0x0600U);
}

TEST(PciRoot, EmptySlotReadsAllOnes) {
  PciRoot root;
  EXPECT_EQ(cf8_read(root, 5, 0x00), 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 5, 0x02, 2), 0xffffU);
}

TEST(PciRoot, DisabledAddressReadsAllOnes) {
  PciRoot root;
  const uint32_t address = 0;  // enable bit clear
  root.write(0, std::span(reinterpret_cast<const uint8_t*>(&address), 4));
  uint8_t buf[4] = {};
  root.read(4, std::span(buf, 4));
  EXPECT_EQ(buf[0], 0xff);
  EXPECT_EQ(buf[3], 0xff);
}

TEST(PciRoot, AddressRegisterReadsBackMaskedValue) {
  PciRoot root;
  const uint32_t address = 0xffff'ffffU;
  root.write(0, std::span(reinterpret_cast<const uint8_t*>(&address), 4));
  uint32_t out = 0;
  root.read(0, std::span(reinterpret_cast<uint8_t*>(&out), 4));
  EXPECT_EQ(out, 0x80ff'fffcU);
}

TEST(PciRoot, OtherBusesAndFunctionsAreEmpty) {
  PciRoot root;
  const uint32_t address = 0x8001'0000U;  // bus 1
  root.write(0, std::span(reinterpret_cast<const uint8_t*>(&address), 4));
  uint32_t out = 0;
  root.read(4, std::span(reinterpret_cast<uint8_t*>(&out), 4));
  EXPECT_EQ(out, 0xffff'ffffU);
  EXPECT_EQ(root.config_read(0, 1, 0, 4), 0xffff'ffffU);
}

TEST(PciRoot, AttachAllocatesAlignedBarsInTheWindow) {
  PciRoot root;
  auto device = std::make_shared<FakeDevice>();
  auto attached = root.attach(device, 10);
  ASSERT_TRUE(attached) << attached.error().message;
  EXPECT_EQ(attached->slot, 1);
  ASSERT_EQ(attached->bars.size(), 3u);
  for (const auto& bar : attached->bars) {
    EXPECT_EQ(bar.address % bar.size_bytes, 0u);
    if (bar.kind == BarKind::kIo) {
      EXPECT_GE(bar.address, kIoWindowBase);
    } else {
      EXPECT_GE(bar.address, kMmioWindowBase);
      EXPECT_LE(bar.address + bar.size_bytes, kMmioWindowEnd);
    }
  }
  EXPECT_EQ(cf8_read(root, 1, 0x10), attached->bars[0].address);
  EXPECT_EQ(cf8_read(root, 1, 0x18) & ~0xfU, attached->bars[1].address);
  EXPECT_EQ(cf8_read(root, 1, 0x18) & 0xfU, 0xcU);  // 64-bit, prefetchable
  EXPECT_EQ(cf8_read(root, 1, 0x3c, 1), 10U);
  EXPECT_EQ(cf8_read(root, 1, 0x3d, 1), 1U);
}

TEST(PciRoot, BarSizingWithAllOnesReturnsSizeMask) {
  PciRoot root;
  ASSERT_TRUE(root.attach(std::make_shared<FakeDevice>()));
  cf8_write(root, 1, 0x10, 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 1, 0x10), 0xffff'f000U);
  cf8_write(root, 1, 0x18, 0xffff'ffffU);
  cf8_write(root, 1, 0x1c, 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 1, 0x18), 0xffff'c00cU);
  EXPECT_EQ(cf8_read(root, 1, 0x1c), 0xffff'ffffU);
  cf8_write(root, 1, 0x20, 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 1, 0x20), 0xffff'ffe1U);
  // Unused BARs and the expansion ROM stay zero.
  cf8_write(root, 1, 0x14, 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 1, 0x14), 0U);
  cf8_write(root, 1, 0x30, 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 1, 0x30), 0U);
}

TEST(PciRoot, ReadOnlyRegistersIgnoreWrites) {
  PciRoot root;
  ASSERT_TRUE(root.attach(std::make_shared<FakeDevice>()));
  cf8_write(root, 1, 0x00, 0x1234'5678U);
  cf8_write(root, 1, 0x08, 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 1, 0x00), 0x1042'1af4U);
  EXPECT_EQ(cf8_read(root, 1, 0x08), 0x0100'0001U);
  cf8_write(root, 1, 0x04, 0xffff'ffffU);
  EXPECT_EQ(cf8_read(root, 1, 0x04, 2), 0x0407U);
}

TEST(PciRoot, SizingProbeAndRestoreReportNoMove) {
  PciRoot root;
  std::vector<BarMove> moves;
  root.set_bar_moved_handler([&](uint8_t, const BarMove& m) { moves.push_back(m); });
  ASSERT_TRUE(root.attach(std::make_shared<FakeDevice>()));
  const uint32_t bar0 = cf8_read(root, 1, 0x10);
  cf8_write(root, 1, 0x10, 0xffff'ffffU);
  cf8_write(root, 1, 0x10, bar0);
  const uint32_t lo = cf8_read(root, 1, 0x18);
  const uint32_t hi = cf8_read(root, 1, 0x1c);
  cf8_write(root, 1, 0x18, 0xffff'ffffU);
  cf8_write(root, 1, 0x1c, 0xffff'ffffU);
  cf8_write(root, 1, 0x18, lo);
  cf8_write(root, 1, 0x1c, hi);
  EXPECT_TRUE(moves.empty());
}

TEST(PciRoot, GuestMovingBarsCallsHandler) {
  PciRoot root;
  std::vector<std::pair<uint8_t, BarMove>> moves;
  root.set_bar_moved_handler([&](uint8_t slot, const BarMove& m) { moves.emplace_back(slot, m); });
  auto attached = root.attach(std::make_shared<FakeDevice>());
  ASSERT_TRUE(attached);
  cf8_write(root, 1, kRegCommand, kCommandMemorySpace, 2);
  moves.clear();
  cf8_write(root, 1, 0x10, 0xd000'0000U);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].first, 1);
  EXPECT_EQ(moves[0].second.index, 0);
  EXPECT_EQ(moves[0].second.old_address, attached->bars[0].address);
  EXPECT_EQ(moves[0].second.new_address, 0xd000'0000U);
  EXPECT_EQ(moves[0].second.size_bytes, 0x1000u);
  // A 64-bit BAR is reported once, on its high dword.
  cf8_write(root, 1, 0x18, 0xe000'0000U);
  EXPECT_EQ(moves.size(), 1u);
  cf8_write(root, 1, 0x1c, 0x1U);
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[1].second.index, 2);
  EXPECT_EQ(moves[1].second.new_address, 0x1'e000'0000U);
}

TEST(PciRoot, MemorySpaceEnableStartsAndStopsMemoryBarDecoding) {
  PciRoot root;
  std::vector<BarMove> moves;
  root.set_bar_moved_handler([&](uint8_t, const BarMove& m) { moves.push_back(m); });
  auto attached = root.attach(std::make_shared<FakeDevice>());
  ASSERT_TRUE(attached);
  EXPECT_EQ(cf8_read(root, 1, kRegCommand, 2), 0U);  // power-on: nothing decodes
  cf8_write(root, 1, kRegCommand, kCommandMemorySpace, 2);
  ASSERT_EQ(moves.size(), 2u);  // both memory BARs, not the I/O BAR
  EXPECT_EQ(moves[0].index, 0);
  EXPECT_EQ(moves[0].old_address, 0u);
  EXPECT_EQ(moves[0].new_address, attached->bars[0].address);
  EXPECT_EQ(moves[1].index, 2);
  EXPECT_EQ(moves[1].new_address, attached->bars[1].address);
  moves.clear();
  cf8_write(root, 1, kRegCommand, 0, 2);
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[0].old_address, attached->bars[0].address);
  EXPECT_EQ(moves[0].new_address, 0u);
  EXPECT_EQ(moves[1].new_address, 0u);
}

TEST(PciRoot, IoSpaceEnableStartsAndStopsIoBarDecoding) {
  PciRoot root;
  std::vector<BarMove> moves;
  root.set_bar_moved_handler([&](uint8_t, const BarMove& m) { moves.push_back(m); });
  auto attached = root.attach(std::make_shared<FakeDevice>());
  ASSERT_TRUE(attached);
  cf8_write(root, 1, kRegCommand, kCommandIoSpace, 2);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].index, 4);
  EXPECT_EQ(moves[0].kind, BarKind::kIo);
  EXPECT_EQ(moves[0].new_address, attached->bars[2].address);
  cf8_write(root, 1, kRegCommand, 0, 2);
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[1].new_address, 0u);
}

TEST(PciRoot, BarProgrammedWhileMemorySpaceIsOffDecodesThereOnceEnabled) {
  PciRoot root;
  std::vector<BarMove> moves;
  root.set_bar_moved_handler([&](uint8_t, const BarMove& m) { moves.push_back(m); });
  ASSERT_TRUE(root.attach(std::make_shared<FakeDevice>()));
  cf8_write(root, 1, 0x10, 0xd000'0000U);
  EXPECT_TRUE(moves.empty());
  cf8_write(root, 1, kRegCommand, kCommandMemorySpace, 2);
  ASSERT_GE(moves.size(), 1u);
  EXPECT_EQ(moves[0].index, 0);
  EXPECT_EQ(moves[0].old_address, 0u);
  EXPECT_EQ(moves[0].new_address, 0xd000'0000U);
}

// Linux's __pci_read_base: decoding off, all-ones, read the mask, restore, decoding back on.
TEST(PciRoot, LinuxSizingSequenceLeavesTheBarsDecodingWhereTheyWere) {
  PciRoot root;
  std::vector<BarMove> moves;
  root.set_bar_moved_handler([&](uint8_t, const BarMove& m) { moves.push_back(m); });
  auto attached = root.attach(std::make_shared<FakeDevice>());
  ASSERT_TRUE(attached);
  const uint32_t command = kCommandMemorySpace | kCommandBusMaster;
  cf8_write(root, 1, kRegCommand, command, 2);
  moves.clear();
  cf8_write(root, 1, kRegCommand, command & ~uint32_t{kCommandMemorySpace | kCommandIoSpace}, 2);
  for (const uint8_t reg : {uint8_t{0x10}, uint8_t{0x18}, uint8_t{0x1c}}) {
    const uint32_t orig = cf8_read(root, 1, reg);
    cf8_write(root, 1, reg, 0xffff'ffffU);
    EXPECT_NE(cf8_read(root, 1, reg), orig);
    cf8_write(root, 1, reg, orig);
  }
  cf8_write(root, 1, kRegCommand, command, 2);
  ASSERT_EQ(moves.size(), 4u);  // BARs 0 and 2 off, then on again where they were
  EXPECT_EQ(moves[0].new_address, 0u);
  EXPECT_EQ(moves[1].new_address, 0u);
  EXPECT_EQ(moves[2].new_address, attached->bars[0].address);
  EXPECT_EQ(moves[3].new_address, attached->bars[1].address);
}

TEST(PciRoot, ResetPutsEveryFunctionBackToItsPowerOnState) {
  PciRoot root;
  std::vector<BarMove> moves;
  root.set_bar_moved_handler([&](uint8_t, const BarMove& m) { moves.push_back(m); });
  auto attached = root.attach(std::make_shared<FakeDevice>(), 10);
  ASSERT_TRUE(attached);
  std::vector<uint32_t> power_on;
  for (size_t reg = 0; reg < kConfigSpaceBytes; reg += 4) {
    power_on.push_back(cf8_read(root, 1, static_cast<uint8_t>(reg)));
  }
  // What a guest leaves behind: functions enabled, BARs moved, scratch registers written.
  cf8_write(root, 0, kRegCommand, 0x0107, 2);
  cf8_write(root, 1, 0x10, 0xd000'0000U);
  cf8_write(root, 1, 0x18, 0xe000'0000U);
  cf8_write(root, 1, 0x1c, 0x1U);
  cf8_write(root, 1, 0x20, 0xd000U);
  cf8_write(root, 1, kRegInterruptLine, 5, 1);
  cf8_write(root, 1, 0x0c, 0x4010, 2);  // cache line size, latency timer
  cf8_write(root, 1, kRegCommand,
            kCommandMemorySpace | kCommandIoSpace | kCommandBusMaster | kCommandInterruptDisable,
            2);
  moves.clear();
  root.reset();
  uint32_t config_address = 1;
  root.read(0, std::span(reinterpret_cast<uint8_t*>(&config_address), 4));
  EXPECT_EQ(config_address, 0u);
  ASSERT_EQ(moves.size(), 3u);  // every BAR that was decoding stops
  EXPECT_EQ(moves[0].old_address, 0xd000'0000U);
  EXPECT_EQ(moves[1].old_address, 0x1'e000'0000U);
  EXPECT_EQ(moves[2].old_address, 0xd000U);
  for (const BarMove& m : moves) EXPECT_EQ(m.new_address, 0u);
  for (size_t reg = 0; reg < kConfigSpaceBytes; reg += 4) {
    EXPECT_EQ(cf8_read(root, 1, static_cast<uint8_t>(reg)), power_on[reg / 4])
        << "register " << reg;
  }
  EXPECT_EQ(cf8_read(root, 1, kRegCommand, 2), 0u);
  EXPECT_EQ(cf8_read(root, 1, 0x10), attached->bars[0].address);
  EXPECT_EQ(cf8_read(root, 1, kRegInterruptLine, 1), 10u);
  EXPECT_EQ(cf8_read(root, 0, kRegCommand, 2), 0u);
}

TEST(PciRoot, BarAccessesReachTheDevice) {
  PciRoot root;
  auto device = std::make_shared<FakeDevice>();
  ASSERT_TRUE(root.attach(device));
  PciBarRegion region(device, 2);
  uint8_t b = 0;
  region.read(3, std::span(&b, 1));
  EXPECT_EQ(b, 35);
}

TEST(PciRoot, MisalignedAndOversizedDataAccessesAreHarmless) {
  PciRoot root;
  ASSERT_TRUE(root.attach(std::make_shared<FakeDevice>()));
  const uint32_t address = 0x8000'0800U;
  root.write(0, std::span(reinterpret_cast<const uint8_t*>(&address), 4));
  uint8_t buf[8] = {};
  root.read(6, std::span(buf, 4));  // crosses the end of the data window
  EXPECT_EQ(buf[0], 0xff);
  root.read(4, std::span(buf, 8));
  EXPECT_EQ(buf[7], 0xff);
  root.write(7, std::span<const uint8_t>(buf, 2));
  // Byte writes to 0xcf8 do not change the address register (Linux's type-1 probe).
  const uint8_t one = 1;
  root.write(3, std::span(&one, 1));
  uint32_t out = 0;
  root.read(0, std::span(reinterpret_cast<uint8_t*>(&out), 4));
  EXPECT_EQ(out, address);
}

TEST(PciRoot, DirectConfigAccessCrossingADwordIsIgnored) {
  PciRoot root;
  std::vector<BarMove> moves;
  root.set_bar_moved_handler([&](uint8_t, const BarMove& m) { moves.push_back(m); });
  ASSERT_TRUE(root.attach(std::make_shared<FakeDevice>()));
  const uint32_t bar0 = root.config_read(1, 0, 0x10, 4);
  const uint8_t ones[4] = {0xff, 0xff, 0xff, 0xff};
  root.config_write(1, 0, 0x0e, ones);  // header type, BIST and half of BAR 0
  EXPECT_EQ(root.config_read(1, 0, 0x10, 4), bar0);
  EXPECT_TRUE(moves.empty());
  EXPECT_EQ(root.config_read(1, 0, 0x0e, 4), 0xffff'ffffU);
  EXPECT_EQ(root.config_read(1, 0, 0x10, 3), 0xff'ffffU);
}

TEST(PciRoot, BusFullIsAnError) {
  PciRoot root;
  for (size_t i = 1; i < kSlotsPerBus; ++i) {
    ASSERT_TRUE(root.attach(std::make_shared<FakeDevice>()));
  }
  EXPECT_FALSE(root.attach(std::make_shared<FakeDevice>()));
}

TEST(AddressAllocator, AlignsAndRefusesOverflow) {
  AddressAllocator alloc(0x1000, 0x10000);
  EXPECT_EQ(*alloc.allocate(0x100), 0x1000u);
  EXPECT_EQ(*alloc.allocate(0x4000), 0x4000u);
  EXPECT_FALSE(alloc.allocate(0x10000));
  EXPECT_FALSE(alloc.allocate(0x300));
  AddressAllocator top(0xffff'ffff'ffff'f000U, 0xffff'ffff'ffff'ffffU);
  EXPECT_FALSE(top.allocate(0x2000));
}

TEST(PciConfigSpace, CapabilitiesFormAChain) {
  PciConfigSpace config(PciIdentity{.vendor_id = 1});
  const uint8_t body1[] = {1, 2};
  const uint8_t body2[] = {3, 4, 5, 6, 7, 8};
  const uint8_t mask2[] = {0, 0xff, 0, 0, 0, 0};
  auto a = config.add_capability(kCapIdVendor, body1);
  auto b = config.add_capability(kCapIdMsix, body2, mask2);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(config.read(kRegStatus, 2) & kStatusCapabilitiesList, kStatusCapabilitiesList);
  EXPECT_EQ(config.read(kRegCapabilitiesPointer, 1), *a);
  EXPECT_EQ(config.read(*a + 1u, 1), *b);
  EXPECT_EQ(config.read(*b + 1u, 1), 0u);
  const uint8_t ones[] = {0xff, 0xff, 0xff, 0xff};
  (void)config.write(*b + 2u, ones);
  EXPECT_EQ(config.read(*b + 2u, 4), 0x0605'ff03U);
  const uint8_t too_big[250] = {};
  EXPECT_FALSE(config.add_capability(kCapIdVendor, too_big));
}

TEST(PciConfigSpace, UnalignedAllOnesWriteMovesTheBarInsteadOfProbingIt) {
  PciConfigSpace config(PciIdentity{});
  ASSERT_TRUE(config.add_bar({0, 0x1000, BarKind::kMmio32, false}));
  config.set_bar_address(0, 0xc000'0000);
  const uint8_t memory_space[2] = {kCommandMemorySpace, 0};
  ASSERT_EQ(config.write(kRegCommand, memory_space).size(), 1u);
  const uint8_t ones[4] = {0xff, 0xff, 0xff, 0xff};
  const auto moves = config.write(0x0e, ones);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].old_address, 0xc000'0000u);
  EXPECT_EQ(moves[0].new_address, config.bar_address(0));
  EXPECT_EQ(config.bar_address(0), 0xc000'f000u);
}

TEST(PciConfigSpace, ResetRestoresWritableCapabilityFieldsAsAdded) {
  PciConfigSpace config(PciIdentity{});
  const uint8_t body[] = {0x12, 0x34};
  const uint8_t mask[] = {0xff, 0xf0};
  const auto cap = config.add_capability(kCapIdVendor, body, mask);
  ASSERT_TRUE(cap);
  const uint8_t zeros[] = {0, 0};
  (void)config.write(*cap + 2u, zeros);
  EXPECT_EQ(config.read(*cap + 2u, 2), 0x0400u);
  EXPECT_TRUE(config.reset().empty());
  EXPECT_EQ(config.read(*cap + 2u, 2), 0x3412u);
}

TEST(PciConfigSpace, InvalidBarsAreRejected) {
  PciConfigSpace config(PciIdentity{});
  EXPECT_FALSE(config.add_bar({0, 0x1001, BarKind::kMmio32, false}));
  EXPECT_FALSE(config.add_bar({5, 0x1000, BarKind::kMmio64, false}));
  EXPECT_FALSE(config.add_bar({6, 0x1000, BarKind::kMmio32, false}));
  EXPECT_TRUE(config.add_bar({0, 0x1000, BarKind::kMmio64, false}));
  EXPECT_FALSE(config.add_bar({1, 0x1000, BarKind::kMmio32, false}));
}

}  // namespace
}  // namespace kumo::devices::pci
