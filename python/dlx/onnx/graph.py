"""The builder a layer writes its ONNX nodes with: :class:`OnnxGraph`.

A layer that is not built into dlx (a plugin's) exports by defining one method::

    def to_onnx(self, graph, inputs):
        return graph.node("LeakyRelu", inputs, alpha=self.negative_slope)

``inputs`` are the names of the tensors the layer reads (one, or several for a merge layer);
the method adds nodes with :meth:`OnnxGraph.node` and returns the name of the tensor that is
the layer's output. Weights go in with :meth:`OnnxGraph.param`, fixed numbers with
:meth:`OnnxGraph.constant`. The nodes must compute what ``forward(x, train=False)`` does.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import OnnxError

__all__ = ["OnnxGraph"]


class OnnxGraph:
    """ONNX nodes and initializers (weights), written one layer call at a time.

    ``dtype`` is the model's float type (constants a layer adds should have it) and ``opset``
    the ONNX operator set the file declares.
    """

    def __init__(self, dtype: np.dtype, opset: int) -> None:
        self.dtype = np.dtype(dtype)
        self.opset = opset
        self.nodes: list[Any] = []  # onnx.NodeProto, in order
        self.initializers: dict[str, np.ndarray] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._call: dict[str, Any] | None = None

    # -- what a layer's to_onnx uses ---------------------------------------------------------
    def node(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        """Add a node ``op_type`` reading the tensors ``inputs``; returns its output's name.
        Keyword arguments are the node's attributes (ints, floats, strings or lists of them)."""
        import onnx

        call = self._current("node")
        call["count"] += 1
        name = f"{call['name']}/{op_type}_{call['count']}"
        node = onnx.helper.make_node(op_type, list(inputs), [name], name=name, **attributes)
        self.nodes.append(node)
        call["nodes"].append(node)
        return name

    def param(self, key: str, value: np.ndarray | None = None) -> str:
        """The initializer of the layer's parameter or buffer ``key`` (``"W"``,
        ``"running_mean"``), named ``<layer name>.<key>`` as :attr:`dlx.Sequential.params`
        names it; ``value`` replaces its array (as when BatchNorm is folded into a Conv)."""
        call = self._current("param")
        layer = call["layer"]
        if value is None:
            arrays = {**layer.params, **layer.buffers}
            if key not in arrays:
                raise OnnxError(
                    f"{type(layer).__name__} has no parameter or buffer {key!r} "
                    f"(it has {sorted(arrays)})"
                )
            value = arrays[key]
        name = f"{call['layer_name']}.{key}"
        self.initializers.setdefault(name, np.ascontiguousarray(value))
        return name

    def constant(self, value: Any) -> str:
        """An initializer holding ``value`` (a number or an array, of the model's dtype unless
        it is an integer array, as Reshape's shape is)."""
        call = self._current("constant")
        array = np.asarray(value)
        if array.dtype.kind != "i":
            array = array.astype(self.dtype)
        call["constants"] += 1
        name = f"{call['name']}/const_{call['constants']}"
        self.initializers[name] = array
        return name

    def shape(self, tensor: str) -> tuple[int, ...]:
        """One sample's shape (no batch axis) of a tensor the layer reads."""
        if tensor not in self._shapes:
            raise OnnxError(f"the graph knows no shape for the tensor {tensor!r}")
        return self._shapes[tensor]

    # -- what the exporter uses -----------------------------------------------------------
    def set_shape(self, tensor: str, shape: tuple[int, ...]) -> None:
        self._shapes[tensor] = tuple(shape)

    def begin(self, name: str, layer: Any, layer_name: str, inputs: list[str]) -> None:
        """Start the nodes of one layer call, ``name`` being the call's node name and
        ``inputs`` the tensors it reads."""
        self._call = {
            "name": name,
            "layer": layer,
            "layer_name": layer_name,
            "inputs": list(inputs),
            "count": 0,
            "constants": 0,
            "nodes": [],
        }

    def end(self, result: str, output: str, config: dict[str, Any] | None) -> None:
        """Finish the call: its nodes' last output is renamed ``output`` and each node is
        tagged with the call (``dlx.node``), the first also with the layer's name, config and
        the tensors the call reads, so that :func:`dlx.onnx.load` can rebuild the very layer."""
        import onnx

        call = self._current("end")
        self._call = None
        nodes = call["nodes"]
        produced = [n for n in nodes if result in n.output]
        if not produced:  # the layer is the identity: its output is one of its inputs
            node = onnx.helper.make_node(
                "Identity", [result], [output], name=f"{call['name']}/Identity"
            )
            self.nodes.append(node)
            nodes.append(node)
        else:
            for node in nodes:
                node.input[:] = [output if i == result else i for i in node.input]
            produced[-1].output[:] = [output if o == result else o for o in produced[-1].output]
        if config is None:
            return
        for node in nodes:
            node.metadata_props.add(key="dlx.node", value=call["name"])
        nodes[0].metadata_props.add(key="dlx.layer", value=call["layer_name"])
        nodes[0].metadata_props.add(key="dlx.config", value=json.dumps(config, sort_keys=True))
        nodes[0].metadata_props.add(key="dlx.inputs", value=json.dumps(call["inputs"]))

    def _current(self, what: str) -> dict[str, Any]:
        if self._call is None:
            raise OnnxError(f"OnnxGraph.{what} is called from a layer's to_onnx only")
        return self._call
