#pragma once
// Console: where the guest's serial console goes and where its input comes from.
//   stdio        stdout / stdin; on a terminal, stdin is put in raw mode and Ctrl-A x quits
//                (Ctrl-A Ctrl-A sends a literal Ctrl-A). The terminal is restored on exit.
//   file:PATH    output appended to PATH; no input.
//   socket:PATH  kumo listens on the unix socket PATH; one client at a time gets the
//                output and types the input (output with no client attached is dropped).
//   none         output discarded.
//
// Thread-safety: write() may be called from any vCPU thread (it serializes). poll_fds() and
// on_readable() are called by the VM's control loop only.

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include <termios.h>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/vm_config.h"

namespace kumo::vmm {

class Console final {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Console>> open(const ConsoleConfig& config);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  void write(std::span<const uint8_t> bytes);
  [[nodiscard]] std::vector<int> poll_fds() const;

  struct InputResult {
    std::vector<uint8_t> to_guest;
    bool quit = false;  // escape sequence typed
  };
  // Reads what is available on `fd` (one of poll_fds()).
  InputResult on_readable(int fd);

 private:
  explicit Console(ConsoleConfig::Kind kind) : kind_(kind) {}
  void filter_escape(std::span<const uint8_t> in, InputResult& out);

  ConsoleConfig::Kind kind_;
  std::mutex write_mutex_;
  int output_fd_ = -1;       // not owned for stdio
  UniqueFd owned_output_;    // file console
  int input_fd_ = -1;        // stdin, or the socket client
  bool input_eof_ = false;
  UniqueFd listener_;        // socket console
  UniqueFd client_;
  std::string socket_path_;
  bool raw_terminal_ = false;
  termios saved_termios_{};
  bool escape_pending_ = false;
};

}  // namespace kumo::vmm
