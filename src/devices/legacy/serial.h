#pragma once
// Serial: a 16550A UART (COM1 at 0x3f8, IRQ 4), the VM's console.
//
// Registers per the National Semiconductor PC16550D datasheet: RBR/THR, IER, IIR/FCR, LCR,
// MCR, LSR, MSR, SCR, and DLL/DLM when LCR.DLAB is set. Transmitted bytes go straight to
// the output sink (the UART never holds them back, so THR is always empty). Received bytes
// are queued (bounded FIFO; excess is dropped with the overrun bit) by the console thread.
// The IRQ line is level: asserted while an enabled interrupt condition is pending.
//
// Thread-safety: all methods lock; register accesses come from vCPU threads, input from the
// console thread. Every register value is guest-controlled and any value is accepted.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "devices/bus.h"
#include "devices/interrupt.h"

namespace kumo::devices {

class Serial final : public BusDevice {
 public:
  using OutputSink = std::function<void(std::span<const uint8_t>)>;
  static constexpr uint16_t kCom1Port = 0x3f8;
  static constexpr uint32_t kCom1Irq = 4;
  static constexpr size_t kRxFifoBytes = 4096;

  Serial(OutputSink sink, std::shared_ptr<InterruptLine> irq);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Power-on state: registers to their defaults, receive FIFO emptied, IRQ deasserted.
  void reset();

  // Queues bytes typed at the console; returns how many were accepted.
  size_t enqueue_input(std::span<const uint8_t> bytes);

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  [[nodiscard]] uint8_t interrupt_identification() const;
  void update_irq();

  std::mutex mutex_;
  OutputSink sink_;
  std::shared_ptr<InterruptLine> irq_;
  std::deque<uint8_t> rx_;
  bool irq_asserted_ = false;
  bool thr_empty_interrupt_pending_ = false;
  bool overrun_ = false;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0x03;  // 8N1
  uint8_t mcr_ = 0x08;  // OUT2
  uint8_t scr_ = 0;
  uint8_t fcr_ = 0;
  uint8_t dll_ = 0x0c;  // 9600 baud
  uint8_t dlm_ = 0;
};

}  // namespace kumo::devices
