"""Per-layer output shapes, parameter counts and multiply-adds: the cost of a network."""

from __future__ import annotations

from .layers.base import Layer


def multiply_adds(
    layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...], batch: int
) -> int | None:
    """Multiply-accumulate operations of one forward pass over ``batch`` samples, as the layer
    reports them (:meth:`dlx.Layer.multiply_adds`), or None where it does not."""
    per_sample = layer.multiply_adds(tuple(in_shape), tuple(out_shape))
    return None if per_sample is None else batch * int(per_sample)


def summarize(net, input_shape: tuple[int, ...], batch_size: int = 1) -> str:
    """The table of ``net.summary``: a row per layer call (a graph's rows are its nodes; a
    layer called twice counts its parameters once)."""
    rows = [("layer", "output shape", "params", "mult-adds")]
    total_params = total_macs = 0
    unknown = False  # a layer with parameters that does not report its multiply-adds
    for label, layer, in_shapes, out, first in net._layer_calls(input_shape):
        params = int(sum(p.size for p in layer.params.values())) if first else 0
        macs = multiply_adds(layer, in_shapes[0], out, batch_size)
        shown = "?" if macs is None else f"{macs:,}"
        rows.append((label, str((batch_size, *out)), f"{params:,}", shown))
        total_params += params
        unknown = unknown or macs is None
        total_macs += macs or 0
    total = f"{total_macs:,}" + (" + ?" if unknown else "")
    rows.append(("total", "", f"{total_params:,}", total))
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
