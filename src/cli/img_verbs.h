#pragma once
// Entry points of the `kumo img` commands that live outside img.cc; argv[0] is the command.

namespace kumo::cli::img {

int convert_main(int argc, char** argv);
int commit_main(int argc, char** argv);
int rebase_main(int argc, char** argv);
int compare_main(int argc, char** argv);
int bench_main(int argc, char** argv);

}  // namespace kumo::cli::img
