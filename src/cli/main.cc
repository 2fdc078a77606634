// kumo: one binary, one verb per subcommand (kvmtool builtins). Each verb lives in its own
// file and exposes `int <verb>_main(int argc, char** argv)` with argv[0] == verb name.

#include <cstdio>
#include <cstring>
#include <string_view>

#include "cli/verbs.h"

namespace {

struct Verb {
  const char* name;
  int (*main)(int argc, char** argv);
  const char* summary;
};

constexpr Verb kVerbs[] = {
    {"run", kumo::cli::run_main, "boot a virtual machine (the VMM, one process per VM)"},
    {"img", kumo::cli::img_main, "create, inspect, check, convert and benchmark disk images"},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: kumo <verb> [options]\n\nverbs:\n");
  for (const Verb& v : kVerbs) {
    std::fprintf(out, "  %-8s %s\n", v.name, v.summary);
  }
  std::fprintf(out, "\n'kumo <verb> --help' describes each verb.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const std::string_view verb = argv[1];
  if (verb == "--help" || verb == "-h" || verb == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const Verb& v : kVerbs) {
    if (verb == v.name) {
      return v.main(argc - 1, argv + 1);
    }
  }
  std::fprintf(stderr, "kumo: unknown verb '%s' (see 'kumo --help')\n", argv[1]);
  return 2;
}
