#pragma once
// Host CPU sets for placing threads (sched_setaffinity), in Linux's list syntax ("0-3,6",
// as in /sys/devices/system/cpu/online and taskset -c). Used by `kumo run --vcpu-cpus` and
// `--io-cpus` (Xen's cpus=, libvirt's vcpupin / emulatorpin).
//
// Thread-safety: parse/check are pure or read-only; set_worker_cpus() is meant for start-up
// (before worker threads exist); pin_*() affect only the thread named.

#include <pthread.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace kumo {

using CpuList = std::vector<unsigned>;  // sorted, unique

inline constexpr unsigned kMaxCpu = 1023;  // CPU_SETSIZE - 1

// kInvalidInput naming `option` for anything but comma-separated CPUs and ascending ranges
// of CPUs 0..kMaxCpu.
[[nodiscard]] Result<CpuList> parse_cpu_list(std::string_view text, std::string_view option);
// kInvalidInput naming `option` and the first CPU of `cpus` this process may not run on.
[[nodiscard]] Status check_cpus_allowed(const CpuList& cpus, std::string_view option);
// "0-1,4": the inverse of parse_cpu_list.
[[nodiscard]] std::string format_cpu_list(const CpuList& cpus);

// Restricts `thread` (the caller: pthread_self()) to `cpus`; an empty list leaves it alone.
[[nodiscard]] Status pin_thread(pthread_t thread, const CpuList& cpus);

// Where device worker threads (EventLoop) run: set once at start-up; empty = anywhere.
void set_worker_cpus(CpuList cpus);
[[nodiscard]] const CpuList& worker_cpus();

}  // namespace kumo
