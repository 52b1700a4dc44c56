"""ONNX file -> dlx network: :func:`load`.

Two ways a node becomes a layer:

- A file dlx exported tags each node with the layer call it came from (node metadata
  ``dlx.node``, ``dlx.layer``, ``dlx.config``). The layer is built from its config through
  the registry, exported again, and accepted only if that gives exactly the nodes in the file:
  the graph stays the authority, and the config adds what ONNX does not hold (the layer's
  type for a plugin, ``padding="same"``, its initialisation), so a round trip gives the same
  config.
- Any other node maps by its operator: Conv, MaxPool, AveragePool, GlobalAveragePool,
  Flatten, Reshape (to (N, -1)), Gemm, BatchNormalization, Relu, Sigmoid, Tanh, Add, Sum, Mul,
  Concat, Dropout, Identity, Constant, and a Softmax that gives a graph output (the
  prediction part of SoftmaxWithLoss, which dlx keeps in the loss).

Nothing from the file is executed: it is parsed as a protocol buffer, and each tensor's size is
checked against the bytes that hold it before it is read. Tensors stored outside the file
("external data") are read only from files inside the model's folder.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DlxError, DlxFileNotFoundError
from ..layers import (
    Add,
    Affine,
    AvgPool2d,
    BatchNorm,
    Concat,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Input,
    MaxPool2d,
    Mul,
    ReLU,
    Sigmoid,
    Tanh,
)
from ..layers.base import Layer
from ..layers.node import Node
from ..model import Model
from ..network import LOSSES, Network, Sequential
from .errors import OnnxError, require_onnx
from .graph import OnnxGraph

__all__ = ["load"]

# Protocol buffers cannot exceed 2 GiB; a larger file is refused before it is read.
MAX_FILE_BYTES = 2 << 30
# All tensors stored outside the file together.
MAX_EXTERNAL_BYTES = 4 << 30
MAX_TENSOR_ELEMENTS = 2**31
MAX_CONFIG_CHARS = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def load(path: str | os.PathLike) -> Network:
    """A dlx network built from the ONNX model at ``path``, with its weights.

    A chain of layers becomes a :class:`dlx.Sequential`, anything that branches a
    :class:`dlx.Model` (a file dlx exported says which it was). The loss is SoftmaxWithLoss
    unless the file was exported from a model with another. An operator or attribute outside
    what dlx computes is refused with an :class:`OnnxError` naming the node.
    """
    onnx = require_onnx()
    path = Path(path)
    if not path.is_file():
        raise DlxFileNotFoundError(f"no ONNX file at {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise OnnxError(
            f"{path} holds {size:,} bytes, more than an ONNX model can ({MAX_FILE_BYTES:,})"
        )
    try:
        proto = onnx.load_model(path, load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and what a damaged file raises
        raise OnnxError(f"{path} is not a readable ONNX model: {error}") from error
    try:
        return _Importer(onnx, proto, path.parent).network()
    except OnnxError as error:
        raise OnnxError(f"{path}: {error}") from error
    except DlxError as error:  # a layer or the graph refused what the file describes
        raise OnnxError(f"{path}: {error}") from error
    except (TypeError, ValueError, KeyError, IndexError) as error:  # fields of the wrong kind
        raise OnnxError(f"{path}: a malformed model ({type(error).__name__}: {error})") from error


class _Importer:
    def __init__(self, onnx, proto, folder: Path) -> None:
        self.onnx, self.proto, self.folder = onnx, proto, folder
        self.graph = proto.graph
        self.opset = self._opset()
        self.tensors = {t.name: t for t in self.graph.initializer}  # read on demand
        self.constants: dict[str, np.ndarray] = {}
        self.values: dict[str, Node] = {}  # tensor name -> the dlx node computing it
        self.flat: set[str] = set()  # GlobalAveragePool outputs, (N, C) in dlx
        self.softmax_of: dict[str, str] = {}
        self.layers: dict[str, tuple[Layer, str]] = {}  # dlx layer name -> (layer, config)
        self.used_names: set[str] = set()
        self.external_bytes = 0
        self.dtype: np.dtype | None = None
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self.read = {name for node in self.graph.node for name in node.input}
        self.graph_outputs = {value.name for value in self.graph.output}
        if self.graph.sparse_initializer:
            raise OnnxError("sparse initializers are not supported")

    # -- the whole model ------------------------------------------------------------------
    def network(self) -> Network:
        inputs = self._inputs()
        nodes = list(self.graph.node)
        i = 0
        while i < len(nodes):
            tags = _metadata(nodes[i])
            if "dlx.config" in tags:
                group = [nodes[i]]
                while i + len(group) < len(nodes) and _metadata(nodes[i + len(group)]).get(
                    "dlx.node"
                ) == tags.get("dlx.node"):
                    group.append(nodes[i + len(group)])
                self._dlx_layer(group, tags)
                i += len(group)
            else:
                self._operator(nodes[i])
                i += 1
        outputs = self._outputs()
        return self._assemble(inputs, outputs)

    def _opset(self) -> int:
        version = None
        for entry in self.proto.opset_import:
            if entry.domain in ("", "ai.onnx"):
                version = entry.version
            else:
                raise OnnxError(f"the model uses operators of the domain {entry.domain!r}")
        newest = self.onnx.defs.onnx_opset_version()
        if version is None or not 13 <= version <= newest:
            raise OnnxError(f"the model's opset is {version}; dlx reads opsets 13 to {newest}")
        return int(version)

    def _inputs(self) -> list[Node]:
        inputs = []
        for value in self.graph.input:
            if value.name in self.tensors:  # older exporters list initializers as inputs
                continue
            tensor = value.type.tensor_type
            dtype = self._float_dtype(tensor.elem_type, f"the input {value.name!r}")
            dims = tensor.shape.dim
            if len(dims) < 2:
                raise OnnxError(
                    f"the input {value.name!r} must have a batch axis and a sample shape, got "
                    f"rank {len(dims)}"
                )
            shape = []
            for d in dims[1:]:
                if not d.HasField("dim_value") or d.dim_value < 1:
                    raise OnnxError(
                        f"the input {value.name!r} needs fixed sizes after the batch axis, got "
                        f"{[_dim(x) for x in dims]}"
                    )
                shape.append(d.dim_value)
            self._agree_dtype(dtype, f"the input {value.name!r}")
            node = Input(tuple(shape), name=self._name(value.name))
            self.values[value.name] = node
            inputs.append(node)
        if not inputs:
            raise OnnxError("the model has no inputs")
        return inputs

    def _outputs(self) -> list[Node]:
        outputs: list[Node] = []
        for value in self.graph.output:
            name = self.softmax_of.get(value.name, value.name)
            if name not in self.values:
                raise OnnxError(f"the output {value.name!r} is not computed by any node")
            if self.values[name] not in outputs:
                outputs.append(self.values[name])
        if not outputs:
            raise OnnxError("the model has no outputs")
        return outputs

    def _assemble(self, inputs: list[Node], outputs: list[Node]) -> Network:
        loss = self.metadata.get("dlx.loss", "SoftmaxWithLoss")
        if loss not in LOSSES:
            raise OnnxError(f"the metadata names the loss {loss!r}, not one of {sorted(LOSSES)}")
        try:
            weight_decay = float(self.metadata.get("dlx.weight_decay", "0.0"))
        except ValueError:
            raise OnnxError("the metadata's dlx.weight_decay is not a number") from None
        settings = {
            "loss": loss,
            "weight_decay": weight_decay,
            "regularization": self.metadata.get("dlx.regularization", "l2"),
        }
        chain = _chain(inputs, outputs)
        if chain is not None and self.metadata.get("dlx.network", "Sequential") == "Sequential":
            return Sequential([node.layer for node in chain], **settings)
        return Model(inputs, outputs, **settings)

    # -- a layer dlx exported -------------------------------------------------------------
    def _dlx_layer(self, group: list, tags: dict[str, str]) -> None:
        from ..registry import build_layer, get_layer
        from .export import _converter

        call, layer_name, text = tags.get("dlx.node"), tags.get("dlx.layer"), tags["dlx.config"]
        where = f"the nodes of the dlx layer call {call!r}"
        for value in (call, layer_name):
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise OnnxError(f"{where} carry a malformed name {value!r}")
        if len(text) > MAX_CONFIG_CHARS:
            raise OnnxError(f"{where} carry a config of {len(text):,} characters")
        try:
            config = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise OnnxError(f"{where} carry a config that is not JSON: {error}") from error
        if not isinstance(config, dict) or not isinstance(config.get("type"), str):
            raise OnnxError(f"{where} carry a config without a layer type")
        try:
            inputs = json.loads(tags.get("dlx.inputs", "null"))
        except (ValueError, RecursionError):
            inputs = None
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(n, str) for n in inputs)
        ):
            raise OnnxError(f"{where} do not say which tensors the call reads")
        if not group[-1].output or not group[-1].output[0]:
            raise OnnxError(f"{where} have no output")
        output = group[-1].output[0]
        if layer_name in self.layers:  # a shared layer's later call
            layer, first = self.layers[layer_name]
            if first != text:
                raise OnnxError(f"{where} give the layer {layer_name!r} a second, other config")
        else:
            try:
                get_layer(config["type"])  # a type this process has no layer for: say so first
            except KeyError as error:
                raise OnnxError(
                    f"{where} are a {config['type']!r} layer, which is not registered here: "
                    "install the package that provides it"
                ) from error
            self._check_declared_shapes(config, layer_name, where)
            try:
                layer = build_layer(config)
            except (TypeError, ValueError) as error:
                raise OnnxError(f"{where} carry a config its layer refuses: {error}") from error
            self.layers[layer_name] = (layer, text)
        missing = [name for name in inputs if name not in self.values]
        if missing:
            raise OnnxError(f"{where} read {missing}, which no earlier node computes")
        scratch = OnnxGraph(self.dtype or np.float32, self.opset)
        for name in inputs:
            scratch.set_shape(name, self.values[name].shape)
        scratch.begin(call, layer, layer_name, inputs)
        result = _converter(layer)(scratch, list(inputs))
        scratch.end(result, output, None)
        if _signature(scratch.nodes) != _signature(group):
            raise OnnxError(
                f"{where} say they are the layer {text} but differ from the nodes it exports"
            )
        for name, array in scratch.initializers.items():
            self._match_initializer(name, array, layer, layer_name, where)
        parents = [self.values[name] for name in inputs]
        self.values[output] = layer(*parents, name=self._name(call))

    def _check_declared_shapes(self, config, layer_name: str, where: str) -> None:
        """The shapes the config implies must be those of the initializers, before the layer
        is built, so that a config cannot make dlx allocate a layer the file does not hold."""
        from ..registry import declared_state_shapes

        try:
            shapes = declared_state_shapes(config)
        except Exception as error:
            raise OnnxError(
                f"{where} carry arguments the layer does not accept: {error}"
            ) from error
        for kind in ("params", "buffers"):
            for key, shape in (shapes or {}).get(kind, {}).items():
                name = f"{layer_name}.{key}"
                # Read (and so size-check against its bytes) before the layer is allocated.
                held = self._array(name).shape if name in self.tensors else None
                if held != tuple(shape):
                    raise OnnxError(
                        f"{where} declare {key} of shape {tuple(shape)}, but the file holds "
                        f"{'none' if held is None else held}"
                    )

    def _match_initializer(self, name, array, layer: Layer, layer_name: str, where: str) -> None:
        if name not in self.tensors:
            raise OnnxError(f"{where} lack the initializer {name!r}")
        held = self._array(name)
        if held.shape != array.shape or held.dtype != array.dtype:
            raise OnnxError(
                f"{where}: the initializer {name!r} is {held.dtype} {held.shape}, the layer "
                f"needs {array.dtype} {array.shape}"
            )
        key = name[len(layer_name) + 1 :] if name.startswith(layer_name + ".") else None
        target = {**layer.params, **layer.buffers}.get(key) if key is not None else None
        if target is not None:
            target[...] = held
        elif not np.array_equal(held, array):
            raise OnnxError(f"{where}: the constant {name!r} differs from what the layer exports")

    # -- any other node, by its operator --------------------------------------------------
    def _operator(self, node) -> None:
        op = node.op_type
        handler = getattr(self, f"_op_{op}", None)
        if node.domain not in ("", "ai.onnx") or handler is None:
            raise OnnxError(
                f"node {node.name!r} is a {op}, which dlx does not import (it reads Conv, "
                "MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Gemm, "
                "BatchNormalization, Relu, Sigmoid, Tanh, Add, Sum, Mul, Concat, Dropout, "
                "Identity, Constant and a final Softmax)"
            )
        if op != "Constant" and (not node.input or not node.input[0]):
            self._refuse(node, "it has no input")
        if not node.output or not node.output[0]:
            self._refuse(node, "it has no output")
        try:
            handler(node, self._attributes(node))
        except OnnxError:
            raise
        except DlxError as error:  # a layer refused the node's attributes or shapes
            raise OnnxError(f"node {node.name!r} ({op}): {error}") from error

    def _attributes(self, node) -> dict[str, Any]:
        values = {}
        for attribute in node.attribute:
            values[attribute.name] = self.onnx.helper.get_attribute_value(attribute)
        return values

    def _allow(self, node, attributes: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
        """The attributes with their defaults; refuses one dlx has no use for."""
        for name in attributes:
            if name not in allowed:
                raise OnnxError(
                    f"node {node.name!r} ({node.op_type}) has the attribute {name!r}, which "
                    "dlx does not support"
                )
        return {**allowed, **attributes}

    def _refuse(self, node, what: str) -> None:
        raise OnnxError(f"node {node.name!r} ({node.op_type}): {what}")

    def _add(self, node, layer: Layer, parents: list[str]) -> None:
        for name in parents:
            if name not in self.values:
                where = "a weight" if name in self.tensors or name in self.constants else "unknown"
                self._refuse(node, f"its input {name!r} is {where}, not a computed tensor")
            if name in self.flat and not isinstance(layer, (Flatten, Affine)):
                self._refuse(
                    node,
                    f"it reads {name!r}, a GlobalAveragePool output, which dlx keeps as (N, C) "
                    "(a Flatten or Gemm may follow it)",
                )
        name = self._name(node.name.split("/")[0])
        self.values[node.output[0]] = layer(*(self.values[p] for p in parents), name=name)

    def _single_output(self, node) -> None:
        if len([o for o in node.output if o]) != 1:
            self._refuse(node, f"dlx computes one output, the node has {len(node.output)}")

    def _input(self, node, i: int) -> str:
        if len(node.input) <= i or not node.input[i]:
            self._refuse(node, f"it lacks its input {i}")
        return node.input[i]

    def _weight(self, node, name: str, ndim: int) -> np.ndarray:
        if name not in self.tensors:
            self._refuse(node, f"its weight {name!r} must be an initializer")
        array = self._array(name)
        if array.ndim != ndim or 0 in array.shape:
            self._refuse(node, f"its weight {name!r} has shape {array.shape}, not {ndim}-D")
        self._agree_dtype(array.dtype, f"the initializer {name!r}")
        return array

    def _window(self, node, attrs: dict[str, Any], kernel=None):
        if list(attrs.get("dilations") or [1, 1]) != [1, 1]:
            self._refuse(node, f"dilations {attrs['dilations']} (dlx has none)")
        for key in ("kernel_shape", "strides", "pads", "dilations"):
            value = attrs.get(key)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, int) for v in value)
            ):
                self._refuse(node, f"{key} must be a list of ints, got {value!r}")
        kernel = list(attrs.get("kernel_shape") or kernel or [])
        if len(kernel) != 2:
            self._refuse(node, f"kernel_shape {kernel} (dlx has 2-D windows)")
        strides = list(attrs.get("strides") or [1, 1])
        pads = list(attrs.get("pads") or [0, 0, 0, 0])
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if strides != [1, 1] or kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
                self._refuse(node, f"auto_pad {auto_pad} with kernel {kernel}, strides {strides}")
            pads = [kernel[0] // 2, kernel[1] // 2] * 2
        elif auto_pad != "NOTSET":
            self._refuse(node, f"auto_pad {auto_pad!r}")
        if len(strides) != 2 or len(pads) != 4:
            self._refuse(node, f"strides {strides} and pads {pads} (dlx has 2-D windows)")
        if pads[0] != pads[2] or pads[1] != pads[3]:
            self._refuse(node, f"asymmetric pads {pads} (dlx pads both sides alike)")
        return tuple(kernel), tuple(strides), (pads[0], pads[1])

    def _op_Conv(self, node, attrs) -> None:
        attrs = self._allow(
            node,
            attrs,
            {
                "kernel_shape": None,
                "strides": None,
                "pads": None,
                "dilations": None,
                "group": 1,
                "auto_pad": b"NOTSET",
            },
        )
        if attrs["group"] != 1:
            self._refuse(
                node, f"group {attrs['group']} (dlx convolves every channel with every filter)"
            )
        self._single_output(node)
        W = self._weight(node, self._input(node, 1), 4)
        kernel, stride, pad = self._window(node, attrs, list(W.shape[2:]))
        if kernel != W.shape[2:]:
            self._refuse(node, f"kernel_shape {list(kernel)} differs from the weight's {W.shape}")
        b = self._weight(node, node.input[2], 1) if len(node.input) > 2 and node.input[2] else None
        layer = Conv2d(
            W.shape[1], W.shape[0], kernel, stride, pad, bias=b is not None, dtype=W.dtype
        )
        self._assign(node, layer, {"W": W, "b": b})
        self._add(node, layer, [node.input[0]])

    def _op_MaxPool(self, node, attrs) -> None:
        attrs = self._allow(
            node,
            attrs,
            {
                "kernel_shape": None,
                "strides": None,
                "pads": None,
                "dilations": None,
                "auto_pad": b"NOTSET",
                "ceil_mode": 0,
                "storage_order": 0,
            },
        )
        if attrs["ceil_mode"] != 0:
            self._refuse(node, "ceil_mode 1 (dlx rounds output sizes down)")
        if attrs["storage_order"] != 0:
            self._refuse(node, "storage_order 1")
        self._single_output(node)
        kernel, stride, pad = self._window(node, attrs)
        self._add(node, MaxPool2d(kernel, stride, pad), [node.input[0]])

    def _op_AveragePool(self, node, attrs) -> None:
        attrs = self._allow(
            node,
            attrs,
            {
                "kernel_shape": None,
                "strides": None,
                "pads": None,
                "dilations": None,
                "auto_pad": b"NOTSET",
                "ceil_mode": 0,
                "count_include_pad": 0,
            },
        )
        if attrs["ceil_mode"] != 0:
            self._refuse(node, "ceil_mode 1 (dlx rounds output sizes down)")
        kernel, stride, pad = self._window(node, attrs)
        if pad != (0, 0) and attrs["count_include_pad"] != 1:
            self._refuse(node, "count_include_pad 0 with padding (dlx counts the padding)")
        self._add(node, AvgPool2d(kernel, stride, pad), [node.input[0]])

    def _op_GlobalAveragePool(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        self._add(node, GlobalAvgPool2d(), [node.input[0]])
        self.flat.add(node.output[0])

    def _op_Flatten(self, node, attrs) -> None:
        attrs = self._allow(node, attrs, {"axis": 1})
        if attrs["axis"] != 1:
            self._refuse(node, f"axis {attrs['axis']} (dlx flattens all but the batch axis)")
        self._add(node, Flatten(), [node.input[0]])

    def _op_Reshape(self, node, attrs) -> None:
        attrs = self._allow(node, attrs, {"allowzero": 0})
        shape = self._constant(node, self._input(node, 1))
        x = node.input[0]
        size = math.prod(self.values[x].shape) if x in self.values else None
        if (
            attrs["allowzero"] != 0
            or shape.ndim != 1
            or len(shape) != 2
            or shape[0] not in (0, -1)
            or shape[1] not in (-1, size)
        ):
            self._refuse(node, f"shape {shape.tolist()} (dlx reshapes to (N, -1) only: a Flatten)")
        self._add(node, Flatten(), [x])

    def _op_Gemm(self, node, attrs) -> None:
        attrs = self._allow(node, attrs, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0})
        if attrs["alpha"] != 1.0 or attrs["beta"] != 1.0 or attrs["transA"] != 0:
            self._refuse(node, "alpha and beta other than 1, or transA (dlx computes x W + b)")
        W = self._weight(node, self._input(node, 1), 2)
        W = np.ascontiguousarray(W.T) if attrs["transB"] else W
        b = self._weight(node, node.input[2], 1) if len(node.input) > 2 and node.input[2] else None
        if b is None:
            b = np.zeros(W.shape[1], dtype=W.dtype)
        if b.shape != (W.shape[1],):
            self._refuse(node, f"a bias of shape {b.shape} for {W.shape[1]} outputs")
        x = node.input[0]
        if x in self.values and len(self.values[x].shape) != 1:
            self._refuse(node, f"an input of samples {self.values[x].shape}; Gemm takes (N, K)")
        layer = Affine(W.shape[0], W.shape[1], dtype=W.dtype)
        self._assign(node, layer, {"W": W, "b": b})
        self._add(node, layer, [x])

    def _op_BatchNormalization(self, node, attrs) -> None:
        attrs = self._allow(node, attrs, {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0})
        if attrs["training_mode"] != 0:
            self._refuse(node, "training_mode 1 (dlx imports the inference form)")
        self._single_output(node)
        arrays = [self._weight(node, name, 1) for name in node.input[1:5]]
        if len(arrays) != 4 or len({a.shape for a in arrays}) != 1:
            self._refuse(node, "scale, bias, mean and variance must be four vectors of one size")
        layer = BatchNorm(
            arrays[0].shape[0],
            momentum=attrs["momentum"],
            eps=attrs["epsilon"],
            dtype=arrays[0].dtype,
        )
        self._assign(
            node, layer, dict(zip(("gamma", "beta", "running_mean", "running_var"), arrays))
        )
        self._add(node, layer, [node.input[0]])

    def _op_Relu(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        self._add(node, ReLU(), [node.input[0]])

    def _op_Sigmoid(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        self._add(node, Sigmoid(), [node.input[0]])

    def _op_Tanh(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        self._add(node, Tanh(), [node.input[0]])

    def _op_Add(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        self._add(node, Add(), list(node.input))

    def _op_Sum(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        if len(node.input) == 1:
            self._op_Identity(node, attrs)
            return
        self._add(node, Add(), list(node.input))

    def _op_Mul(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        self._add(node, Mul(), list(node.input))

    def _op_Concat(self, node, attrs) -> None:
        attrs = self._allow(node, attrs, {"axis": None})
        first = self.values.get(node.input[0])
        if first is None:
            self._refuse(node, f"its input {node.input[0]!r} is not a computed tensor")
        rank = len(first.shape) + 1
        axis = attrs["axis"]
        if not isinstance(axis, int) or not -rank <= axis < rank or axis % rank == 0:
            self._refuse(node, f"axis {axis} (dlx joins a sample axis, 1 to {rank - 1})")
        self._add(node, Concat(axis % rank), list(node.input))

    def _op_Dropout(self, node, attrs) -> None:
        attrs = self._allow(node, attrs, {"seed": 0})
        mask = node.output[1] if len(node.output) > 1 else ""
        if mask and (self._read_by_nodes(mask) or mask in self.graph_outputs):
            self._refuse(node, "its mask output is used (dlx's Dropout has none)")
        p = self._scalar(node, node.input[1]) if len(node.input) > 1 and node.input[1] else 0.5
        if len(node.input) > 2 and node.input[2] and self._scalar(node, node.input[2]):
            self._refuse(node, "training_mode true")
        self._add(node, Dropout(p), [node.input[0]])

    def _op_Identity(self, node, attrs) -> None:
        self._allow(node, attrs, {})
        if node.input[0] not in self.values:
            self._refuse(node, f"its input {node.input[0]!r} is not a computed tensor")
        self.values[node.output[0]] = self.values[node.input[0]]

    def _op_Constant(self, node, attrs) -> None:
        if set(attrs) != {"value"}:
            self._refuse(node, f"attributes {sorted(attrs)} (dlx reads a tensor 'value' only)")
        self.constants[node.output[0]] = self._tensor_array(node.attribute[0].t, node.output[0])

    def _op_Softmax(self, node, attrs) -> None:
        attrs = self._allow(node, attrs, {"axis": -1})
        x = node.input[0]
        out = node.output[0]
        graph_outputs = self.graph_outputs
        if (
            x not in self.values
            or len(self.values[x].shape) != 1
            or attrs["axis"] not in (1, -1)
            or out not in graph_outputs
            or self._read_by_nodes(out)
            or self.metadata.get("dlx.loss", "SoftmaxWithLoss") != "SoftmaxWithLoss"
        ):
            self._refuse(
                node,
                "dlx reads a Softmax only as the last step of a classifier (over the classes "
                "of (N, K) scores, giving an output): the prediction part of SoftmaxWithLoss",
            )
        self.softmax_of[out] = x

    # -- tensors --------------------------------------------------------------------------
    def _read_by_nodes(self, tensor: str) -> bool:
        return tensor in self.read

    def _constant(self, node, name: str) -> np.ndarray:
        if name in self.constants:
            return self.constants[name]
        if name in self.tensors:
            return self._array(name)
        self._refuse(node, f"its input {name!r} must be a constant")
        raise AssertionError  # unreachable: _refuse raises

    def _scalar(self, node, name: str) -> float:
        value = self._constant(node, name)
        if value.size != 1:
            self._refuse(node, f"its input {name!r} must be one number, got shape {value.shape}")
        return float(value.reshape(()))

    def _assign(self, node, layer: Layer, arrays: dict[str, np.ndarray | None]) -> None:
        slots = {**layer.params, **layer.buffers}
        for key, array in arrays.items():
            if array is None:
                continue
            if slots[key].shape != array.shape:
                self._refuse(
                    node, f"{key} has shape {array.shape}, the layer needs {slots[key].shape}"
                )
            slots[key][...] = array

    def _array(self, name: str) -> np.ndarray:
        if name not in self.constants:
            self.constants[name] = self._tensor_array(self.tensors[name], name)
        return self.constants[name]

    def _tensor_array(self, tensor, name: str) -> np.ndarray:
        """The tensor's values, after checking that the bytes holding them match its shape."""
        TP = self.onnx.TensorProto
        dtypes = {TP.FLOAT: np.float32, TP.DOUBLE: np.float64, TP.INT64: np.int64}
        if tensor.data_type not in dtypes:
            kind = (
                TP.DataType.Name(tensor.data_type)
                if tensor.data_type in TP.DataType.values()
                else tensor.data_type
            )
            raise OnnxError(
                f"the tensor {name!r} is of type {kind}; dlx reads float32 and float64 "
                "weights (and int64 shapes)"
            )
        dtype = np.dtype(dtypes[tensor.data_type])
        dims = tuple(tensor.dims)
        if any(d < 0 for d in dims) or math.prod(dims) > MAX_TENSOR_ELEMENTS:
            raise OnnxError(f"the tensor {name!r} declares the shape {dims}")
        count = math.prod(dims)
        if tensor.data_location == TP.EXTERNAL:
            raw = self._external(tensor, name, count * dtype.itemsize)
        elif tensor.HasField("raw_data"):
            raw = tensor.raw_data
        else:
            field = {
                TP.FLOAT: tensor.float_data,
                TP.DOUBLE: tensor.double_data,
                TP.INT64: tensor.int64_data,
            }[tensor.data_type]
            if len(field) != count:
                raise OnnxError(
                    f"the tensor {name!r} declares {count} values and holds {len(field)}"
                )
            return np.array(field, dtype=dtype).reshape(dims)
        if len(raw) != count * dtype.itemsize:
            raise OnnxError(
                f"the tensor {name!r} of shape {dims} needs {count * dtype.itemsize} bytes, "
                f"the file holds {len(raw)}"
            )
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(dims)

    def _external(self, tensor, name: str, nbytes: int) -> bytes:
        """A tensor's bytes from a file beside the model, never from outside its folder."""
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        folder = self.folder.resolve()
        try:
            target = (folder / location).resolve()
        except (OSError, ValueError):  # a NUL byte, a loop of links
            raise OnnxError(f"the tensor {name!r} is stored in {location!r}, not a path") from None
        if not location or Path(location).is_absolute() or folder not in target.parents:
            raise OnnxError(
                f"the tensor {name!r} is stored in {location!r}, outside the model's folder"
            )
        try:
            offset = int(info.get("offset", "0"))
            length = int(info.get("length", str(nbytes)))
        except ValueError:
            raise OnnxError(f"the tensor {name!r} has a malformed offset or length") from None
        if not target.is_file():
            raise OnnxError(f"the tensor {name!r} is stored in {location!r}, which is not a file")
        if offset < 0 or length != nbytes or offset + length > target.stat().st_size:
            raise OnnxError(
                f"the tensor {name!r} needs {nbytes} bytes at offset {offset} of {location!r}, "
                "which does not hold them"
            )
        self.external_bytes += nbytes
        if self.external_bytes > MAX_EXTERNAL_BYTES:
            raise OnnxError(f"the external tensors exceed {MAX_EXTERNAL_BYTES:,} bytes")
        with open(target, "rb") as f:
            f.seek(offset)
            return f.read(nbytes)

    def _float_dtype(self, elem_type: int, what: str) -> np.dtype:
        TP = self.onnx.TensorProto
        if elem_type == TP.FLOAT:
            return np.dtype(np.float32)
        if elem_type == TP.DOUBLE:
            return np.dtype(np.float64)
        raise OnnxError(f"{what} is not float32 or float64")

    def _agree_dtype(self, dtype: np.dtype, what: str) -> None:
        if dtype.kind != "f":
            raise OnnxError(f"{what} is {dtype}, not a float tensor")
        if self.dtype is None:
            self.dtype = dtype
        elif dtype != self.dtype:
            raise OnnxError(
                f"{what} is {dtype} while the model is {self.dtype}: dlx needs one float type"
            )

    def _name(self, candidate: str) -> str | None:
        """A dlx node name from a name in the file, or None to let dlx make one."""
        if _NAME.fullmatch(candidate) and candidate not in self.used_names:
            self.used_names.add(candidate)
            return candidate
        return None


def _metadata(node) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}


def _signature(nodes) -> list[tuple]:
    """What a node computes: its operator, tensors and attributes (not its metadata)."""
    return [
        (
            n.op_type,
            n.domain,
            tuple(n.input),
            tuple(n.output),
            tuple(sorted((a.name, a.SerializeToString()) for a in n.attribute)),
        )
        for n in nodes
    ]


def _dim(d) -> int | str:
    return d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")


def _chain(inputs: list[Node], outputs: list[Node]) -> list[Node] | None:
    """The layer nodes from the input to the output, when each takes the one before."""
    if len(inputs) != 1 or len(outputs) != 1:
        return None
    chain, node = [], outputs[0]
    while node.layer is not None:
        if len(node.inputs) != 1:
            return None
        chain.append(node)
        node = node.inputs[0]
    return chain[::-1] if node is inputs[0] else None
