#pragma once
// Test helpers: run a command with a time limit and capture its output, in the foreground
// (run_process) or in the background while the test does other things (ChildProcess).

#include <sys/types.h>

#include <string>
#include <vector>

namespace kumo::test {

struct ProcessResult {
  int exit_status = -1;  // exit code, or 128+signal if killed by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
};

// A child process with stdin from /dev/null and stdout/stderr captured. The destructor kills
// (SIGKILL) and reaps a child that is still running, so a failing test leaves nothing behind.
// Move-only; not thread-safe.
class ChildProcess final {
 public:
  // Spawns argv[0] (a path, not searched in PATH). On failure, running() is false and
  // finish() returns exit_status -1 with err "spawn failed".
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] bool running() const { return pid_ > 0; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  // Reads output until stdout contains `needle` `count` times (true) or `timeout_ms` passed
  // or both pipes closed (false).
  bool wait_for_stdout(const std::string& needle, int timeout_ms, size_t count = 1);
  // Sends `signal` to the child if it is still running.
  void send_signal(int signal);
  // Reads until the child closes its output, SIGKILLing it after `timeout_ms`; then reaps it.
  // If `signal_after_ms` >= 0, `signal` is sent at that time (counted from this call).
  ProcessResult finish(int timeout_ms, int signal_after_ms = -1, int signal = 0);

 private:
  // Reads whatever is available, waiting up to `wait_ms`. False when both pipes are closed.
  bool pump(int wait_ms);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  ProcessResult result_;
};

// Runs argv with stdin from /dev/null. After `timeout_ms` the child gets SIGKILL.
// If `signal_after_ms` >= 0, `signal` is sent to the child at that time.
ProcessResult run_process(const std::vector<std::string>& argv, int timeout_ms = 20000,
                          int signal_after_ms = -1, int signal = 0);

}  // namespace kumo::test
