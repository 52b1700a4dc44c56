// OpenMP's runtime functions, or their one-thread meaning in a build without OpenMP (Apple
// Clang has none by default): the kernels' `#pragma omp` lines are then ignored and every
// loop runs on the calling thread.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#else
inline int omp_get_max_threads() { return 1; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_thread_num() { return 0; }
inline void omp_set_num_threads(int) {}
#endif
