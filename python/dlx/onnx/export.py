"""dlx network -> ONNX file: :func:`export`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write
from ..errors import DlxTypeError, DlxValueError
from ..layers import Affine, BatchNorm, Conv2d
from ..layers.base import Layer
from ..layers.loss import SoftmaxWithLoss
from ..network import Network, Sequential
from .converters import CONVERTERS, affine, batchnorm_scale_shift, conv2d
from .errors import OnnxError, require_onnx
from .graph import OnnxGraph

__all__ = ["export"]

# The oldest operator set whose operators mean what the converters write (Dropout's ratio as
# an input, Softmax over one axis).
MIN_OPSET = 13
SEQUENTIAL_INPUT, SEQUENTIAL_OUTPUT = "input", "scores"


@dataclass
class _Call:
    """One layer call: its node name, layer, the layer's (parameter) name, the tensors it
    reads and writes, and one sample's output shape."""

    name: str
    layer: Layer
    layer_name: str
    inputs: list[str]
    output: str
    shape: tuple[int, ...]


def export(
    model: Network,
    path: str | os.PathLike,
    input_shape: tuple[int, ...] | None = None,
    opset: int | None = None,
    *,
    fold_batchnorm: bool = False,
    softmax: bool = False,
) -> Path:
    """Write ``model`` to ``path`` as an ONNX model of its inference computation.

    ``input_shape`` is one sample's shape (no batch axis; the batch dimension stays dynamic,
    ``N``). A graph :class:`dlx.Model` knows it; a ``Sequential`` knows it when its first
    layer is ``Affine``, else it is required. ``opset`` defaults to 17. The tensors are
    named as in dlx: the inputs and outputs of a ``Model`` by their node names (a
    ``Sequential``'s are ``input`` and ``scores``), the weights by their keys in
    ``model.params`` and ``model.buffers``.

    ``fold_batchnorm=True`` merges each BatchNorm into the Conv2d or Affine before it (where
    nothing else reads that layer's output): fewer nodes, the same outputs up to rounding.
    ``softmax=True`` adds a second output, ``probabilities``, the softmax of the scores.

    The file is written atomically; returns its path.
    """
    onnx = require_onnx()
    if not isinstance(model, Network):
        raise DlxTypeError(
            f"model must be a dlx.Sequential or dlx.Model, got {type(model).__name__}"
        )
    opset = _checked_opset(opset, onnx.defs.onnx_opset_version())
    for name, flag in (("fold_batchnorm", fold_batchnorm), ("softmax", softmax)):
        if not isinstance(flag, bool):
            raise DlxTypeError(f"{name} must be True or False, got {flag!r}")
    inputs, calls, outputs = _calls(model, input_shape)
    dtype = _model_dtype(model)
    graph = OnnxGraph(dtype, opset)
    for name, shape in inputs:
        graph.set_shape(name, shape)
    folded = _batchnorm_folds(calls, outputs) if fold_batchnorm else {}
    skipped = {id(bn) for bn in folded.values()}
    for call in calls:
        if id(call) in skipped:
            continue
        bn = folded.get(id(call))
        output = bn.output if bn is not None else call.output
        graph.begin(call.name, call.layer, call.layer_name, call.inputs)
        if bn is None:
            result = _convert(call, graph)
            config = _config(call.layer)
        else:  # the pair becomes a plain Conv or Gemm, not the layer it was in dlx
            result = _convert_folded(call, bn, graph)
            config = None
        graph.end(result, output, config)
        graph.set_shape(output, bn.shape if bn is not None else call.shape)

    clashes = sorted(set(graph.initializers) & {o for n in graph.nodes for o in n.output})
    if clashes:
        raise OnnxError(
            f"the node name {clashes[0]!r} is also the name of a weight (layer name + key): "
            "rename that node"
        )
    output_shapes = [(name, graph.shape(name)) for name in outputs]
    if softmax:
        output_shapes.append(_add_softmax(model, graph, outputs))
    proto = _model_proto(onnx, model, graph, inputs, output_shapes)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        raise OnnxError(f"the exported model is not valid ONNX: {error}") from error
    return atomic_write(Path(path), lambda f: f.write(proto.SerializeToString()))


def _checked_opset(opset: object, newest: int) -> int:
    if opset is None:
        from . import DEFAULT_OPSET

        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise DlxTypeError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise DlxValueError(
            f"opset must lie in [{MIN_OPSET}, {newest}] (the installed onnx knows up to "
            f"{newest}), got {opset}"
        )
    return int(opset)


def _calls(model: Network, input_shape):
    """(graph inputs as (name, sample shape), the layer calls in order, output names)."""
    if isinstance(model, Sequential):
        shape = first_shape = _sequential_input_shape(model, input_shape)
        calls, tensor = [], SEQUENTIAL_INPUT
        for i, layer in enumerate(model.layers):
            try:
                out_shape = layer.output_shape(shape)
            except (TypeError, ValueError) as error:
                raise DlxValueError(
                    f"layer {i} ({type(layer).__name__}) cannot take samples of shape {shape}: "
                    f"{error}"
                ) from error
            output = SEQUENTIAL_OUTPUT if i == len(model.layers) - 1 else str(i)
            calls.append(_Call(str(i), layer, str(i), [tensor], output, out_shape))
            tensor, shape = output, out_shape
        if not calls:
            raise OnnxError("an empty Sequential has nothing to export")
        return [(SEQUENTIAL_INPUT, first_shape)], calls, [SEQUENTIAL_OUTPUT]
    if not hasattr(model, "_graph_calls"):
        raise DlxTypeError(f"cannot export a {type(model).__name__}: not a Sequential or Model")
    inputs = [(model.node_names[id(n)], n.shape) for n in model.inputs]
    if input_shape is not None:
        given = tuple(input_shape)
        if len(inputs) != 1 or given != inputs[0][1]:
            raise DlxValueError(
                f"input_shape {given} differs from the model's own input shapes "
                f"{[shape for _, shape in inputs]}: leave it out for a Model"
            )
    calls = [
        _Call(name, layer, layer_name, parents, name, shape)
        for name, layer, layer_name, parents, shape in model._graph_calls()
    ]
    return inputs, calls, [model.node_names[id(n)] for n in model.outputs]


def _sequential_input_shape(model: Sequential, input_shape) -> tuple[int, ...]:
    if input_shape is None:
        first = model.layers[0] if model.layers else None
        if isinstance(first, Affine):
            return (first.in_features,)
        kind = type(first).__name__ if first is not None else "none"
        raise DlxValueError(
            f"input_shape is needed to export a Sequential whose first layer is {kind}: "
            "pass one sample's shape, e.g. input_shape=(1, 28, 28)"
        )
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in input_shape
    ):
        raise DlxValueError(f"input_shape must be a tuple of positive sizes, got {input_shape!r}")
    return tuple(int(s) for s in input_shape)


def _model_dtype(model: Network) -> np.dtype:
    dtypes = {a.dtype for a in model.params.values()} | {a.dtype for a in model.buffers.values()}
    if len(dtypes) > 1:
        raise OnnxError(
            f"the model mixes {sorted(str(d) for d in dtypes)} arrays; ONNX needs one float type"
        )
    return dtypes.pop() if dtypes else np.dtype(np.float32)


def _converter(layer: Layer):
    """The built-in converter of the layer's exact class, else its own ``to_onnx``."""
    convert = CONVERTERS.get(type(layer))
    if convert is not None:
        return lambda graph, inputs: convert(layer, graph, inputs)
    to_onnx = getattr(layer, "to_onnx", None)
    if callable(to_onnx):
        return to_onnx
    raise OnnxError(
        f"{type(layer).__name__} has no ONNX form: give its class a method "
        "to_onnx(self, graph, inputs) that adds its nodes with graph.node(...) and returns "
        "its output's name (see the plugin guide, docs/plugins.md)"
    )


def _config(layer: Layer) -> dict[str, Any] | None:
    """The layer's config, or None for a class the registry does not know (its nodes are
    then read back operator by operator)."""
    try:
        return layer.to_config()
    except DlxValueError:
        return None


def _convert(call: _Call, graph: OnnxGraph) -> str:
    result = _converter(call.layer)(graph, list(call.inputs))
    if not isinstance(result, str):
        raise OnnxError(
            f"{type(call.layer).__name__}.to_onnx must return the name of its output tensor, "
            f"got {type(result).__name__}"
        )
    return result


def _batchnorm_folds(calls: list[_Call], outputs: list[str]) -> dict[int, _Call]:
    """{id(Conv2d or Affine call): the BatchNorm call folded into it}: each BatchNorm that
    alone reads a Conv2d's or Affine's output, where that output is not a model output and
    that layer runs once (a shared layer's weights cannot take two foldings)."""
    readers: dict[str, list[_Call]] = {}
    for call in calls:
        for tensor in call.inputs:
            readers.setdefault(tensor, []).append(call)
    runs: dict[int, int] = {}
    for call in calls:
        runs[id(call.layer)] = runs.get(id(call.layer), 0) + 1
    folds = {}
    for call in calls:
        after = readers.get(call.output, [])
        if (
            type(call.layer) in (Conv2d, Affine)
            and len(after) == 1
            and type(after[0].layer) is BatchNorm
            and call.output not in outputs
            and runs[id(call.layer)] == 1
            and runs[id(after[0].layer)] == 1
        ):
            folds[id(call)] = after[0]
    return folds


def _convert_folded(call: _Call, bn: _Call, graph: OnnxGraph) -> str:
    """The Conv2d or Affine of ``call`` with the BatchNorm ``bn`` folded into its weights:
    y = (x W + b) * scale + shift = x (W * scale) + (b * scale + shift)."""
    layer = call.layer
    scale, shift = batchnorm_scale_shift(bn.layer)
    W = layer.params["W"]
    b = layer.params.get("b")
    bias = shift if b is None else b * scale + shift
    if isinstance(layer, Conv2d):
        weights = (W * scale[:, None, None, None], bias)
        return conv2d(layer, graph, call.inputs, weights=_as(weights, W.dtype))
    return affine(layer, graph, call.inputs, weights=_as((W * scale[None, :], bias), W.dtype))


def _as(arrays, dtype) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(a, dtype=dtype) for a in arrays)


def _add_softmax(model: Network, graph: OnnxGraph, outputs: list[str]):
    import onnx

    if len(outputs) != 1 or not isinstance(model.loss_layer, SoftmaxWithLoss):
        raise DlxValueError(
            "softmax=True adds the probabilities of a classifier: a model with one output and "
            "SoftmaxWithLoss"
        )
    graph.nodes.append(
        onnx.helper.make_node("Softmax", outputs, ["probabilities"], name="softmax", axis=1)
    )
    return "probabilities", graph.shape(outputs[0])


def _model_proto(onnx, model: Network, graph: OnnxGraph, inputs, outputs):
    from .. import __version__

    elem = onnx.helper.np_dtype_to_tensor_dtype(graph.dtype)

    def value_info(name: str, shape: tuple[int, ...]):
        return onnx.helper.make_tensor_value_info(name, elem, ["N", *shape])

    initializers = [
        onnx.numpy_helper.from_array(array, name) for name, array in graph.initializers.items()
    ]
    body = onnx.helper.make_graph(
        graph.nodes,
        "dlx",
        [value_info(name, shape) for name, shape in inputs],
        [value_info(name, shape) for name, shape in outputs],
        initializer=initializers,
    )
    proto = onnx.helper.make_model(
        body,
        opset_imports=[onnx.helper.make_opsetid("", graph.opset)],
        producer_name="dlx",
        producer_version=__version__,
    )
    # Version 10 of the format is the first with metadata on nodes, where each node says which
    # dlx layer it belongs to.
    proto.ir_version = 10
    metadata: dict[str, Any] = {
        "dlx.network": type(model).__name__,
        "dlx.loss": type(model.loss_layer).__name__,
        "dlx.weight_decay": repr(model.weight_decay),
        "dlx.regularization": model.regularization,
    }
    onnx.helper.set_model_props(proto, metadata)
    return proto
