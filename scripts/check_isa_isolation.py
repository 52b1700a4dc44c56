"""Checks that only the AVX2 and AVX-512 copies of the kernels use instructions above the
baseline x86-64, in an extension built with its symbols (not stripped):

    python scripts/check_isa_isolation.py build/asan/_core.cpython-311-x86_64-linux-gnu.so

Every function whose code touches a ymm or zmm register, or an AVX-512 mask register, must
belong to a level's namespace (dlx::avx2::, dlx::avx512::). A library template that a level
instantiated and the linker kept in place of the baseline's copy, or a file outside
csrc/kernels/ compiled with wider flags, fails the check: either would run the wider
instructions on a CPU that chose the baseline kernels.
"""

from __future__ import annotations

import re
import subprocess
import sys

FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")
WIDE = re.compile(r"%[yz]mm\d|%k[1-7]\b")
LEVELS = ("dlx::avx2::", "dlx::avx512::")


def wide_functions(path: str) -> dict[str, int]:
    """Function name -> number of its instructions on wide or mask registers."""
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-C", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[str, int] = {}
    function = None
    for line in listing.splitlines():
        if match := FUNCTION.match(line):
            function = match.group(1)
        elif function is not None and WIDE.search(line):
            counts[function] = counts.get(function, 0) + 1
    return counts


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    symbols = subprocess.run(["nm", path], capture_output=True, text=True).stdout
    if "avx512" not in symbols:
        sys.exit(f"{path} has no symbols of the avx512 kernels: build it without stripping")
    counts = wide_functions(path)
    inside = {name: n for name, n in counts.items() if any(level in name for level in LEVELS)}
    outside = {name: n for name, n in counts.items() if name not in inside}
    print(f"{len(inside)} functions of the avx2 and avx512 kernels use wide registers")
    for name, n in sorted(outside.items()):
        print(f"outside the levels' kernels: {name} ({n} instructions)")
    if outside or not inside:
        return 1
    print("no other function uses them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
