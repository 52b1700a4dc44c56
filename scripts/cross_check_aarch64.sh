#!/usr/bin/env bash
# Compiles dlx's C++ for aarch64 with Debian's cross compiler (g++-aarch64-linux-gnu), a
# compile-only check that the kernels, the dispatcher and the bindings build there; on aarch64
# only the baseline level is compiled, and the vector extensions map onto NEON.
#
#   bash scripts/cross_check_aarch64.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c "import pybind11" 2>/dev/null \
  || { echo "the aarch64 check needs pybind11's headers: pip install pybind11" >&2; exit 1; }
cxx=aarch64-linux-gnu-g++
out=build/aarch64-check
mkdir -p "$out"
python3 - "$out/build_info.h" <<'PY'
import sys
text = open("csrc/build_info.h.in").read()
for key, value in {"CMAKE_CXX_COMPILER_ID": "GNU", "CMAKE_CXX_COMPILER_VERSION": "cross",
                   "DLX_REPORTED_FLAGS": "-O3", "DLX_OPENMP_REPORT": "OpenMP",
                   "DLX_NATIVE_REPORT": "false",
                   "DLX_LEVEL_FLAGS_REPORT": '{"baseline", ""}, '}.items():
    text = text.replace(f"@{key}@", value)
open(sys.argv[1], "w").write(text)
PY
flags=(-std=c++17 -O3 -fopenmp -fPIC -Wall -Icsrc -I"$out"
       -I"$(python3 -c 'import scipy_openblas32; print(scipy_openblas32.get_include_dir())')")
for source in csrc/kernels/*.cpp; do
  echo "$cxx -c $source"
  "$cxx" "${flags[@]}" -DDLX_CPU_LEVEL=baseline -c "$source" -o "$out/$(basename "$source").o"
done
for source in csrc/*.cpp; do
  echo "$cxx -c $source"
  "$cxx" "${flags[@]}" -DDLX_LEVEL_BASELINE -c "$source" -o "$out/$(basename "$source").o" \
    $(python3 -m pybind11 --includes)
done
file "$out"/*.o | sed 's/, with debug_info//'
# The register tile of the shifted kernel: 32 NEON registers give the 8 x 3 tile.
grep -q "fmla" <(aarch64-linux-gnu-objdump -d "$out/conv_shifted.cpp.o") \
  || { echo "no NEON multiply-adds in the aarch64 convolution" >&2; exit 1; }
echo "aarch64: compiled, with NEON multiply-adds in the convolution"
