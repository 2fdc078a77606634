#include "base/cpu_set.h"

#include <sched.h>

#include <algorithm>
#include <charconv>

namespace kumo {
namespace {

CpuList g_worker_cpus;  // written once at start-up, before worker threads exist

bool parse_cpu(std::string_view s, unsigned& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && out <= kMaxCpu;
}

}  // namespace

Result<CpuList> parse_cpu_list(std::string_view text, std::string_view option) {
  auto bad = [&] {
    return invalid_input("{}: '{}' is not a CPU list (e.g. 0-3,6; CPUs 0..{})", option, text,
                         kMaxCpu);
  };
  if (text.empty()) return bad();
  CpuList cpus;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    unsigned first = 0, last = 0;
    if (dash == std::string_view::npos) {
      if (!parse_cpu(item, first)) return bad();
      last = first;
    } else if (!parse_cpu(item.substr(0, dash), first) ||
               !parse_cpu(item.substr(dash + 1), last) || last < first) {
      return bad();
    }
    for (unsigned c = first; c <= last; ++c) cpus.push_back(c);
    start = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

Status check_cpus_allowed(const CpuList& cpus, std::string_view option) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    return host_error("sched_getaffinity");
  }
  for (unsigned c : cpus) {
    if (!CPU_ISSET(c, &allowed)) {
      CpuList mine;
      for (unsigned m = 0; m <= kMaxCpu; ++m) {
        if (CPU_ISSET(m, &allowed)) mine.push_back(m);
      }
      return invalid_input("{}: CPU {} is not available to kumo (allowed: {})", option, c,
                           format_cpu_list(mine));
    }
  }
  return {};
}

std::string format_cpu_list(const CpuList& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

Status pin_thread(pthread_t thread, const CpuList& cpus) {
  if (cpus.empty()) return {};
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c : cpus) CPU_SET(c, &set);
  if (const int e = ::pthread_setaffinity_np(thread, sizeof(set), &set); e != 0) {
    return host_error_errno(e, "pinning a thread to CPUs {}", format_cpu_list(cpus));
  }
  return {};
}

void set_worker_cpus(CpuList cpus) { g_worker_cpus = std::move(cpus); }

const CpuList& worker_cpus() { return g_worker_cpus; }

}  // namespace kumo
