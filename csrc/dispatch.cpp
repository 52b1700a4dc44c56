// Which copy of the kernels runs: the widest CPU level that this build compiled and that this
// CPU and its operating system support. The CPU's features come from cpuid through the
// compiler's __builtin_cpu_supports, which also checks (with xgetbv) that the operating
// system saves the AVX and AVX-512 registers, so a level it reports can run.
#include "dispatch.h"

#include <atomic>

namespace dlx {

// Each compiled level's table (csrc/kernels/table.cpp); CMake defines DLX_LEVEL_<NAME> for
// each level it compiles.
#ifdef DLX_LEVEL_BASELINE
namespace baseline { extern const Kernels kernel_table; }
#endif
#ifdef DLX_LEVEL_AVX2
namespace avx2 { extern const Kernels kernel_table; }
#endif
#ifdef DLX_LEVEL_AVX512
namespace avx512 { extern const Kernels kernel_table; }
#endif

namespace {

bool has(const char* feature) {
  for (const auto& [name, present] : cpu_features()) {
    if (name == feature) return present;
  }
  return false;
}

[[maybe_unused]] bool runs_avx2() { return has("avx") && has("avx2") && has("fma"); }

[[maybe_unused]] bool runs_avx512() {
  return runs_avx2() && has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl");
}

struct Level {
  const char* name;
  const Kernels* table;
  bool (*runs)();
};

// The compiled levels, lowest first.
std::vector<Level> levels() {
  std::vector<Level> all;
#ifdef DLX_LEVEL_BASELINE
  all.push_back({"baseline", &baseline::kernel_table, [] { return true; }});
#endif
#ifdef DLX_LEVEL_AVX2
  all.push_back({"avx2", &avx2::kernel_table, &runs_avx2});
#endif
#ifdef DLX_LEVEL_AVX512
  all.push_back({"avx512", &avx512::kernel_table, &runs_avx512});
#endif
  return all;
}

const Kernels* widest_supported() {
  const Kernels* best = nullptr;
  for (const Level& level : levels()) {
    if (level.runs()) best = level.table;
  }
  if (!best) {
    fail("this build of dlx has no kernels this CPU can run (it has: ", levels().back().name,
         "); it was built for another machine's CPU (DLX_NATIVE_ARCH): reinstall dlx from source "
         "without -Ccmake.define.DLX_NATIVE_ARCH=ON");
  }
  return best;
}

std::atomic<const Kernels*>& chosen() {
  static std::atomic<const Kernels*> table{widest_supported()};
  return table;
}

}  // namespace

template <>
const KernelSet<float>& kernels<float>() {
  return chosen().load(std::memory_order_relaxed)->f32;
}

template <>
const KernelSet<double>& kernels<double>() {
  return chosen().load(std::memory_order_relaxed)->f64;
}

std::vector<std::pair<std::string, bool>> cpu_features() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return {{"sse2", __builtin_cpu_supports("sse2")},
          {"sse3", __builtin_cpu_supports("sse3")},
          {"ssse3", __builtin_cpu_supports("ssse3")},
          {"sse4.1", __builtin_cpu_supports("sse4.1")},
          {"sse4.2", __builtin_cpu_supports("sse4.2")},
          {"popcnt", __builtin_cpu_supports("popcnt")},
          {"avx", __builtin_cpu_supports("avx")},
          {"avx2", __builtin_cpu_supports("avx2")},
          {"fma", __builtin_cpu_supports("fma")},
          {"avx512f", __builtin_cpu_supports("avx512f")},
          {"avx512bw", __builtin_cpu_supports("avx512bw")},
          {"avx512dq", __builtin_cpu_supports("avx512dq")},
          {"avx512vl", __builtin_cpu_supports("avx512vl")}};
#else
  return {};
#endif
}

std::vector<std::string> compiled_levels() {
  std::vector<std::string> names;
  for (const Level& level : levels()) names.emplace_back(level.name);
  return names;
}

std::vector<std::string> supported_levels() {
  std::vector<std::string> names;
  for (const Level& level : levels()) {
    if (level.runs()) names.emplace_back(level.name);
  }
  return names;
}

void set_level(const std::string& name) {
  for (const Level& level : levels()) {
    if (level.name != name) continue;
    if (!level.runs()) fail("this CPU cannot run the ", name, " kernels");
    chosen().store(level.table);
    return;
  }
  fail("this build of dlx has no ", name, " kernels");
}

std::string current_level() { return chosen().load()->level; }

namespace {
std::atomic<ConvRoute> forced_route{ConvRoute::planned};
}  // namespace

ConvRoute conv_route() { return forced_route.load(std::memory_order_relaxed); }
void set_conv_route(ConvRoute route) { forced_route.store(route); }

}  // namespace dlx
