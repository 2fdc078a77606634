#pragma once
// Test helper: runs a command with a time limit and captures its output.

#include <string>
#include <vector>

namespace kumo::test {

struct ProcessResult {
  int exit_status = -1;  // exit code, or 128+signal if killed by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs argv with stdin from /dev/null. After `timeout_ms` the child gets SIGKILL.
// If `signal_after_ms` >= 0, `signal` is sent to the child at that time.
ProcessResult run_process(const std::vector<std::string>& argv, int timeout_ms = 20000,
                          int signal_after_ms = -1, int signal = 0);

}  // namespace kumo::test
