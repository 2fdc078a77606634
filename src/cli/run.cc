// kumo run: boot one virtual machine in this process (the VMM).

#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "base/cpu_set.h"
#include "base/size_parse.h"
#include "cli/verbs.h"
#include "vmm/vm.h"

namespace kumo::cli {
namespace {

Result<vmm::ConsoleConfig> parse_console(const std::string& spec) {
  vmm::ConsoleConfig c;
  if (spec == "stdio") {
    c.kind = vmm::ConsoleConfig::Kind::kStdio;
  } else if (spec == "none") {
    c.kind = vmm::ConsoleConfig::Kind::kNone;
  } else if (spec == "virtio") {
    c.kind = vmm::ConsoleConfig::Kind::kVirtio;
  } else if (spec.starts_with("file:") && spec.size() > 5) {
    c.kind = vmm::ConsoleConfig::Kind::kFile;
    c.path = spec.substr(5);
  } else if (spec.starts_with("socket:") && spec.size() > 7) {
    c.kind = vmm::ConsoleConfig::Kind::kSocket;
    c.path = spec.substr(7);
  } else {
    return invalid_input("--console '{}' is not stdio, virtio, none, file:PATH or socket:PATH",
                         spec);
  }
  return c;
}

int report(const Error& e) {
  fmt::print(stderr, "kumo run: {}\n", e.to_string());
  return e.kind == ErrorKind::kInvalidInput ? vmm::kExitStatusMisuse : vmm::kExitStatusVmFailure;
}

}  // namespace

int run_main(int argc, char** argv) {
  const auto process_start = std::chrono::steady_clock::now();
  vmm::block_vmm_signals();
  CLI::App app{"Boot a virtual machine in this process. The guest's serial console is on "
               "stdio by default (on a terminal, Ctrl-A x quits). Exit status: the value the "
               "guest writes to the debug-exit port 0xf4; 0 on guest power-off; 1 if the VM "
               "fails (triple fault, emulation failure) or the host cannot run it (no /dev/kvm access); "
               "2 for invalid options or images, or a disk or tap the user may not use; "
               "128+N when stopped by signal N.",
               "kumo run"};
  vmm::VmConfig config;
  std::string memory = "128M";
  std::string console = "stdio";
  std::string on_reboot = "exit";
  std::string memory_backend = "anon";
  std::string initrd;
  std::string vcpu_cpus;
  std::string io_cpus;
  app.add_option("--kernel", config.kernel_path,
                 "guest kernel: PVH ELF (vmlinux, the test guest) or bzImage")
      ->required();
  app.add_option("--initrd", initrd, "initial ramdisk loaded for the kernel");
  app.add_option("--cmdline", config.cmdline, "kernel command line");
  app.add_option("--memory", memory, "guest RAM, e.g. 128M, 2G (default 128M)");
  app.add_option("--memory-backend", memory_backend,
                 "what backs guest RAM on the host: anon | memfd | hugetlb (default anon). "
                 "anon: private memory that gets transparent huge pages where the host's THP "
                 "mode is always or madvise; memfd: shared memory (a memfd per RAM region), "
                 "huge pages only if the host enables THP for shmem; hugetlb: reserved 2 MiB "
                 "hugetlb pages, --memory a multiple of 2M and enough free pages in "
                 "vm.nr_hugepages (else exit status 2)")
      ->check(CLI::IsMember({"anon", "memfd", "hugetlb"}));
  app.add_option("--cpus", config.vcpus, "number of vCPUs (default 1)");
  app.add_option("--vcpu-cpus", vcpu_cpus,
                 "host CPUs the vCPU threads run on, e.g. 2-3 (default: any)");
  app.add_option("--io-cpus", io_cpus,
                 "host CPUs for everything else: device workers, io_uring and I/O threads, "
                 "the main thread, e.g. 1 (default: any)");
  app.add_option("--console", console,
                 "stdio | virtio | file:PATH | socket:PATH | none (default stdio); virtio is a "
                 "virtio-console on stdio");
  app.add_option("--disk", config.disks,
                 "virtio-blk disk: path=FILE[,readonly=on][,cache=none|writeback]"
                 "[,io=io_uring|sync][,iops=N][,iops_burst=N][,bw=SIZE][,bw_burst=SIZE]"
                 "[,serial=ID][,l2-cache-size=SIZE][,refcount-cache-size=SIZE][,queues=N]"
                 "[,poll-us=N] (repeatable; raw or qcow2; queues: request queues 1-16; poll-us: "
                 "busy-polling window, default 50, 0 off)");
  app.add_option("--net", config.nets,
                 "virtio-net NIC: tap=NAME | bridge=BR[,tap=NAME] [,mac=52:54:00:..]"
                 "[,queues=N][,bw=SIZE][,bw_burst=SIZE][,ops=N][,ops_burst=N][,poll-us=N] "
                 "(repeatable; queues: queue pairs 1-16, a multi-queue tap)");
  app.add_flag("--rng", config.rng, "virtio-rng device fed by the host's getrandom()");
  app.add_option("--on-reboot", on_reboot, "what a guest reboot does: restart | exit (default exit)")
      ->check(CLI::IsMember({"restart", "exit"}));
  app.add_flag("!--no-boot-time", config.log_boot_time,
               "do not log the boot-timer port (0x440) on stderr");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "kumo run: {}\n", e.what());
    return vmm::kExitStatusMisuse;
  }

  auto memory_bytes = parse_size_bytes(memory);
  if (!memory_bytes) {
    return report(memory_bytes.error().with_context("--memory"));
  }
  config.memory_bytes = *memory_bytes;
  config.memory_backend = memory_backend == "memfd"     ? memory::Backend::kMemfd
                          : memory_backend == "hugetlb" ? memory::Backend::kHugetlb
                                                        : memory::Backend::kAnonymous;
  if (config.memory_backend == memory::Backend::kHugetlb &&
      config.memory_bytes % memory::kHugePageBytes != 0) {
    return report(invalid_input("--memory-backend hugetlb: --memory {} is not a whole number "
                                 "of 2 MiB huge pages",
                                 memory)
                      .value());
  }
  if (!initrd.empty()) {
    config.initrd_path = initrd;
  }
  auto console_config = parse_console(console);
  if (!console_config) {
    return report(console_config.error());
  }
  config.console = *console_config;
  config.on_reboot = on_reboot == "restart" ? vmm::OnReboot::kRestart : vmm::OnReboot::kExit;
  for (auto [text, option, list] : {std::tuple{&vcpu_cpus, "--vcpu-cpus", &config.vcpu_cpus},
                                    std::tuple{&io_cpus, "--io-cpus", &config.io_cpus}}) {
    if (text->empty()) {
      continue;
    }
    auto cpus = parse_cpu_list(*text, option);
    if (!cpus) {
      return report(cpus.error());
    }
    if (auto allowed = check_cpus_allowed(*cpus, option); !allowed) {
      return report(allowed.error());
    }
    *list = std::move(*cpus);
  }
  // Threads started from here on (workers, I/O threads, io_uring's) inherit this; vCPU
  // threads move to config.vcpu_cpus themselves; workers started by a vCPU thread use
  // worker_cpus().
  if (auto pinned = pin_thread(pthread_self(), config.io_cpus); !pinned) {
    return report(pinned.error());
  }
  set_worker_cpus(config.io_cpus);

  auto vm = vmm::Vm::create(config, process_start);
  if (!vm) {
    return report(vm.error());
  }
  while (true) {
    auto exit = (*vm)->run();
    if (!exit) {
      return report(exit.error());
    }
    if (exit->kind == vmm::VmExit::Kind::kReset && config.on_reboot == vmm::OnReboot::kRestart) {
      fmt::print(stderr, "kumo: {}; restarting\n", exit->detail);
      if (Status reset = (*vm)->reset(); !reset) {
        return report(reset.error().with_context("resetting the VM"));
      }
      continue;
    }
    if (exit->kind != vmm::VmExit::Kind::kGuestExit) {
      fmt::print(stderr, "kumo: {}\n", exit->detail);
    }
    return exit->status;
  }
}

}  // namespace kumo::cli
