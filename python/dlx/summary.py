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
    rows = [("layer", "output shape", "params", "mult-adds")]
    shape = tuple(input_shape)
    total_params = total_macs = 0
    unknown = False  # a layer with parameters that does not report its multiply-adds
    for i, layer in enumerate(net.layers):
        out = layer.output_shape(shape)
        params = int(sum(p.size for p in layer.params.values()))
        macs = multiply_adds(layer, shape, out, batch_size)
        shown = "?" if macs is None else f"{macs:,}"
        rows.append((f"{i} {type(layer).__name__}", str((batch_size, *out)), f"{params:,}", shown))
        total_params += params
        unknown = unknown or macs is None
        total_macs += macs or 0
        shape = out
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
