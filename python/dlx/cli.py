"""The ``dlx`` command line (also ``python -m dlx``)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import ops


def edge_demo() -> int:
    """Convolve the course's edge-detection example and print image, filter and response."""
    image = np.zeros((1, 1, 6, 6), dtype=np.float32)
    image[..., :3] = 10.0  # left half bright, right half dark
    kernel = np.array([[1, 0, -1]] * 3, dtype=np.float32)[None, None]
    response = ops.conv2d(image, kernel)

    np.set_printoptions(precision=0, suppress=True, floatmode="fixed")
    print(f"dlx backend: {ops.backend()}")
    print("image (6x6, left half 10, right half 0):")
    print(image[0, 0])
    print("filter (3x3, vertical edges):")
    print(kernel[0, 0])
    print("response (4x4, the edge shows as the columns of 30):")
    print(response[0, 0])
    return 0


def list_layer_table() -> int:
    """Print every registered layer with the distribution that provides it."""
    from .registry import layer_providers

    providers = layer_providers()
    width = max(len(name) for name in providers)
    print(f"{'layer'.ljust(width)}  provided by")
    for name, provider in providers.items():
        print(f"{name.ljust(width)}  {provider}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlx", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("demo", help="convolve the edge-detection example (the default)")
    commands.add_parser("layers", help="list every layer, with the package that provides it")
    args = parser.parse_args(argv)
    if args.command in (None, "demo"):
        return edge_demo()
    if args.command == "layers":
        return list_layer_table()
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
