"""The one base class of every dlx layer."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DlxTypeError, DlxValueError


class Layer:
    """A differentiable step of a network.

    A layer needs two methods:

    - ``forward(x, train=True) -> y`` computes the output and caches what backward needs;
      ``train=False`` selects inference behaviour (Dropout off, BatchNorm on running stats).
    - ``backward(dout) -> dx`` takes dL/dy, returns dL/dx and fills ``self.grads`` with
      dL/dp for every array ``p`` in ``self.params`` (same keys, same shapes).

    ``backward_params(dout)`` is optional: the same without dx, for the first layer.

    At inference (``train=False``) a layer keeps nothing for backward. Two class attributes
    let a network save memory there: ``fresh_inference_output`` says that ``forward(x,
    train=False)`` always returns a new array the layer keeps no reference to, and
    ``infers_in_place`` that ``forward(x, train=False, inplace=True)`` may write its output
    over x. A network passes ``inplace=True`` only when x is such a fresh array; both default
    to False, which is always safe.

    In training a graph network (:class:`dlx.Model`) fuses a ReLU into the layer before it
    where the ReLU alone reads that layer's output, saving passes over the data: a layer with
    ``applies_relu`` takes ``forward(..., relu=True)`` and returns max(0, its output),
    keeping for backward what it keeps without it, and ``backward(dout, relu_output=y)``,
    where dout is the gradient at the ReLU's output y; the ReLU itself only keeps y
    (``ReLU.forward_applied``). This claim too defaults to False, and a subclass that writes
    its own ``forward`` or ``backward`` drops it.

    ``params`` and ``grads`` are empty for layers without parameters. ``buffers`` holds
    arrays saved with a model that training does not update by gradient (BatchNorm's
    running statistics). ``decay`` names the params that weight decay applies to.

    The arguments a layer was constructed with are recorded automatically, so
    :meth:`to_config` can rebuild it from the registry without any extra code.
    """

    decay: tuple[str, ...] = ()
    merges = False  # a merge layer (dlx.layers.Add, ...) takes several inputs
    fresh_inference_output: bool = False
    infers_in_place: bool = False
    applies_relu: bool = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Wrap each subclass's __init__ so that the outermost call records its arguments
        # (a subclass's call to super().__init__ does not overwrite them).
        super().__init_subclass__(**kwargs)
        # The claims describe a forward method (and applies_relu a backward method too): a
        # subclass that writes its own makes none until it states them again.
        writes = {"forward", "backward"} & cls.__dict__.keys()
        claims = {
            "fresh_inference_output": "forward" in writes,
            "infers_in_place": "forward" in writes,
            "applies_relu": bool(writes),
        }
        for claim, dropped in claims.items():
            if dropped and claim not in cls.__dict__:
                setattr(cls, claim, False)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        if "state_shapes" not in cls.__dict__:  # shapes follow the constructor's arguments
            cls.state_shapes = classmethod(lambda cls, args: None)  # type: ignore[assignment]
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Layer, *args: Any, **kw: Any) -> None:
            if "_init_args" not in self.__dict__:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop(next(iter(signature.parameters)))  # self
                for name, p in signature.parameters.items():
                    if p.kind is inspect.Parameter.VAR_KEYWORD:
                        arguments.update(arguments.pop(name, {}))
                    elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                        arguments.pop(name, None)
                self.__dict__["_init_args"] = arguments
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]

    @classmethod
    def state_shapes(cls, args: dict[str, Any]) -> dict[str, dict[str, tuple[int, ...]]] | None:
        """The shapes of the arrays a layer built with the constructor arguments ``args``
        (defaults filled in) would hold, ``{"params": {name: shape}, "buffers": {...}}``,
        computed without building it; None where the class does not say. :func:`dlx.load`
        checks a file against them before it allocates a model, so that a file cannot make it
        build a huge layer it then fails to fill. Layers with parameters should define it."""
        return None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, train)")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement backward(dout)")

    def backward_params(self, dout: np.ndarray) -> None:
        """Fill ``self.grads`` from dL/dy where dL/dx is not wanted: a network calls this on
        its first layer, whose input is the data. This runs :meth:`backward` and drops dx;
        a layer whose input gradient costs real work (Conv2d) overrides it to skip that."""
        self.backward(dout)

    def __call__(self, *xs: Any, train: bool = True, name: str | None = None) -> Any:
        """``forward`` on arrays; on nodes of a graph (:func:`dlx.Input`), a new node that
        records this call (``name`` names it, and the layer's parameters after it)."""
        from .node import Node

        if any(isinstance(x, Node) for x in xs):
            return Node.from_call(self, xs, name)
        if name is not None:
            raise DlxTypeError("name= names a node of a graph: call the layer on dlx.Input nodes")
        return self.forward(*xs, train=train)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample's output for one sample's input shape (no batch axis)."""
        dtype = next(iter(self.params.values())).dtype if self.params else np.float64
        y = self.forward(np.zeros((1, *input_shape), dtype=dtype), train=False)
        return tuple(y.shape[1:])

    def multiply_adds(
        self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]
    ) -> int | None:
        """Multiply-accumulate operations of one sample's forward pass (shapes without the
        batch axis), as ``dlx summary`` counts them: the products of the weights with the
        input. A layer without parameters costs 0 by this count; a layer with parameters that
        does not say returns None (shown as unknown)."""
        return None if self.params else 0

    def config_args(self) -> dict[str, Any]:
        """The constructor arguments as JSON values: dtypes by name, generators left out."""
        args: dict[str, Any] = {}
        for name, value in getattr(self, "_init_args", {}).items():
            if isinstance(value, np.random.Generator) or (value is None and name == "rng"):
                continue
            if (isinstance(value, type) and issubclass(value, np.generic)) or isinstance(
                value, np.dtype
            ):
                value = np.dtype(value).name
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, np.generic):
                value = value.item()
            args[name] = value
        return args

    def to_config(self) -> dict[str, Any]:
        """``{"type": registered name, **constructor arguments}``, plain JSON."""
        return {"type": _registered_name(type(self)), **self.config_args()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config_args().items())
        return f"{type(self).__name__}({args})"


def _registry_not_loaded(cls: type) -> str:
    raise DlxValueError("dlx.registry is not loaded: import dlx")


# The name a layer class is registered under. dlx.registry, which imports the layers, installs
# its lookup here when it loads (set_registry_lookup), so the layers never import it.
_registered_name: Callable[[type], str] = _registry_not_loaded


def set_registry_lookup(lookup: Callable[[type], str]) -> None:
    global _registered_name
    _registered_name = lookup


def cached(layer: Layer, value: Any) -> Any:
    """What a layer's forward kept for its backward, or a clear error where it kept nothing."""
    if value is None:
        raise RuntimeError(
            f"{type(layer).__name__}.backward needs the cache of forward(x, train=True); its "
            "last forward ran at inference (train=False), or it has not run"
        )
    return value


def check_input(layer: Layer, x: object, ndim: int | tuple[int, ...], layout: str) -> np.ndarray:
    """x as a float array of the right rank (and of the layer's dtype if it has params)."""
    if not isinstance(x, np.ndarray):
        raise DlxTypeError(
            f"{type(layer).__name__} input must be a numpy.ndarray, got {type(x).__name__}"
        )
    if x.dtype.kind != "f":
        raise DlxTypeError(
            f"{type(layer).__name__} input must be floating point, got dtype {x.dtype}"
        )
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in ranks:
        raise DlxValueError(f"{type(layer).__name__} input must be {layout}, got shape {x.shape}")
    if layer.params:
        dtype = next(iter(layer.params.values())).dtype
        if x.dtype != dtype:
            raise DlxTypeError(
                f"{type(layer).__name__} has {dtype} parameters but got {x.dtype} input; "
                f"convert the input with x.astype(np.{dtype})"
            )
    return x
