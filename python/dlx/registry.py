"""The layer registry: layers by name, including layers that other packages provide.

A package provides layers by declaring entry points in the group ``dlx.layers``::

    [project.entry-points."dlx.layers"]
    GELU = "dlx_gelu.layers:GELU"

They are discovered the first time a name is not found (or the list is asked for), cached,
and refreshed by :func:`refresh_plugins`. A plugin that fails to load becomes a warning that
names it; everything else keeps working. ``DLX_DISABLE_PLUGIN_AUTOLOAD=1`` turns discovery off.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import DlxKeyError, DlxTypeError, DlxValueError
from .layers import base
from .layers.base import Layer

__all__ = [
    "ENTRY_POINT_GROUP",
    "build_layer",
    "get_layer",
    "layer_providers",
    "list_layers",
    "name_of",
    "refresh_plugins",
    "register_layer",
]

ENTRY_POINT_GROUP = "dlx.layers"

_layers: dict[str, type[Layer]] = {}
_providers: dict[str, str] = {}  # name -> what provides it: "dlx", or a distribution name
_from_entry_points: set[str] = set()
_plugins_loaded = False


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _add(cls: Any, name: str | None, override: bool, provider: str) -> type[Layer]:
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise DlxTypeError(
            f"only subclasses of dlx.Layer can be registered, got {cls!r} ({type(cls).__name__})"
        )
    name = cls.__name__ if name is None else name
    if not isinstance(name, str) or not name.isidentifier():
        raise DlxValueError(f"a layer name must be an identifier, got {name!r}")
    held = _layers.get(name)
    if held is not None and held is not cls and not override:
        raise DlxValueError(
            f"layer name {name!r} is already registered by {_origin(held)} "
            f"(from {_providers[name]}); pass override=True to replace it"
        )
    _layers[name] = cls
    _providers[name] = provider
    return cls


def register_layer(name: Any = None, *, override: bool = False):
    """Register a Layer subclass under ``name`` (default: the class name).

    Works as ``@register_layer``, ``@register_layer("Name")``, or a plain call
    ``register_layer(MyLayer)``. A name that is taken raises ``ValueError`` naming the class
    that holds it, unless ``override=True``.
    """
    if isinstance(name, type) or (name is not None and not isinstance(name, str)):
        return _add(name, None, override, _provider_of(name))

    def decorate(cls):
        return _add(cls, name, override, _provider_of(cls))

    return decorate


def _provider_of(cls: Any) -> str:
    module = getattr(cls, "__module__", "") or ""
    return "dlx" if module == "dlx" or module.startswith("dlx.") else module.split(".")[0]


def _autoload_disabled() -> bool:
    return os.environ.get("DLX_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0")


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "an unknown distribution"


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded or _autoload_disabled():
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            _add(ep.load(), ep.name, False, _distribution(ep))
            _from_entry_points.add(ep.name)
        except Exception as error:  # a broken plugin must not break dlx
            warnings.warn(
                f"dlx could not load layer plugin {ep.name!r} = {ep.value!r} "
                f"from distribution {_distribution(ep)!r}: {error}",
                RuntimeWarning,
                stacklevel=3,
            )


def refresh_plugins() -> None:
    """Forget the plugin layers and discover the installed ones again."""
    global _plugins_loaded
    for name in _from_entry_points:
        del _layers[name], _providers[name]
    _from_entry_points.clear()
    _plugins_loaded = False
    _load_plugins()


def get_layer(name: str) -> type[Layer]:
    """The layer class registered as ``name``; ``KeyError`` lists close matches."""
    if name not in _layers:
        _load_plugins()
    if name not in _layers:
        close = difflib.get_close_matches(str(name), list(_layers), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise DlxKeyError(f"no layer named {name!r} is registered{hint} (see dlx.list_layers())")
    return _layers[name]


def list_layers(pattern: str = "*") -> list[str]:
    """Sorted names of the registered layers matching the fnmatch ``pattern``."""
    _load_plugins()
    return sorted(fnmatch.filter(_layers, pattern))


def layer_providers() -> dict[str, str]:
    """Name of each registered layer -> what provides it ("dlx" or a distribution)."""
    _load_plugins()
    return {name: _providers[name] for name in sorted(_layers)}


def name_of(cls: type) -> str:
    """The name ``cls`` is registered under (looking among plugins if need be)."""
    for attempt in range(2):
        for name, registered in _layers.items():
            if registered is cls:
                return name
        if attempt == 0:
            _load_plugins()
    raise DlxValueError(
        f"{_origin(cls)} is not registered; decorate it with @dlx.register_layer so that "
        "models using it can be saved and rebuilt"
    )


def build_layer(config: dict[str, Any]) -> Layer:
    """A layer from ``{"type": name, **constructor arguments}`` (the form of ``to_config``)."""
    if not isinstance(config, dict) or "type" not in config:
        raise DlxValueError(f"a layer config must be a dict with a 'type' key, got {config!r}")
    args = dict(config)
    cls = get_layer(args.pop("type"))
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as error:  # arguments the constructor does not take, or lacks
        raise DlxTypeError(f"cannot build {config['type']!r} from {args}: {error}") from error
    return cls(**args)


def declared_state_shapes(config: dict[str, Any]):
    """The shapes of the arrays the layer of ``config`` would hold (``Layer.state_shapes``
    with the constructor's defaults filled in), computed without building it; None where its
    class does not say. Raises whatever binding the arguments raises."""
    cls = get_layer(config["type"])
    args = {k: v for k, v in config.items() if k != "type"}
    bound = inspect.signature(cls).bind(**args)
    bound.apply_defaults()
    return cls.state_shapes(dict(bound.arguments))


def _register_builtins() -> None:
    from . import layers

    for cls in (
        layers.Add,
        layers.Affine,
        layers.AvgPool2d,
        layers.BatchNorm,
        layers.Concat,
        layers.Conv2d,
        layers.Dropout,
        layers.Flatten,
        layers.GlobalAvgPool2d,
        layers.MaxPool2d,
        layers.Mul,
        layers.ReLU,
        layers.Sigmoid,
        layers.Tanh,
    ):
        _add(cls, None, False, "dlx")


_register_builtins()
base.set_registry_lookup(name_of)
