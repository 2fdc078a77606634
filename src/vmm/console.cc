#include "vmm/console.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kumo::vmm {
namespace {

constexpr uint8_t kEscapeKey = 0x01;  // Ctrl-A
constexpr uint8_t kQuitKey = 'x';

void write_all(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;  // a closed or full console drops output rather than stalling the guest
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

}  // namespace

Result<std::unique_ptr<Console>> Console::open(const ConsoleConfig& config) {
  std::unique_ptr<Console> c(new Console(config.kind));
  switch (config.kind) {
    case ConsoleConfig::Kind::kStdio:
      c->output_fd_ = STDOUT_FILENO;
      c->input_fd_ = STDIN_FILENO;
      if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &c->saved_termios_) == 0) {
        termios raw = c->saved_termios_;
        ::cfmakeraw(&raw);
        raw.c_oflag |= OPOST | ONLCR;  // keep "\n" -> "\r\n" for guest output
        if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
          c->raw_terminal_ = true;
        }
      }
      break;
    case ConsoleConfig::Kind::kFile:
      c->owned_output_ = UniqueFd(
          ::open(config.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
      if (!c->owned_output_) {
        return make_error(ErrorKind::kInvalidInput, errno,
                          fmt::format("console file '{}' cannot be opened", config.path));
      }
      c->output_fd_ = c->owned_output_.get();
      break;
    case ConsoleConfig::Kind::kSocket: {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      if (config.path.empty() || config.path.size() >= sizeof(addr.sun_path)) {
        return invalid_input("console socket path '{}' is empty or longer than {} bytes",
                             config.path, sizeof(addr.sun_path) - 1);
      }
      std::memcpy(addr.sun_path, config.path.c_str(), config.path.size() + 1);
      c->listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!c->listener_) {
        return host_error("creating the console socket");
      }
      struct stat st {};
      if (::lstat(config.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
        ::unlink(config.path.c_str());  // a stale socket from an earlier run
      }
      if (::bind(c->listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
          ::listen(c->listener_.get(), 1) != 0) {
        return make_error(ErrorKind::kInvalidInput, errno,
                          fmt::format("console socket '{}' cannot be created", config.path));
      }
      c->socket_path_ = config.path;
      break;
    }
    case ConsoleConfig::Kind::kNone:
    case ConsoleConfig::Kind::kVirtio:
      break;
  }
  return c;
}

Console::~Console() {
  if (raw_terminal_) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios_);
  }
  if (!socket_path_.empty()) {
    ::unlink(socket_path_.c_str());
  }
}

void Console::write(std::span<const uint8_t> bytes) {
  std::lock_guard lock(write_mutex_);
  if (kind_ == ConsoleConfig::Kind::kSocket) {
    if (client_) {
      (void)::send(client_.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    return;
  }
  if (output_fd_ >= 0) {
    write_all(output_fd_, bytes);
  }
}

std::vector<int> Console::poll_fds() const {
  std::vector<int> fds;
  if (kind_ == ConsoleConfig::Kind::kStdio && !input_eof_) {
    fds.push_back(input_fd_);
  }
  if (listener_) {
    fds.push_back(listener_.get());
  }
  if (client_) {
    fds.push_back(client_.get());
  }
  return fds;
}

Console::InputResult Console::on_readable(int fd) {
  InputResult result;
  if (listener_ && fd == listener_.get()) {
    UniqueFd accepted(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (accepted) {
      std::lock_guard lock(write_mutex_);
      client_ = std::move(accepted);  // a new client replaces the old one
    }
    return result;
  }
  uint8_t buf[512];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n <= 0) {
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      return result;
    }
    if (client_ && fd == client_.get()) {
      std::lock_guard lock(write_mutex_);
      client_.reset();
    } else {
      input_eof_ = true;
    }
    return result;
  }
  std::span<const uint8_t> in(buf, static_cast<size_t>(n));
  if (raw_terminal_) {
    filter_escape(in, result);
  } else {
    result.to_guest.assign(in.begin(), in.end());
  }
  return result;
}

void Console::filter_escape(std::span<const uint8_t> in, InputResult& out) {
  for (uint8_t b : in) {
    if (escape_pending_) {
      escape_pending_ = false;
      if (b == kQuitKey) {
        out.quit = true;
        return;
      }
      out.to_guest.push_back(b == kEscapeKey ? kEscapeKey : b);
      continue;
    }
    if (b == kEscapeKey) {
      escape_pending_ = true;
      continue;
    }
    out.to_guest.push_back(b);
  }
}

}  // namespace kumo::vmm
