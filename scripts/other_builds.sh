#!/usr/bin/env bash
# Builds dlx with Clang (with LLVM's OpenMP) and with GCC but no OpenMP (as on macOS's Apple
# Clang), each in its own virtual environment under build/, and runs the dispatch tests (every
# CPU level this machine has against the NumPy reference) and scripts/smoke.py on each:
#
#   bash scripts/other_builds.sh
#
# Needs Debian's clang and libomp-dev.
set -euo pipefail
cd "$(dirname "$0")/.."

# name, then the environment and the pip options of the build
for build in "clang|CXX=clang++|" \
             "gcc-without-openmp||-Ccmake.define.CMAKE_DISABLE_FIND_PACKAGE_OpenMP=TRUE"; do
  IFS='|' read -r name environment options <<<"$build"
  venv=build/$name-venv
  python3 -m venv "$venv"
  py="$PWD/$venv/bin/python"
  "$py" -m pip install -q --upgrade pip
  "$py" -m pip install -q scikit-build-core pybind11 scipy-openblas32 ninja pytest hypothesis
  echo "== $name build"
  env $environment "$py" -m pip install -v --no-build-isolation -Cbuild-dir=build/$name \
    $options . >"build/$name.log" 2>&1 || { tail -40 "build/$name.log"; exit 1; }
  grep -E "dlx kernels for the CPU levels|OpenMP not found|CMAKE_CXX_COMPILER_ID|The CXX compiler" \
    "build/$name.log" || true
  if [[ $name == *without-openmp ]]; then
    grep -q "OpenMP not found: dlx builds, but its kernels will run on a single thread" \
      "build/$name.log" || { echo "the build did not say it runs without OpenMP" >&2; exit 1; }
    "$py" -c "import dlx, sys; n = dlx.threads.get_num_threads(); print('threads:', n); sys.exit(n != 1)"
  fi
  (cd build && "$py" -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider -q \
     ../tests/ops/test_cpu_dispatch.py)
  for level in $("$py" -c "import dlx; print(*dlx.ops.cpu_capabilities())"); do
    (cd build && DLX_CPU_CAPABILITY=$level "$py" ../scripts/smoke.py --expect "$level" | tail -1)
  done
done
