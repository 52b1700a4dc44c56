"""Graph networks: layers wired by calling them on nodes, as in Keras's functional API.

A residual block in a few lines::

    x = dlx.Input((16, 8, 8))
    h = dlx.layers.Conv2d(16, 16, 3, padding=1)(x)
    h = dlx.layers.ReLU()(dlx.layers.BatchNorm(16)(h))
    h = dlx.layers.BatchNorm(16)(dlx.layers.Conv2d(16, 16, 3, padding=1)(h))
    y = dlx.layers.ReLU()(dlx.layers.Add()(x, h))
    block = dlx.Model(inputs=x, outputs=y)

Forward runs the nodes in topological order; backward runs them in reverse, and where a node
feeds several layers the gradients coming back from them are summed: the rule of the
computational graph's branching node (:mod:`dlx.graph`). A layer object called at several
places shares its parameters between them, and its gradient is the sum of theirs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .errors import DlxTypeError, DlxValueError
from .layers.activation import ReLU
from .layers.base import Layer
from .layers.loss import Loss
from .layers.node import Input, Node
from .network import Network, Sequential

__all__ = ["Input", "Model", "network_from_config"]


def _as_nodes(value: object, what: str) -> list[Node]:
    nodes = list(value) if isinstance(value, (list, tuple)) else [value]
    if not nodes:
        raise DlxValueError(f"{what} must name at least one node")
    for node in nodes:
        if not isinstance(node, Node):
            raise DlxTypeError(
                f"{what} must be dlx.Input nodes or layer outputs, got {type(node).__name__}"
            )
    return nodes


def _topological(outputs: list[Node]) -> list[Node]:
    """Every node the outputs depend on, each after its inputs (iteratively: deep networks
    would exceed Python's recursion limit)."""
    order, state = [], {}  # id -> 1 while visiting, 2 when placed
    for root in outputs:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if state.get(id(node)) == 2:
                continue
            if expanded:
                state[id(node)] = 2
                order.append(node)
                continue
            if state.get(id(node)) == 1:
                raise DlxValueError(f"the graph has a cycle through {node.describe()}")
            state[id(node)] = 1
            stack.append((node, True))
            stack.extend((parent, False) for parent in reversed(node.inputs))
    return order


class Model(Network):
    """A network of layers wired as a graph from ``inputs`` to ``outputs`` (nodes made with
    :func:`dlx.Input` and by calling layers on nodes), scored by ``loss``.

    ``predict`` takes one array per input (a list where there are several) and returns one
    per output. Training needs a single output. Parameters are named ``"<layer
    name>.<param>"``, the layer name being that of the first node that calls it: the name the
    user gave (``layer(x, name="stage1.conv1")``), or one made from its type
    (``"conv2d_1"``).

    A layer called at several places runs each later call on a shallow copy made when the
    model is built (sharing its ``params`` and ``buffers`` dicts, so training updates reach
    every call); set a shared layer's other attributes (a BatchNorm's momentum, a Dropout's
    p) before building the model.
    """

    def __init__(
        self,
        inputs: Node | Sequence[Node],
        outputs: Node | Sequence[Node],
        loss: Loss | str = "SoftmaxWithLoss",
        weight_decay: float = 0.0,
        regularization: str = "l2",
    ) -> None:
        self.inputs = _as_nodes(inputs, "inputs")
        self.outputs = _as_nodes(outputs, "outputs")
        if len({id(n) for n in self.inputs}) != len(self.inputs):
            raise DlxValueError("inputs lists a node twice")
        for node in self.inputs:
            if node.layer is not None:
                raise DlxValueError(f"inputs must be dlx.Input nodes, got {node.describe()}")
        nodes = _topological(self.outputs)
        given = {id(n) for n in self.inputs}
        reached = {id(n) for n in nodes}
        for node in nodes:
            if node.layer is None and id(node) not in given:
                raise DlxValueError(
                    f"the outputs depend on {node.describe()} {node.shape}, which is not among "
                    "the model's inputs"
                )
        for node in self.inputs:
            if id(node) not in reached:
                raise DlxValueError(f"the input {node.describe()} is not used by any output")
        self._nodes = nodes
        self._name_nodes_and_layers()
        # Each call of a layer runs on an object of its own, so that two calls of one layer
        # keep their caches apart: the first call uses the layer, later calls shallow copies
        # that share its params and buffers (the same dicts) with grads of their own.
        self._runners: dict[int, Layer] = {}
        seen: set[int] = set()
        for node in self._computed:
            layer = node.layer
            if id(layer) in seen:
                runner = copy.copy(layer)
                runner.grads = {}
            else:
                runner = layer
                seen.add(id(layer))
            self._runners[id(node)] = runner
        consumers: dict[int, int] = {}
        for node in self._computed:
            for parent in node.inputs:
                consumers[id(parent)] = consumers.get(id(parent), 0) + 1
        self._consumers = consumers
        self._relu_applied_by = self._fusable_relus()
        self._relu_appliers = set(self._relu_applied_by.values())
        super().__init__(loss, weight_decay, regularization)

    def _fusable_relus(self) -> dict[int, int]:
        """The ReLU nodes that training fuses into the layer before them, each with that
        layer's node: where the ReLU alone reads the output of a layer that ``applies_relu``
        (BatchNorm, Add), that layer applies max(0, .) in its own pass over the data."""
        outputs = {id(n) for n in self.outputs}
        fused = {}
        for node in self._computed:
            parent = node.inputs[0]
            if (
                type(node.layer) is ReLU
                and parent.layer is not None
                and self._runners[id(parent)].applies_relu
                and self._consumers[id(parent)] == 1
                and id(parent) not in outputs
            ):
                fused[id(node)] = id(parent)
        return fused

    def _name_nodes_and_layers(self) -> None:
        names: dict[str, Node] = {}
        for node in self._nodes:
            if node.name is not None:
                if node.name in names and names[node.name] is not node:
                    raise DlxValueError(f"two nodes are named {node.name!r}")
                names[node.name] = node
        counts: dict[str, int] = {}
        self.node_names: dict[int, str] = {}
        for node in self._nodes:
            name = node.name
            while name is None or (name in names and names[name] is not node):
                kind = "input" if node.layer is None else type(node.layer).__name__.lower()
                counts[kind] = counts.get(kind, 0) + 1
                name = f"{kind}_{counts[kind]}"
            names[name] = node
            self.node_names[id(node)] = name
        self._computed = [n for n in self._nodes if n.layer is not None]
        self._layers: list[tuple[str, Layer]] = []
        named: set[int] = set()
        for node in self._computed:
            if id(node.layer) not in named:
                named.add(id(node.layer))
                self._layers.append((self.node_names[id(node)], node.layer))

    # -- what Network needs ---------------------------------------------------------------
    def _named_layers(self) -> list[tuple[str, Layer]]:
        return self._layers

    @property
    def layers(self) -> list[Layer]:
        """Every layer of the model once, in the order of their first call."""
        return [layer for _, layer in self._layers]

    def predict(self, x, train: bool = False):
        """The outputs for the inputs ``x`` (an array, or a list of one per input);
        inference mode unless ``train``. At inference every intermediate array is dropped as
        soon as the layers that read it are done, and ReLU and BatchNorm work in place on an
        array no other layer reads. In training a ReLU that alone reads a BatchNorm's or an
        Add's output is applied in that layer's pass (``Layer.applies_relu``)."""
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(arrays) != len(self.inputs):
            raise DlxValueError(
                f"the model has {len(self.inputs)} inputs, got {len(arrays)} arrays"
            )
        values = {id(n): a for n, a in zip(self.inputs, arrays)}
        fresh: set[int] = set()  # arrays this call made and no one else holds
        left = dict(self._consumers)
        keep = {id(n) for n in self.outputs}
        for node in self._computed:
            runner = self._runners[id(node)]
            args = [values[id(p)] for p in node.inputs]
            if train and id(node) in self._relu_appliers:
                out = runner.forward(*args, train=True, relu=True)
            elif train and id(node) in self._relu_applied_by:
                out = runner.forward_applied(args[0])
            elif runner.merges:
                out = runner.forward(*args, train=train)
            elif (
                not train
                and runner.infers_in_place
                and id(node.inputs[0]) in fresh
                and left[id(node.inputs[0])] == 1
                and id(node.inputs[0]) not in keep
            ):
                out = runner.forward(args[0], train=False, inplace=True)
            else:
                out = runner.forward(args[0], train=train)
            values[id(node)] = out
            if not train:
                self._track_inference_memory(node, runner, out, fresh, left, keep, values)
        results = [values[id(n)] for n in self.outputs]
        return results[0] if len(results) == 1 else results

    @staticmethod
    def _track_inference_memory(node, runner, out, fresh, left, keep, values) -> None:
        """After ``node`` ran at inference: note whether its output is a temporary later
        layers may overwrite, and drop the arrays no later layer reads."""
        if (
            runner.fresh_inference_output
            and isinstance(out, np.ndarray)
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            fresh.add(id(node))
        else:  # the output may be an input itself or a view of one (Dropout, Flatten), so
            for parent in node.inputs:  # those have a reader their count does not show
                fresh.discard(id(parent))
        for parent in node.inputs:
            left[id(parent)] -= 1
            if left[id(parent)] == 0 and id(parent) not in keep:
                values.pop(id(parent), None)

    def loss(self, x, t: np.ndarray, train: bool = True) -> float:
        if len(self.outputs) != 1:
            raise DlxValueError(
                f"a loss needs a model with one output, this one has {len(self.outputs)}"
            )
        return super().loss(x, t, train)

    def _backpropagate(self, d: np.ndarray) -> None:
        grads = {id(self.outputs[0]): d}
        relu_outputs: dict[int, np.ndarray] = {}  # of the ReLUs fused into the node's layer
        for node in reversed(self._computed):
            g = grads.pop(id(node), None)
            if g is None:  # the output does not depend on this node
                continue
            runner = self._runners[id(node)]
            if id(node) in self._relu_applied_by:
                # A fused ReLU: the layer before takes its gradient back through it.
                relu_outputs[id(node.inputs[0])] = runner.out
                self._accumulate(grads, node.inputs[0], g)
                continue
            fused = {}
            if id(node) in relu_outputs:
                fused["relu_output"] = relu_outputs.pop(id(node))
            if runner.merges:
                for parent, dp in zip(node.inputs, runner.backward(g, **fused)):
                    self._accumulate(grads, parent, dp)
            elif node.inputs[0].layer is None and not fused:  # the data: no gradient needed
                runner.backward_params(g)
            else:
                self._accumulate(grads, node.inputs[0], runner.backward(g, **fused))
        self._sum_shared_gradients()

    @staticmethod
    def _accumulate(grads: dict[int, np.ndarray], node: Node, d: np.ndarray) -> None:
        if node.layer is None:
            return
        before = grads.get(id(node))
        if before is None:
            grads[id(node)] = d
            return
        if before.shape != d.shape or before.dtype != d.dtype:
            raise DlxValueError(
                f"the gradients that reach {node!r} from the layers it feeds differ: "
                f"{before.shape} {before.dtype} and {d.shape} {d.dtype}"
            )
        # A new array, never in place: a merge layer hands the same array to several inputs.
        grads[id(node)] = ops.add(before, d)

    def _sum_shared_gradients(self) -> None:
        for node in self._computed:
            runner = self._runners[id(node)]
            if runner is node.layer:
                continue
            for key, g in runner.grads.items():
                node.layer.grads[key] = node.layer.grads[key] + g

    # -- structure ------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """The graph as plain JSON: its layers by name, its nodes in order (each input's
        sample shape; each call's layer and input nodes), and which are inputs and outputs."""
        nodes = []
        layer_of = {id(layer): name for name, layer in self._layers}
        for node in self._nodes:
            name = self.node_names[id(node)]
            if node.layer is None:
                nodes.append({"name": name, "shape": list(node.shape)})
            else:
                nodes.append(
                    {
                        "name": name,
                        "layer": layer_of[id(node.layer)],
                        "inputs": [self.node_names[id(p)] for p in node.inputs],
                    }
                )
        return {
            "class": "Model",
            "layers": {name: layer.to_config() for name, layer in self._layers},
            "nodes": nodes,
            "inputs": [self.node_names[id(n)] for n in self.inputs],
            "outputs": [self.node_names[id(n)] for n in self.outputs],
            "loss": type(self.loss_layer).__name__,
            "weight_decay": self.weight_decay,
            "regularization": self.regularization,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Rebuild a model from :meth:`to_config` output (fresh parameters)."""
        from .registry import build_layer

        keys = {
            "class",
            "layers",
            "nodes",
            "inputs",
            "outputs",
            "loss",
            "weight_decay",
            "regularization",
        }
        if not isinstance(config, dict) or not isinstance(config.get("nodes"), list):
            raise DlxValueError("a graph config must be a dict with a list under 'nodes'")
        unknown = set(config) - keys
        if unknown:
            raise DlxValueError(f"unknown keys in a graph config: {sorted(unknown)}")
        layer_configs = config.get("layers")
        if not isinstance(layer_configs, dict):
            raise DlxValueError(
                "a graph config must map layer names to layer configs under 'layers'"
            )
        layers = {}
        for name, layer_config in layer_configs.items():
            try:
                layers[name] = build_layer(layer_config)
            except (TypeError, ValueError) as error:
                kind = DlxTypeError if isinstance(error, TypeError) else DlxValueError
                raise kind(f"layers[{name!r}]: {error}") from error
        nodes: dict[str, Node] = {}
        for i, spec in enumerate(config["nodes"]):
            where = f"nodes[{i}]"
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise DlxValueError(f"{where} must be a dict with a 'name'")
            name = spec["name"]
            if name in nodes:
                raise DlxValueError(f"{where}: a second node named {name!r}")
            if "shape" in spec:
                if set(spec) != {"name", "shape"}:
                    raise DlxValueError(f"{where} ({name!r}): an input has a name and a shape only")
                shape = spec["shape"]
                nodes[name] = Input(tuple(shape) if isinstance(shape, list) else shape, name=name)
                continue
            if set(spec) != {"name", "layer", "inputs"} or not isinstance(spec["inputs"], list):
                raise DlxValueError(f"{where} ({name!r}) must have a layer and a list of inputs")
            if not isinstance(spec["layer"], str) or spec["layer"] not in layers:
                raise DlxValueError(
                    f"{where} ({name!r}) calls the layer {spec['layer']!r}, which 'layers' does not define"
                )
            missing = [p for p in spec["inputs"] if not isinstance(p, str) or p not in nodes]
            if missing:
                raise DlxValueError(
                    f"{where} ({name!r}) takes {missing}, which are not earlier nodes"
                )
            nodes[name] = layers[spec["layer"]](*(nodes[p] for p in spec["inputs"]), name=name)
        ends = {}
        for key in ("inputs", "outputs"):
            names = config.get(key)
            if not isinstance(names, list) or not all(
                isinstance(n, str) and n in nodes for n in names
            ):
                raise DlxValueError(f"'{key}' must list names of nodes, got {names!r}")
            ends[key] = [nodes[n] for n in names]
        return cls(
            ends["inputs"],
            ends["outputs"],
            loss=config.get("loss", "SoftmaxWithLoss"),
            weight_decay=config.get("weight_decay", 0.0),
            regularization=config.get("regularization", "l2"),
        )

    def _graph_calls(self) -> list[tuple[str, Layer, str, list[str], tuple[int, ...]]]:
        """(node name, layer, layer name, input node names, output shape) of every layer
        call in order, as :func:`dlx.onnx.export` writes them."""
        layer_of = {id(layer): name for name, layer in self._layers}
        return [
            (
                self.node_names[id(node)],
                node.layer,
                layer_of[id(node.layer)],
                [self.node_names[id(p)] for p in node.inputs],
                node.shape,
            )
            for node in self._computed
        ]

    def _layer_calls(self, input_shape=None):
        """(label, layer, input shapes, output shape, first call) of every layer call, for
        dlx summary."""
        if input_shape is not None and len(self.inputs) == 1:
            if tuple(input_shape) != self.inputs[0].shape:
                raise DlxValueError(
                    f"the model's input has shape {self.inputs[0].shape}, got {tuple(input_shape)}"
                )
        seen: set[int] = set()
        calls = []
        for node in self._computed:
            first = id(node.layer) not in seen
            seen.add(id(node.layer))
            label = f"{self.node_names[id(node)]} {type(node.layer).__name__}"
            calls.append((label, node.layer, [p.shape for p in node.inputs], node.shape, first))
        return calls

    def __repr__(self) -> str:
        inner = "".join(
            f"\n  {self.node_names[id(n)]} = {type(n.layer).__name__}"
            f"({', '.join(self.node_names[id(p)] for p in n.inputs)})  {n.shape}"
            for n in self._computed
        )
        return f"Model({inner}\n  loss={self.loss_layer!r}\n)"


def network_from_config(config: dict[str, Any]) -> Network:
    """A Model from a graph config (one with 'nodes'), else a Sequential."""
    if isinstance(config, dict) and "nodes" in config:
        return Model.from_config(config)
    return Sequential.from_config(config)
