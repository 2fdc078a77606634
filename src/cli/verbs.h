#pragma once
// Entry points of the CLI verbs; argv[0] is the verb name. Return the process exit status
// (0 success, 2 misuse or invalid input, 1 other failure).

namespace kumo::cli {

int run_main(int argc, char** argv);
int img_main(int argc, char** argv);

}  // namespace kumo::cli
