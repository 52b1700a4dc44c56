// Every file in csrc/kernels/ is compiled once per CPU level (see CMakeLists.txt): baseline
// x86-64 (SSE2), AVX2 + FMA (x86-64-v3) and AVX-512 (x86-64-v4), and only these files are
// compiled with flags above the baseline. DLX_CPU_LEVEL names the level being compiled, and
// each copy of the kernels lives in the namespace dlx::DLX_CPU_LEVEL (dlx::avx2, ...), so that
// the three copies are different functions to the linker. csrc/dispatch.cpp picks one copy's
// table (table.cpp) at import, by what the CPU offers.
#pragma once

#ifndef DLX_CPU_LEVEL
#error "csrc/kernels/ is compiled once per CPU level, with DLX_CPU_LEVEL defined (CMakeLists.txt)"
#endif

#include "common.h"
#include "openmp.h"
