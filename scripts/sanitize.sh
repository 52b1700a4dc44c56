#!/usr/bin/env bash
# Runs the whole test suite against dlx built with AddressSanitizer and UBSan.
#
#   bash scripts/sanitize.sh                              # the whole suite
#   bash scripts/sanitize.sh tests/ops tests/hardening    # part of it (paths from the root)
#
# dlx is built with -DDLX_SANITIZE=ON into its own virtual environment (build/asan-venv), the
# ASan runtime is preloaded (CPython itself is not instrumented), and a deliberate
# out-of-bounds read must be caught first, or the pass counts for nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=build/asan-venv
python3 -m venv "$venv"
py="$PWD/$venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q scikit-build-core pybind11 scipy-openblas32 ninja
"$py" -m pip install -q --no-build-isolation -Cbuild-dir=build/asan \
  -Ccmake.define.DLX_SANITIZE=ON ".[test]"

# libstdc++ is preloaded too: ASan's __cxa_throw interceptor needs it in place before any
# extension that throws C++ exceptions (matplotlib's) is loaded.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
# CPython's own allocations look like leaks to LeakSanitizer: leaks are not what this checks.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

echo "== canary: a deliberate heap-buffer-overflow must be caught"
if out=$("$py" -c "from dlx import _core; _core._sanitizer_canary(1)" 2>&1); then
  echo "the sanitizer did not catch the canary: this build is not instrumented" >&2
  exit 1
fi
grep -q "heap-buffer-overflow" <<<"$out" || { echo "$out" >&2; echo "unexpected canary failure" >&2; exit 1; }
echo "caught: $(grep -m1 -o 'heap-buffer-overflow.*' <<<"$out")"

echo "== the test suite under ASan + UBSan"
targets=()
for target in "${@:-tests}"; do targets+=("../$target"); done
cd build  # import dlx from the sanitized install, not from the source tree
"$py" -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider -q "${targets[@]}"
