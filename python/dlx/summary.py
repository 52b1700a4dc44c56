"""Per-layer output shapes, parameter counts and multiply-adds: the cost of a network."""

from __future__ import annotations

from .layers import Affine, Conv2d
from .layers.base import Layer


def multiply_adds(
    layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...], batch: int
) -> int:
    """Multiply-accumulate operations of one forward pass over ``batch`` samples.

    A convolution costs N * FN * OH * OW * C * KH * KW: every output element is a dot
    product over one C x KH x KW window. An Affine layer costs N * in * out.
    """
    if isinstance(layer, Conv2d):
        fn, c, kh, kw = layer.params["W"].shape
        return batch * fn * out_shape[1] * out_shape[2] * c * kh * kw
    if isinstance(layer, Affine):
        return batch * layer.in_features * layer.out_features
    return 0


def summarize(net, input_shape: tuple[int, ...], batch_size: int = 1) -> str:
    rows = [("layer", "output shape", "params", "mult-adds")]
    shape = tuple(input_shape)
    total_params = total_macs = 0
    for i, layer in enumerate(net.layers):
        out = layer.output_shape(shape)
        params = int(sum(p.size for p in layer.params.values()))
        macs = multiply_adds(layer, shape, out, batch_size)
        rows.append(
            (f"{i} {type(layer).__name__}", str((batch_size, *out)), f"{params:,}", f"{macs:,}")
        )
        total_params += params
        total_macs += macs
        shape = out
    rows.append(("total", "", f"{total_params:,}", f"{total_macs:,}"))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(
                [
                    r[0].ljust(widths[0]),
                    r[1].ljust(widths[1]),
                    r[2].rjust(widths[2]),
                    r[3].rjust(widths[3]),
                ]
            )
        )
        if j == 0 or j == len(rows) - 2:
            lines.append("-" * (sum(widths) + 6))
    return "\n".join(lines)


__all__ = ["multiply_adds", "summarize"]
