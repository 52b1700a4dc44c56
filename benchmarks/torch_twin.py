"""The same network in PyTorch as a dlx Sequential, with the same weights, for the benchmarks.

``torch_twin(net, input_shape)`` walks the dlx layers and builds the matching
``torch.nn.Sequential``, copying parameters and BatchNorm's running statistics, so that the
two compute the same function (the benchmarks check that they do before timing them).
"""

from __future__ import annotations

import numpy as np


def torch_twin(net, input_shape: tuple[int, ...]):
    import dlx.layers as L
    import torch
    from torch import nn

    modules = []
    shape = tuple(input_shape)
    for layer in net.layers:
        p = {k: torch.from_numpy(v.copy()) for k, v in layer.params.items()}
        if isinstance(layer, L.Conv2d):
            m = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.pad,
                bias="b" in p,
            )
            m.weight.data = p["W"]
            if "b" in p:
                m.bias.data = p["b"]
        elif isinstance(layer, L.Affine):
            if len(shape) > 1:
                modules.append(nn.Flatten())
            m = nn.Linear(layer.in_features, layer.out_features)
            m.weight.data = p["W"].T.contiguous()
            m.bias.data = p["b"]
        elif isinstance(layer, L.BatchNorm):
            m = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(
                layer.num_features, eps=layer.eps, momentum=1 - layer.momentum
            )
            m.weight.data, m.bias.data = p["gamma"], p["beta"]
            m.running_mean.data = torch.from_numpy(layer.buffers["running_mean"].copy())
            m.running_var.data = torch.from_numpy(layer.buffers["running_var"].copy())
        elif isinstance(layer, L.MaxPool2d):
            m = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.pad)
        elif isinstance(layer, L.AvgPool2d):
            m = nn.AvgPool2d(layer.kernel_size, layer.stride, layer.pad, count_include_pad=True)
        elif isinstance(layer, L.Dropout):
            m = nn.Dropout(layer.p)
        elif isinstance(layer, L.Flatten):
            m = nn.Flatten()
        else:
            m = {L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh}[type(layer)]()
        modules.append(m)
        shape = layer.output_shape(shape)
    return nn.Sequential(*modules)


def same_function(net, model, x: np.ndarray, rtol: float = 1e-4) -> float:
    """The largest difference of the two networks' inference outputs on x, relative to the
    largest output; raises if it exceeds rtol (the twin was built wrong)."""
    import torch

    model.eval()
    with torch.inference_mode():
        theirs = model(torch.from_numpy(x)).numpy()
    ours = net.predict(x)
    error = float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-30))
    if error > rtol:
        raise AssertionError(f"the PyTorch twin differs from the dlx network by {error:.2e}")
    return error
