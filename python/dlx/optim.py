"""Optimizers with the book's interface: ``opt.update(params, grads)`` on dicts of arrays.

Each update changes the arrays of ``params`` in place (so the layers that own them see the
new values) and keeps their dtype. Per-parameter state (velocities, squared-gradient sums)
is kept by key.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .errors import DlxKeyError, DlxTypeError, DlxValueError

__all__ = [
    "SGD",
    "AdaGrad",
    "Adam",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "RMSprop",
    "get_optimizer",
]


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise DlxValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise DlxValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


class Optimizer:
    """Base class: subclasses implement ``_step(key, param, grad)`` updating ``param`` in place."""

    def __init__(self, lr: float) -> None:
        self.lr = _positive("lr", lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for key, param in params.items():
            if key not in grads:
                raise DlxKeyError(f"no gradient for parameter {key!r}")
            grad = np.asarray(grads[key])
            if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
                raise DlxTypeError(
                    f"parameter {key!r} must be a float32 or float64 array to be trained, got "
                    f"{getattr(param, 'dtype', type(param).__name__)}"
                )
            if grad.shape != param.shape:
                raise DlxValueError(
                    f"gradient of {key!r} has shape {grad.shape}, parameter {param.shape}"
                )
            if grad.dtype != param.dtype:
                raise DlxTypeError(
                    f"gradient of {key!r} has dtype {grad.dtype}, parameter {param.dtype}; "
                    "convert one explicitly (dlx never casts silently)"
                )
            self._step(key, param, grad)

    def _step(self, key: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    @staticmethod
    def _decay(state: np.ndarray, rate: np.floating) -> None:
        """``state *= rate``, then values that have decayed below the smallest normal float
        (1.2e-38 in float32) set to zero.

        A moment whose gradient has stopped (the weights of a dead ReLU unit) shrinks
        geometrically into the subnormal range, where the CPU takes a slow microcode assist
        for every operation on it: after three epochs of SimpleConvNet a quarter of Adam's
        first moment was subnormal and the epochs ran 1.6 times slower. A moment that small
        changes no step by a representable amount, so zero is as good. (The same function
        serves the NumPy reference of the fused Adam update.)"""
        ops.reference.decay(state, rate)

    def state_dict(self) -> dict:
        """Everything the next update depends on, as copies: ``settings`` (the
        hyperparameters, and Adam's step count) and ``slots`` (each parameter's moments)."""
        return {
            "type": type(self).__name__,
            "settings": {k: v for k, v in vars(self).items() if k != "state"},
            "slots": {key: {n: a.copy() for n, a in s.items()} for key, s in self.state.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` of an optimizer of the same type and settings'
        names (the values, the learning rate included, are taken from ``state``)."""
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise DlxValueError(f"the state is of a {got} optimizer, not of {type(self).__name__}")
        settings, slots = state.get("settings"), state.get("slots")
        mine = {k for k in vars(self) if k != "state"}
        if not isinstance(settings, dict) or set(settings) != mine:
            raise DlxValueError(
                f"the state's settings {sorted(settings or {})} are not {type(self).__name__}'s "
                f"{sorted(mine)}"
            )
        if not isinstance(slots, dict) or not all(
            isinstance(s, dict) and all(isinstance(a, np.ndarray) for a in s.values())
            for s in slots.values()
        ):
            raise DlxTypeError("the state's slots must map each key to a dict of arrays")
        for name, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DlxTypeError(f"the setting {name!r} must be a number, got {value!r}")
        steps = settings.get("t", 0)
        if not isinstance(steps, int) or steps < 0:
            raise DlxValueError(f"the step count t must be an int >= 0, got {steps!r}")
        # The constructor checks every hyperparameter's range.
        checked = type(self)(**{k: v for k, v in settings.items() if k != "t"})
        for name in settings:
            setattr(self, name, steps if name == "t" else getattr(checked, name))
        self.state = {key: {n: a.copy() for n, a in s.items()} for key, s in slots.items()}

    def _slot(self, key: str, name: str, like: np.ndarray) -> np.ndarray:
        slots = self.state.setdefault(key, {})
        if name not in slots:
            slots[name] = np.zeros_like(like)
        return slots[name]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k != "state")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """p -= lr * g."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, key, param, grad):
        param -= param.dtype.type(self.lr) * grad


class Momentum(Optimizer):
    """v = momentum * v - lr * g;  p += v  (a ball rolling downhill, with friction)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = _fraction("momentum", momentum)

    def _step(self, key, param, grad):
        v = self._slot(key, "v", param)
        self._decay(v, param.dtype.type(self.momentum))
        v -= param.dtype.type(self.lr) * grad
        param += v


class Nesterov(Optimizer):
    """Nesterov momentum: the gradient is taken at the point momentum is about to reach.

    In the form that needs only the gradient at the current point:
    v = momentum * v - lr * g;  p += momentum * v - lr * g.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = _fraction("momentum", momentum)

    def _step(self, key, param, grad):
        v = self._slot(key, "v", param)
        m, lr = param.dtype.type(self.momentum), param.dtype.type(self.lr)
        self._decay(v, m)
        v -= lr * grad
        param += m * v - lr * grad


class AdaGrad(Optimizer):
    """h += g^2;  p -= lr * g / (sqrt(h) + eps): each parameter's step shrinks with the
    gradients it has already seen."""

    def __init__(self, lr: float = 0.01, eps: float = 1e-7) -> None:
        super().__init__(lr)
        self.eps = _positive("eps", eps)

    def _step(self, key, param, grad):
        h = self._slot(key, "h", param)
        h += grad * grad
        param -= param.dtype.type(self.lr) * grad / (np.sqrt(h) + param.dtype.type(self.eps))


class RMSprop(Optimizer):
    """h = decay * h + (1 - decay) g^2;  p -= lr * g / (sqrt(h) + eps): AdaGrad that forgets."""

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99, eps: float = 1e-7) -> None:
        super().__init__(lr)
        self.decay_rate = _fraction("decay_rate", decay_rate)
        self.eps = _positive("eps", eps)

    def _step(self, key, param, grad):
        h = self._slot(key, "h", param)
        d = param.dtype.type(self.decay_rate)
        self._decay(h, d)
        h += (1 - d) * grad * grad
        param -= param.dtype.type(self.lr) * grad / (np.sqrt(h) + param.dtype.type(self.eps))


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction of both moments:

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(
        self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__(lr)
        self.beta1 = _fraction("beta1", beta1)
        self.beta2 = _fraction("beta2", beta2)
        self.eps = _positive("eps", eps)
        self.t = 0

    def update(self, params, grads):
        self.t += 1
        super().update(params, grads)

    def _step(self, key, param, grad):
        # One fused pass in C++ (dlx.ops.adam_step; dlx.ops.reference.adam_step is the same
        # update in NumPy, an operation at a time).
        ops.adam_step(
            param,
            grad,
            self._slot(key, "m", param),
            self._slot(key, "v", param),
            beta1=self.beta1,
            beta2=self.beta2,
            lr_t=self.lr * (1.0 / (1.0 - self.beta1**self.t)),
            v_scale=1.0 / (1.0 - self.beta2**self.t),
            eps=self.eps,
        )


OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def get_optimizer(name: str, **kwargs) -> Optimizer:
    """An optimizer by its lower-case name: sgd, momentum, nesterov, adagrad, rmsprop, adam."""
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise DlxValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[key](**kwargs)
