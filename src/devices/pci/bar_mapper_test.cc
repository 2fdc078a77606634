#include "devices/pci/bar_mapper.h"

#include <gtest/gtest.h>

#include <cstring>

namespace kumo::devices::pci {
namespace {

// One 4 KiB memory BAR (0) and one I/O BAR (1); BAR reads return the BAR index.
class OneBarDevice final : public PciDevice {
 public:
  OneBarDevice() : config_(PciIdentity{.vendor_id = 0x1af4, .device_id = 0x1042}) {
    EXPECT_TRUE(config_.add_bar({0, 0x1000, BarKind::kMmio32, false}));
    EXPECT_TRUE(config_.add_bar({1, 0x20, BarKind::kIo, false}));
  }
  void config_read(uint64_t offset, std::span<uint8_t> data) override {
    config_.read_bytes(offset, data);
  }
  std::vector<BarMove> config_write(uint64_t offset, std::span<const uint8_t> data) override {
    return config_.write(offset, data);
  }
  std::vector<BarMove> reset() override { return config_.reset(); }
  std::vector<BarSpec> bars() const override { return {*config_.bar(0), *config_.bar(1)}; }
  void set_bar_address(uint8_t index, uint64_t address) override {
    config_.set_bar_address(index, address);
  }
  void bar_read(uint8_t index, uint64_t, std::span<uint8_t> data) override {
    std::fill(data.begin(), data.end(), index);
  }
  void bar_write(uint8_t, uint64_t, std::span<const uint8_t>) override {}

 private:
  PciConfigSpace config_;
};

class PciBarMapperTest : public ::testing::Test {
 protected:
  PciBarMapperTest() {
    root_.set_bar_moved_handler(
        [this](uint8_t slot, const BarMove& move) { last_ = mapper_.on_move(slot, move); });
    auto device = std::make_shared<OneBarDevice>();
    auto attached = root_.attach(device);
    EXPECT_TRUE(attached);
    slot_ = attached->slot;
    mapper_.add(device, *attached);
    set_command(kCommandMemorySpace);
  }
  void program_bar0(uint32_t address) {
    uint8_t bytes[4];
    std::memcpy(bytes, &address, 4);
    root_.config_write(slot_, 0, kRegBar0, bytes);
  }
  void set_command(uint16_t command) {
    uint8_t bytes[2];
    std::memcpy(bytes, &command, 2);
    root_.config_write(slot_, 0, kRegCommand, bytes);
  }
  bool reachable(uint64_t address) {
    uint8_t b = 0xff;
    return mmio_.read(address, std::span(&b, 1)) && b == 0;
  }

  Bus mmio_;
  PciBarMapper mapper_{mmio_};
  PciRoot root_;
  uint8_t slot_ = 0;
  Status last_;
};

TEST(PciBarMapper, AttachedBarIsUnmappedUntilMemorySpaceIsEnabled) {
  Bus mmio;
  PciBarMapper mapper(mmio);
  PciRoot root;
  root.set_bar_moved_handler(
      [&](uint8_t slot, const BarMove& move) { EXPECT_TRUE(mapper.on_move(slot, move)); });
  auto device = std::make_shared<OneBarDevice>();
  auto attached = root.attach(device);
  ASSERT_TRUE(attached);
  mapper.add(device, *attached);
  uint8_t b = 0;
  EXPECT_EQ(mapper.mapped_address(attached->slot, 0), std::nullopt);
  EXPECT_FALSE(mmio.read(kMmioWindowBase, std::span(&b, 1)));
  const uint8_t memory_space[2] = {kCommandMemorySpace, 0};
  root.config_write(attached->slot, 0, kRegCommand, memory_space);
  EXPECT_EQ(mapper.mapped_address(attached->slot, 0), kMmioWindowBase);
  EXPECT_TRUE(mmio.read(kMmioWindowBase, std::span(&b, 1)));
}

TEST_F(PciBarMapperTest, ClearingMemorySpaceUnmapsTheBarAndSettingItMapsItAgain) {
  EXPECT_TRUE(reachable(kMmioWindowBase));
  set_command(kCommandBusMaster);
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), std::nullopt);
  EXPECT_FALSE(reachable(kMmioWindowBase));
  set_command(kCommandMemorySpace | kCommandBusMaster);
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), kMmioWindowBase);
  EXPECT_TRUE(reachable(kMmioWindowBase));
}

TEST_F(PciBarMapperTest, BarMovedWhileMemorySpaceIsOffIsMappedAtItsNewAddressWhenEnabled) {
  set_command(0);
  program_bar0(0xd000'0000);
  EXPECT_FALSE(reachable(0xd000'0000));
  EXPECT_FALSE(reachable(kMmioWindowBase));
  set_command(kCommandMemorySpace);
  EXPECT_TRUE(last_);
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), 0xd000'0000u);
  EXPECT_TRUE(reachable(0xd000'0000));
  EXPECT_FALSE(reachable(kMmioWindowBase));
}

TEST_F(PciBarMapperTest, MovedBarIsReachableOnlyAtItsNewAddress) {
  program_bar0(0xd000'0000);
  EXPECT_TRUE(last_);
  EXPECT_TRUE(reachable(0xd000'0000));
  EXPECT_FALSE(reachable(kMmioWindowBase));
}

TEST_F(PciBarMapperTest, BarMovedToZeroIsUnmappedAndMappedAgainWhenMovedBack) {
  program_bar0(0);
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), std::nullopt);
  EXPECT_FALSE(reachable(kMmioWindowBase));
  program_bar0(0xd000'0000);
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), 0xd000'0000u);
  EXPECT_TRUE(reachable(0xd000'0000));
  EXPECT_FALSE(reachable(kMmioWindowBase));
}

TEST_F(PciBarMapperTest, BarMovedOverAnotherRangeIsMappedAgainAtAFreeAddress) {
  ASSERT_TRUE(mmio_.insert(0xe000'0000, 0x1000, std::make_shared<PciBarRegion>(
                                                    std::make_shared<OneBarDevice>(), 1)));
  program_bar0(0xe000'0000);
  EXPECT_FALSE(last_);
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), std::nullopt);
  EXPECT_FALSE(reachable(kMmioWindowBase));
  program_bar0(0xd000'0000);
  EXPECT_TRUE(last_);
  EXPECT_TRUE(reachable(0xd000'0000));
}

TEST_F(PciBarMapperTest, ResetUnmapsTheBarUntilTheGuestEnablesItAgainWhereFirmwarePutIt) {
  program_bar0(0xd000'0000);
  root_.reset();
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), std::nullopt);
  EXPECT_FALSE(reachable(0xd000'0000));
  EXPECT_FALSE(reachable(kMmioWindowBase));
  set_command(kCommandMemorySpace);
  EXPECT_EQ(mapper_.mapped_address(slot_, 0), kMmioWindowBase);
  EXPECT_TRUE(reachable(kMmioWindowBase));
}

TEST_F(PciBarMapperTest, IoBarsAreNotMapped) {
  set_command(kCommandMemorySpace | kCommandIoSpace);
  EXPECT_EQ(mapper_.mapped_address(slot_, 1), std::nullopt);
  uint8_t b = 0;
  EXPECT_FALSE(mmio_.read(kIoWindowBase, std::span(&b, 1)));
}

}  // namespace
}  // namespace kumo::devices::pci
