#include <cstdio>

#include "cli/verbs.h"

namespace kumo::cli {

int run_main(int /*argc*/, char** /*argv*/) {
  std::fprintf(stderr, "kumo run: not implemented yet\n");
  return 1;
}

}  // namespace kumo::cli
