#pragma once
// Helpers shared by the block tests: scratch directories and async drivers.

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "block/block_backend.h"

namespace kumo::block::testing {

// `len` pseudo-random bytes, the same for the same seed.
inline std::vector<uint8_t> pattern(size_t len, uint32_t seed) {
  std::vector<uint8_t> v(len);
  std::mt19937 rng(seed);
  for (auto& b : v) {
    b = static_cast<uint8_t>(rng());
  }
  return v;
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base != nullptr ? base : "/tmp") + "/kumo-block-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Waits for and reaps completions until `count` have arrived; returns them.
inline std::vector<IoCompletion> wait_completions(BlockBackend& b, size_t count) {
  std::vector<IoCompletion> all;
  IoCompletion buf[16];
  while (all.size() < count) {
    pollfd p{b.completion_fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) {
      break;
    }
    const size_t n = b.reap(buf);
    all.insert(all.end(), buf, buf + n);
  }
  return all;
}

}  // namespace kumo::block::testing

#include <sys/wait.h>

#include <array>
#include <cstdio>

namespace kumo::block::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a shell command, capturing its output.
inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    return r;
  }
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) {
    r.output.append(buf.data(), n);
  }
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline bool have_qemu_img() { return run_command("qemu-img --version").exit_code == 0; }

}  // namespace kumo::block::testing
