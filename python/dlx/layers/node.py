"""Symbolic arrays for wiring a graph network, in the style of Keras's functional API.

``x = dlx.Input((1, 28, 28))`` is a node with a sample shape (no batch axis); calling a
layer on nodes, ``h = layer(x)``, records the edge and returns a new node with the layer's
output shape, computed now, so a shape that does not fit is an error where the graph is
wired, not at the first batch. :class:`dlx.Model` turns the nodes into a network.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DlxTypeError, DlxValueError
from ..ops import _checks

if TYPE_CHECKING:
    from .base import Layer

__all__ = ["Input", "Node"]

# Node names become parameter names and checkpoint member names: a safe alphabet only.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# The shapes of a graph are found by running each layer on one zero sample; a sample larger
# than this (2**26 values, 256 MiB of float32) is refused rather than allocated.
MAX_SAMPLE_ELEMENTS = 2**26


class Node:
    """A symbolic array: an input of a graph, or the output of a layer called on nodes.

    ``shape`` is one sample's shape; ``layer`` and ``inputs`` say how it is computed (None
    and () for an Input); ``name`` is the user's (``layer(x, name="stage1.conv1")``) or None.
    """

    __slots__ = ("inputs", "layer", "name", "shape")

    def __init__(self, layer: Layer | None, inputs: tuple[Node, ...], shape, name: str | None):
        self.layer, self.inputs, self.shape, self.name = layer, inputs, tuple(shape), name

    @classmethod
    def from_call(cls, layer: Layer, inputs: tuple, name: str | None) -> Node:
        """The node of ``layer`` called on ``inputs``, its output shape computed."""
        for i, node in enumerate(inputs):
            if not isinstance(node, Node):
                raise DlxTypeError(
                    f"{type(layer).__name__} was called on nodes and a {type(node).__name__} "
                    f"(argument {i}): a graph layer takes nodes only"
                )
        _check_name(name)
        merges = getattr(layer, "merges", False)
        if merges and len(inputs) < 2:
            raise DlxValueError(
                f"{type(layer).__name__} merges two or more nodes, got {len(inputs)}"
            )
        if not merges and len(inputs) != 1:
            raise DlxValueError(
                f"{type(layer).__name__} takes one input, got {len(inputs)} nodes; merge them "
                "first with dlx.layers.Add, Concat or Mul"
            )
        for node in inputs:
            if math.prod(node.shape) > MAX_SAMPLE_ELEMENTS:
                raise DlxValueError(
                    f"{node.describe()} has samples of shape {node.shape}, more than "
                    f"{MAX_SAMPLE_ELEMENTS:,} values"
                )
        try:
            if merges:
                shape = layer.output_shape(*(n.shape for n in inputs))
            else:
                shape = layer.output_shape(inputs[0].shape)
        except (TypeError, ValueError) as error:
            where = f" at node {name!r}" if name else ""
            described = ", ".join(f"{n.describe()} {n.shape}" for n in inputs)
            raise DlxValueError(
                f"{type(layer).__name__}{where} cannot take {described}: {error}"
            ) from error
        return cls(layer, tuple(inputs), shape, name)

    def describe(self) -> str:
        if self.name:
            return repr(self.name)
        return "an Input" if self.layer is None else f"a {type(self.layer).__name__} output"

    def __repr__(self) -> str:
        kind = "Input" if self.layer is None else type(self.layer).__name__
        label = f", name={self.name!r}" if self.name else ""
        return f"Node({kind}, shape={self.shape}{label})"


def Input(shape, name: str | None = None) -> Node:
    """An input of a graph network: ``shape`` is one sample's shape, without the batch axis."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise DlxTypeError(f"shape must be a tuple of sizes, got {shape!r}")
    sizes = tuple(_checks.integer(s, "each size of shape", 1) for s in shape)
    if math.prod(sizes) > MAX_SAMPLE_ELEMENTS:
        raise DlxValueError(
            f"an input sample of shape {sizes} holds more than {MAX_SAMPLE_ELEMENTS:,} values"
        )
    _check_name(name)
    return Node(None, (), sizes, name)


def _check_name(name: object) -> None:
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise DlxValueError(
            f"a node name is letters, digits, '_', '-' and '.', at most 100 of them, got {name!r}"
        )
