"""Networks: layers wired together, a loss at the end, backprop through all.

:class:`Network` holds what every network offers (parameters by name, loss with weight decay,
gradients, state, accuracy); :class:`Sequential` applies its layers in order, and
:class:`dlx.Model` (in :mod:`dlx.model`) wires them as a graph."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .errors import DlxKeyError, DlxTypeError, DlxValueError
from .layers.base import Layer
from .layers.loss import Loss, MeanSquaredError, SoftmaxWithLoss

__all__ = ["LOSSES", "REGULARIZATIONS", "Network", "Sequential"]

LOSSES: dict[str, type[Loss]] = {
    "SoftmaxWithLoss": SoftmaxWithLoss,
    "MeanSquaredError": MeanSquaredError,
}

# The norms weight decay can penalise: see :class:`Network`.
REGULARIZATIONS = ("l2", "l1", "linf")


class Network:
    """The base of every dlx network: a subclass wires the layers (``_named_layers``,
    ``predict``, ``_backpropagate``), this class does the rest.

    Parameters are exposed flat as ``"<layer name>.<name>"``, the same arrays the layers own,
    so ``optimizer.update(net.params, net.gradient(x, t))`` trains the network in place.

    Weight decay adds a penalty to the loss for each weight array W that a layer lists in its
    ``decay`` (not biases, not BatchNorm's gamma and beta), and its gradient to dL/dW:

    - ``regularization="l2"``: ``0.5 * weight_decay * sum(W**2)``, gradient ``weight_decay * W``;
    - ``"l1"``: ``weight_decay * sum(|W|)``, gradient ``weight_decay * sign(W)``;
    - ``"linf"``: ``weight_decay * max(|W|)``, gradient ``weight_decay * sign(W)`` at the entry
      of largest ``|W|`` and 0 elsewhere. Where several entries share the largest ``|W|`` the
      max has no gradient; dlx takes the subgradient that splits it equally among them (each
      gets ``weight_decay * sign(W) / count``), whatever the order of the entries.
    """

    def __init__(
        self,
        loss: Loss | str = "SoftmaxWithLoss",
        weight_decay: float = 0.0,
        regularization: str = "l2",
    ) -> None:
        if isinstance(loss, str) or not isinstance(loss, Loss):
            if not isinstance(loss, str) or loss not in LOSSES:
                raise DlxValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
            loss = LOSSES[loss]()
        if not isinstance(loss, Loss):
            raise DlxTypeError(f"loss must be a dlx Loss or its name, got {type(loss).__name__}")
        self.loss_layer = loss
        if (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, (int, float))
            or not 0 <= weight_decay < float("inf")
        ):
            raise DlxValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        if not isinstance(regularization, str) or regularization not in REGULARIZATIONS:
            choices = ", ".join(repr(name) for name in REGULARIZATIONS)
            raise DlxValueError(f"regularization must be one of {choices}, got {regularization!r}")
        self.weight_decay = float(weight_decay)
        self.regularization = regularization

    # -- what a subclass provides -------------------------------------------------------
    def _named_layers(self) -> list[tuple[str, Layer]]:
        """Every layer of the network once, with the name its parameters go by."""
        raise NotImplementedError

    def predict(self, x, train: bool = False):
        raise NotImplementedError

    def _backpropagate(self, d: np.ndarray) -> None:
        """Fill every layer's grads from dL/d(output)."""
        raise NotImplementedError

    # -- parameters ---------------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in self._named_layers() for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in self._named_layers() for k, v in layer.grads.items()}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return {
            f"{n}.{k}": v for n, layer in self._named_layers() for k, v in layer.buffers.items()
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every array that defines the model: its parameters under their keys in
        :attr:`params` and its buffers (BatchNorm's running statistics) under
        ``"buffer/<key>"``. Putting them back with :meth:`load_state_dict` restores the model
        exactly, at inference as well as in training."""
        state = {key: value.copy() for key, value in self.params.items()}
        state.update({f"buffer/{key}": value.copy() for key, value in self.buffers.items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy the arrays of ``state`` (as :meth:`state_dict` makes it) into the model.

        Every array must have the shape and dtype of the one it replaces. With ``strict``
        (the default) the keys must be exactly the model's; otherwise keys the model lacks are
        an error and keys ``state`` lacks keep their values. Nothing is copied unless every
        array fits."""
        if not isinstance(state, dict):
            raise DlxTypeError(f"state must be a dict of arrays, got {type(state).__name__}")
        targets = dict(self.params)
        targets.update({f"buffer/{key}": value for key, value in self.buffers.items()})
        unexpected = sorted(set(state) - set(targets))
        missing = sorted(set(targets) - set(state)) if strict else []
        if unexpected or missing:
            raise DlxKeyError(
                f"the state does not fit this model: missing {missing or 'nothing'}, "
                f"unexpected {unexpected or 'nothing'}"
            )
        for key, value in state.items():
            target = targets[key]
            if not isinstance(value, np.ndarray):
                raise DlxTypeError(
                    f"state[{key!r}] must be a numpy.ndarray, got {type(value).__name__}"
                )
            if value.shape != target.shape or value.dtype != target.dtype:
                raise DlxValueError(
                    f"state[{key!r}] has shape {value.shape} and dtype {value.dtype}; the model "
                    f"holds {target.shape} {target.dtype} there"
                )
        for key, value in state.items():
            targets[key][...] = value

    def _decayed(self) -> Iterator[tuple[Layer, str]]:
        for _, layer in self._named_layers():
            for name in layer.decay:
                yield layer, name

    # -- forward and backward -----------------------------------------------------------
    def penalty(self) -> float:
        """The weight-decay term added to the loss."""
        if self.weight_decay == 0.0:
            return 0.0
        weights = [layer.params[n] for layer, n in self._decayed()]
        if self.regularization == "l2":
            return 0.5 * self.weight_decay * sum(float(np.sum(w**2)) for w in weights)
        if self.regularization == "l1":
            return self.weight_decay * sum(float(np.sum(np.abs(w))) for w in weights)
        return self.weight_decay * sum(float(np.max(np.abs(w))) for w in weights if w.size)

    def loss(self, x, t: np.ndarray, train: bool = True) -> float:
        """Loss of the batch (x, t) plus the weight-decay penalty."""
        return self.loss_layer.forward(self.predict(x, train=train), t) + self.penalty()

    def backward(self, dout: float = 1.0) -> dict[str, np.ndarray]:
        """Backpropagate from the loss computed last; fills and returns the gradients of
        ``dout`` times the loss (weight-decay penalty included)."""
        self._backpropagate(self.loss_layer.backward(dout))
        if self.weight_decay:
            rate = self.weight_decay * dout
            for layer, name in self._decayed():
                w = layer.params[name]
                decay = self._decay_direction(w)
                layer.grads[name] = layer.grads[name] + w.dtype.type(rate) * decay
        return self.grads

    def _decay_direction(self, w: np.ndarray) -> np.ndarray:
        """The gradient of the penalty of ``w``, divided by ``weight_decay``."""
        if self.regularization == "l2":
            return w
        if self.regularization == "l1":
            return np.sign(w)
        # L∞: only the entries of largest |w| count; ties share the gradient equally.
        direction = np.zeros_like(w)
        if w.size:
            magnitude = np.abs(w)
            largest = magnitude == magnitude.max()
            direction[largest] = np.sign(w[largest]) / w.dtype.type(np.count_nonzero(largest))
        return direction

    def loss_and_gradient(self, x, t: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The training-mode loss of (x, t) and its gradient for every parameter, by backprop."""
        loss = self.loss(x, t, train=True)
        return loss, self.backward()

    def gradient(self, x, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of :meth:`loss` (training mode) for every parameter, by backprop."""
        return self.loss_and_gradient(x, t)[1]

    def numerical_gradient(self, x, t: np.ndarray, h: float = 1e-4) -> dict[str, np.ndarray]:
        """Gradients by central differences: slow, for checking :meth:`gradient`."""
        from .gradcheck import network_numerical_gradient

        return network_numerical_gradient(self, x, t, h=h)

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 1000) -> float:
        """Fraction of samples whose highest score is the target class (labels or one-hot)."""
        labels = np.asarray(t)
        if labels.ndim == 2:
            labels = np.argmax(labels, axis=1)
        if len(x) == 0:
            return 0.0
        correct = 0
        for start in range(0, len(x), batch_size):
            scores = self.predict(x[start : start + batch_size], train=False)
            correct += int(np.sum(np.argmax(scores, axis=1) == labels[start : start + batch_size]))
        return correct / len(x)

    def summary(self, input_shape: tuple[int, ...], batch_size: int = 1) -> str:
        """A table of each layer's output shape, parameter count and multiply-adds."""
        from .summary import summarize

        return summarize(self, input_shape, batch_size)


class Sequential(Network):
    """A network that applies ``layers`` in order and scores the output with ``loss``.

    Its parameters are named by the layer's index: ``"0.W"``, ``"0.b"``, ...
    """

    def __init__(
        self,
        layers: Iterable[Layer],
        loss: Loss | str = "SoftmaxWithLoss",
        weight_decay: float = 0.0,
        regularization: str = "l2",
    ) -> None:
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise DlxTypeError(f"layer {i} must be a dlx.Layer, got {type(layer).__name__}")
        super().__init__(loss, weight_decay, regularization)

    def _named_layers(self) -> list[tuple[str, Layer]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def predict(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """The network's output (scores before the loss); inference mode unless ``train``.

        At inference the layers keep nothing for backward, and a layer that can (ReLU,
        BatchNorm) writes its output over its input where that input is a temporary array of
        this call, not the caller's x (see :class:`dlx.Layer`)."""
        if train:
            for layer in self.layers:
                x = layer.forward(x, train=True)
            return x
        fresh = False  # whether x is a temporary of this call that nothing else references
        for layer in self.layers:
            if fresh and layer.infers_in_place:
                x = layer.forward(x, train=False, inplace=True)
            else:
                x = layer.forward(x, train=False)
                # A fresh output in another memory order (a ufunc keeps its input's) is not
                # written in place: the in-place kernels need C order.
                fresh = layer.fresh_inference_output and x.flags.c_contiguous and x.flags.writeable
        return x

    def _layer_calls(self, input_shape):
        """(label, layer, input shapes, output shape, first call) of every layer, for
        dlx summary."""
        calls, shape = [], tuple(input_shape)
        for i, layer in enumerate(self.layers):
            out = layer.output_shape(shape)
            calls.append((f"{i} {type(layer).__name__}", layer, [shape], out, True))
            shape = out
        return calls

    def _backpropagate(self, d: np.ndarray) -> None:
        for layer in reversed(self.layers[1:]):
            d = layer.backward(d)
        if self.layers:
            # The first layer's input is the data: its gradient is not needed.
            self.layers[0].backward_params(d)

    # -- structure ------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """The network as plain JSON: registered layer names and their arguments."""
        return {
            "layers": [layer.to_config() for layer in self.layers],
            "loss": type(self.loss_layer).__name__,
            "weight_decay": self.weight_decay,
            "regularization": self.regularization,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuild a network from :meth:`to_config` output (fresh parameters)."""
        from .registry import build_layer

        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise DlxValueError("a network config must be a dict with a list under 'layers'")
        unknown = set(config) - {"layers", "loss", "weight_decay", "regularization"}
        if unknown:
            raise DlxValueError(f"unknown keys in network config: {sorted(unknown)}")
        layers = []
        for i, layer_config in enumerate(config["layers"]):
            try:
                layers.append(build_layer(layer_config))
            except (TypeError, ValueError) as error:
                kind = layer_config.get("type") if isinstance(layer_config, dict) else None
                where = f"layers[{i}]" + (f" ({kind})" if isinstance(kind, str) else "")
                kind_of_error = DlxTypeError if isinstance(error, TypeError) else DlxValueError
                raise kind_of_error(f"{where}: {error}") from error
        return cls(
            layers,
            loss=config.get("loss", "SoftmaxWithLoss"),
            weight_decay=config.get("weight_decay", 0.0),
            regularization=config.get("regularization", "l2"),
        )

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        decay = f", weight_decay={self.weight_decay}" if self.weight_decay else ""
        if self.weight_decay and self.regularization != "l2":
            decay += f", regularization={self.regularization!r}"
        return f"Sequential({inner}\n  loss={self.loss_layer!r}{decay}\n)"
