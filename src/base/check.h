#pragma once
// CHECK: aborts on a broken invariant of kumo itself. Never on a guest- or user-derived value.

#include <cstdio>
#include <cstdlib>

#define KUMO_CHECK(cond)                                                           \
  do {                                                                             \
    if (!(cond)) [[unlikely]] {                                                    \
      std::fprintf(stderr, "kumo: CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                         \
      std::abort();                                                                \
    }                                                                              \
  } while (0)
