#pragma once
// AlignedBuffer: heap bytes aligned for O_DIRECT (HostFile::kDirectAlignment), for bounce
// buffers. Movable, not copyable; the contents are not initialised.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace kumo::block {

class AlignedBuffer final {
 public:
  static constexpr size_t kAlignment = 4096;  // = HostFile::kDirectAlignment

  AlignedBuffer() = default;
  // `len` (> 0) bytes, or an empty buffer (data() == nullptr) when memory is short.
  explicit AlignedBuffer(size_t len) { (void)resize(len); }

  // Holds `len` bytes from now on; the old contents are dropped when the memory grows.
  // False (and empty) when memory is short.
  [[nodiscard]] bool resize(size_t len) {
    if (len > capacity_) {
      void* p = nullptr;
      if (::posix_memalign(&p, kAlignment, len) != 0) {
        mem_.reset();
        capacity_ = size_ = 0;
        return false;
      }
      mem_.reset(static_cast<uint8_t*>(p));
      capacity_ = len;
    }
    size_ = len;
    return true;
  }
  // Gives the memory back when more than `max_len` bytes are held.
  void release_if_larger(size_t max_len) {
    if (capacity_ > max_len) {
      mem_.reset();
      capacity_ = size_ = 0;
    }
  }

  [[nodiscard]] uint8_t* data() const { return mem_.get(); }
  [[nodiscard]] size_t size() const { return size_; }
  explicit operator bool() const { return mem_ != nullptr; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> mem_;
  size_t capacity_ = 0;
  size_t size_ = 0;
};

}  // namespace kumo::block
