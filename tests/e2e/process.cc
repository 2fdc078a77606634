#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <utility>

extern char** environ;

namespace kumo::test {
namespace {

int64_t ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result_.err = "spawn failed";
    return;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    result_.err = "spawn failed";
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result_.err = "spawn failed";
    return;
  }
  pid_ = pid;
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      out_fd_(std::exchange(other.out_fd_, -1)),
      err_fd_(std::exchange(other.err_fd_, -1)),
      result_(std::move(other.result_)) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

bool ChildProcess::pump(int wait_ms) {
  if (out_fd_ < 0 && err_fd_ < 0) {
    return false;
  }
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  ::poll(fds, 2, wait_ms);
  char buf[4096];
  int* fd[2] = {&out_fd_, &err_fd_};
  std::string* sink[2] = {&result_.out, &result_.err};
  for (int i = 0; i < 2; ++i) {
    if (*fd[i] >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = ::read(*fd[i], buf, sizeof(buf));
      if (n > 0) {
        sink[i]->append(buf, static_cast<size_t>(n));
      } else {
        ::close(*fd[i]);
        *fd[i] = -1;
      }
    }
  }
  return out_fd_ >= 0 || err_fd_ >= 0;
}

bool ChildProcess::wait_for_stdout(const std::string& needle, int timeout_ms, size_t count) {
  auto found = [&] {
    size_t n = 0;
    for (size_t at = result_.out.find(needle); at != std::string::npos && n < count;
         at = result_.out.find(needle, at + needle.size())) {
      ++n;
    }
    return n == count;
  };
  const auto start = std::chrono::steady_clock::now();
  while (!found()) {
    if (ms_since(start) >= timeout_ms || !pump(20)) {
      return found();
    }
  }
  return true;
}

void ChildProcess::send_signal(int signal) {
  if (pid_ > 0) {
    ::kill(pid_, signal);
  }
}

ProcessResult ChildProcess::finish(int timeout_ms, int signal_after_ms, int signal) {
  if (pid_ <= 0) {
    return result_;
  }
  const auto start = std::chrono::steady_clock::now();
  bool signalled = false;
  while (true) {
    const int64_t elapsed = ms_since(start);
    if (signal_after_ms >= 0 && !signalled && elapsed >= signal_after_ms) {
      ::kill(pid_, signal);
      signalled = true;
    }
    if (elapsed >= timeout_ms) {
      ::kill(pid_, SIGKILL);
      result_.timed_out = true;
      break;
    }
    if (!pump(20)) {
      break;
    }
  }
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  result_.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result_;
}

ProcessResult run_process(const std::vector<std::string>& argv, int timeout_ms,
                          int signal_after_ms, int signal) {
  return ChildProcess(argv).finish(timeout_ms, signal_after_ms, signal);
}

}  // namespace kumo::test
