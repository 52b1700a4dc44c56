"""What this installation of dlx is and what it runs on: :func:`show_config`.

In the spirit of ``numpy.show_config()`` and ``torch.__config__.show()``: the version, the CPU
level whose kernels run (see :func:`dlx.ops.cpu_capability`) and what the CPU offers, how the
extension was built, the BLAS it calls and the thread counts.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

import numpy as np

__all__ = ["config", "show_config"]

DISTRIBUTION = "dlx-scratch"


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def config() -> dict[str, Any]:
    """The facts :func:`show_config` prints, as a dict (``kernels`` is None without the C++
    extension)."""
    from . import ops

    facts: dict[str, Any] = {
        "dlx": _version(DISTRIBUTION),
        "python": f"{platform.python_version()} ({sys.executable})",
        "numpy": np.__version__,
        "machine": platform.machine(),
        "backend": ops.backend(),
        "kernels": None,
    }
    try:
        ops._module_of("cpp")
    except ImportError as error:
        facts["kernels_error"] = str(error.__cause__ or error)
        return facts
    from .ops import _native

    core = _native._core
    facts["kernels"] = {
        "cpu_capability": core.cpu_capability(),
        "supported": list(core.supported_capabilities()),
        "compiled": list(core.compiled_capabilities()),
        "override": os.environ.get("DLX_CPU_CAPABILITY") or None,
        "cpu_features": dict(core.cpu_features()),
        "build": dict(core.build_info()),
        "blas": dict(core.blas_info()),
        "threads": core.get_num_threads(),
        "workspace_bytes": core.workspace_bytes(),
        "workspace_budget": core.workspace_budget(),
    }
    return facts


def show_config(file: TextIO | None = None) -> None:
    """Print what this dlx is and runs on (to ``file``, default stdout)."""
    facts = config()
    lines = [
        f"dlx {facts['dlx']}",
        f"  python: {facts['python']}",
        f"  numpy: {facts['numpy']}",
        f"  machine: {facts['machine']}",
        f"  ops backend: {facts['backend']}",
    ]
    kernels = facts["kernels"]
    if kernels is None:
        lines.append(f"C++ kernels: not available ({facts['kernels_error']})")
    else:
        override = kernels["override"]
        features = kernels["cpu_features"]
        build = kernels["build"]
        blas = kernels["blas"]
        lines += [
            "C++ kernels:",
            f"  cpu capability: {kernels['cpu_capability']}"
            + (f" (DLX_CPU_CAPABILITY={override})" if override else ""),
            f"  this CPU runs: {', '.join(kernels['supported'])}",
            f"  compiled for: {', '.join(kernels['compiled'])}",
            "  cpu features: "
            + (" ".join(name for name, present in features.items() if present) or "(not x86)"),
        ]
        missing = [name for name, present in features.items() if not present]
        if missing:
            lines.append(f"  cpu lacks: {' '.join(missing)}")
        lines += [
            "build:",
            f"  compiler: {build['compiler']}",
            f"  flags: {build['cxx_flags'] or '(none)'}"
            + ("  (-march=native build)" if build["native_arch"] else ""),
        ]
        lines += [
            f"  {level} kernels: {flags or '(no extra flags)'}"
            for level, flags in build["level_flags"].items()
        ]
        lines += [
            f"  openmp: {build['openmp']}",
            f"blas: {blas['config']}",
            f"  core type: {blas['core']}",
            f"  threads: {blas['threads']} (called from each of dlx's threads)",
            f"threads: {kernels['threads']} (DLX_NUM_THREADS, else OMP_NUM_THREADS, else every core)",
            f"workspace: {kernels['workspace_bytes'] / 2**20:.1f} MiB held, budget "
            f"{kernels['workspace_budget'] / 2**20:.0f} MiB (DLX_WORKSPACE_MB)",
        ]
    print("\n".join(lines), file=file if file is not None else sys.stdout)
