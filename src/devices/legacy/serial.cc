#include "devices/legacy/serial.h"

namespace kumo::devices {
namespace {

// Register offsets (DLAB=0 unless noted).
constexpr uint64_t kData = 0;  // RBR (read) / THR (write) / DLL (DLAB=1)
constexpr uint64_t kIer = 1;   // IER / DLM (DLAB=1)
constexpr uint64_t kIir = 2;   // IIR (read) / FCR (write)
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerRxAvailable = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIirNoInterrupt = 0x01;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirRxAvailable = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
constexpr uint8_t kMcrLoopback = 0x10;
constexpr uint8_t kMsrConnected = 0xb0;     // CTS, DSR, DCD

}  // namespace

Serial::Serial(OutputSink sink, std::shared_ptr<InterruptLine> irq)
    : sink_(std::move(sink)), irq_(std::move(irq)) {}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  if (data.empty()) {
    return;
  }
  std::lock_guard lock(mutex_);
  data[0] = read_register(offset);
  for (size_t i = 1; i < data.size(); ++i) {
    data[i] = 0;
  }
  update_irq();
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty()) {
    return;
  }
  std::lock_guard lock(mutex_);
  write_register(offset, data[0]);
  update_irq();
}

void Serial::reset() {
  std::lock_guard lock(mutex_);
  rx_.clear();
  thr_empty_interrupt_pending_ = false;
  overrun_ = false;
  ier_ = 0;
  lcr_ = 0x03;
  mcr_ = 0x08;
  scr_ = 0;
  fcr_ = 0;
  dll_ = 0x0c;
  dlm_ = 0;
  update_irq();
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  size_t accepted = 0;
  for (uint8_t b : bytes) {
    if (rx_.size() >= kRxFifoBytes) {
      overrun_ = true;
      break;
    }
    rx_.push_back(b);
    ++accepted;
  }
  update_irq();
  return accepted;
}

uint8_t Serial::read_register(uint64_t offset) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (offset) {
    case kData:
      if (dlab) {
        return dll_;
      }
      if (rx_.empty()) {
        return 0;
      }
      {
        const uint8_t b = rx_.front();
        rx_.pop_front();
        return b;
      }
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIir: {
      const uint8_t iir = interrupt_identification();
      if (iir == kIirThrEmpty) {
        thr_empty_interrupt_pending_ = false;  // reading IIR clears THRE (16550D)
      }
      return static_cast<uint8_t>(iir | ((fcr_ & 1) ? kIirFifoEnabled : 0));
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      uint8_t lsr = kLsrThrEmpty | kLsrIdle;
      if (!rx_.empty()) {
        lsr |= kLsrDataReady;
      }
      if (overrun_) {
        lsr |= kLsrOverrun;
        overrun_ = false;
      }
      return lsr;
    }
    case kMsr:
      if (mcr_ & kMcrLoopback) {
        // DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
        return static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) |
                                    ((mcr_ & 0x0c) << 4));
      }
      return kMsrConnected;
    case kScr:
      return scr_;
    default:
      return 0xff;
  }
}

void Serial::write_register(uint64_t offset, uint8_t value) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (offset) {
    case kData:
      if (dlab) {
        dll_ = value;
      } else if (mcr_ & kMcrLoopback) {
        if (rx_.size() < kRxFifoBytes) {
          rx_.push_back(value);
        }
        thr_empty_interrupt_pending_ = true;
      } else {
        sink_(std::span<const uint8_t>(&value, 1));
        thr_empty_interrupt_pending_ = true;
      }
      break;
    case kIer:
      if (dlab) {
        dlm_ = value;
      } else {
        // Enabling THRE interrupts with an empty THR raises one right away (16550D).
        if ((value & kIerThrEmpty) && !(ier_ & kIerThrEmpty)) {
          thr_empty_interrupt_pending_ = true;
        }
        ier_ = value & 0x0f;
      }
      break;
    case kIir:
      fcr_ = value;
      if (value & 0x02) {
        rx_.clear();
      }
      break;
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      mcr_ = value & 0x1f;
      break;
    case kScr:
      scr_ = value;
      break;
    default:
      break;  // LSR and MSR are read-only
  }
}

uint8_t Serial::interrupt_identification() const {
  if ((ier_ & kIerRxAvailable) && !rx_.empty()) {
    return kIirRxAvailable;
  }
  if ((ier_ & kIerThrEmpty) && thr_empty_interrupt_pending_) {
    return kIirThrEmpty;
  }
  return kIirNoInterrupt;
}

void Serial::update_irq() {
  const bool want = interrupt_identification() != kIirNoInterrupt;
  if (want != irq_asserted_ && irq_) {
    irq_asserted_ = want;
    (void)irq_->set_level(want);
  }
}

}  // namespace kumo::devices
