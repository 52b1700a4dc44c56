#!/usr/bin/env bash
# Runs the kernel tests against dlx built for older instruction sets than this machine's.
#
#   bash scripts/other_isas.sh                  # tests/ops on an AVX2 and a baseline build
#   bash scripts/other_isas.sh tests/hardening  # other tests (paths from the root)
#
# A normal build targets the building machine (-march=native), and the shifted convolution's
# kernel sizes its register tile to that machine's vectors (shifted_kernel.h): an AVX-512
# machine would never compile, let alone test, the 16-register tile that AVX2 and SSE
# machines run. Each build here goes into its own virtual environment under build/.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=()
for target in "${@:-tests/ops}"; do targets+=("../$target"); done

# name, then the compiler flags that select the instruction set
for build in "avx2:-march=haswell" "baseline:"; do
  name=${build%%:*}
  flags=${build#*:}
  venv=build/$name-venv
  python3 -m venv "$venv"
  py="$PWD/$venv/bin/python"
  "$py" -m pip install -q --upgrade pip
  "$py" -m pip install -q scikit-build-core pybind11 scipy-openblas32 ninja
  "$py" -m pip install -q --no-build-isolation -Cbuild-dir=build/$name \
    -Ccmake.define.DLX_NATIVE_ARCH=OFF "-Ccmake.define.CMAKE_CXX_FLAGS=$flags" ".[test]"
  echo "== $name build (flags: ${flags:-none})"
  (cd build && "$py" -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider -q "${targets[@]}")
done
