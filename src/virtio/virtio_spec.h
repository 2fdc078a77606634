#pragma once
// Constants and guest-visible layouts from the virtio 1.2 specification (OASIS CS01).
// Structures copied to or from the guest are trivially copyable with no padding; virtio 1.x
// is little-endian and so is every host kumo runs on (checked below).

#include <bit>
#include <cstdint>
#include <type_traits>

namespace kumo::virtio {

static_assert(std::endian::native == std::endian::little, "virtio 1.x rings are little-endian");

// §2.1 Device Status Field.
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusNeedsReset = 64;
inline constexpr uint8_t kStatusFailed = 128;

// §6 Reserved Feature Bits.
inline constexpr uint32_t kFeatureIndirectDesc = 28;  // VIRTIO_F_INDIRECT_DESC
inline constexpr uint32_t kFeatureEventIdx = 29;      // VIRTIO_F_EVENT_IDX
inline constexpr uint32_t kFeatureVersion1 = 32;      // VIRTIO_F_VERSION_1
inline constexpr uint32_t kFeatureAccessPlatform = 33;
inline constexpr uint32_t kFeatureRingPacked = 34;

constexpr uint64_t feature_bit(uint32_t bit) { return uint64_t{1} << bit; }

// §2.7.5 The Virtqueue Descriptor Table.
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;

struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16 && std::is_trivially_copyable_v<Descriptor>);

// §2.7.6 The Virtqueue Available Ring / §2.7.8 The Virtqueue Used Ring.
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint16_t kUsedFlagNoNotify = 1;

struct UsedElement {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(UsedElement) == 8 && std::is_trivially_copyable_v<UsedElement>);

// §2.7 Split Virtqueues: queue size is at most 32768 (and, for split rings, any value up to
// that; we additionally require a power of two as legacy drivers and Linux do).
inline constexpr uint16_t kMaxQueueSize = 32768;

// §5 Device Types (device ids).
inline constexpr uint16_t kDeviceIdNet = 1;
inline constexpr uint16_t kDeviceIdBlock = 2;
inline constexpr uint16_t kDeviceIdConsole = 3;
inline constexpr uint16_t kDeviceIdRng = 4;

}  // namespace kumo::virtio
