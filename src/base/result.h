#pragma once
// Result<T>: the return type of every fallible function (style.md "Errors and resources").

#include <cerrno>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <tl/expected.hpp>

namespace kumo {

// Who is at fault: the host (a syscall failed), the guest (it wrote something malformed),
// or the user (bad option, bad file). The CLI maps kInvalidInput to exit status 2.
enum class ErrorKind { kHost, kGuest, kInvalidInput };

struct Error {
  ErrorKind kind = ErrorKind::kHost;
  int errno_value = 0;  // set when the host failed with an errno
  std::string message;  // one line, names the problem

  // Prefixes context, e.g. error.with_context("loading kernel") -> "loading kernel: ...".
  [[nodiscard]] Error with_context(std::string_view context) const {
    return Error{kind, errno_value, fmt::format("{}: {}", context, message)};
  }
  [[nodiscard]] std::string to_string() const;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> make_error(ErrorKind kind, int errno_value, std::string message) {
  return tl::unexpected<Error>(Error{kind, errno_value, std::move(message)});
}

// A failed host call; reads errno at the point of the call.
template <typename... Args>
tl::unexpected<Error> host_error(fmt::format_string<Args...> f, Args&&... args) {
  const int saved = errno;
  return make_error(ErrorKind::kHost, saved, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
tl::unexpected<Error> host_error_errno(int errno_value, fmt::format_string<Args...> f,
                                       Args&&... args) {
  return make_error(ErrorKind::kHost, errno_value, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
tl::unexpected<Error> guest_error(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(ErrorKind::kGuest, 0, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
tl::unexpected<Error> invalid_input(fmt::format_string<Args...> f, Args&&... args) {
  return make_error(ErrorKind::kInvalidInput, 0, fmt::format(f, std::forward<Args>(args)...));
}

namespace detail {
template <typename T>
T take_value(tl::expected<T, Error>&& r) {
  return std::move(*r);
}
inline void take_value(tl::expected<void, Error>&&) {}
}  // namespace detail

}  // namespace kumo

// Propagates an error: KUMO_TRY(status_expr); or auto x = KUMO_TRY(result_expr);
#define KUMO_TRY(expr)                                           \
  __extension__({                                               \
    auto&& kumo_try_result_ = (expr);                            \
    if (!kumo_try_result_) {                                     \
      return tl::unexpected<::kumo::Error>(                      \
          std::move(kumo_try_result_).error());                  \
    }                                                            \
    ::kumo::detail::take_value(std::move(kumo_try_result_));     \
  })
