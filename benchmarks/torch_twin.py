"""The same network in PyTorch as a dlx network, with the same weights, for the benchmarks.

``torch_twin(net, input_shape)`` walks the dlx layers and builds the matching PyTorch module
(``torch.nn.Sequential`` for a dlx Sequential; a module that runs the same graph for a
``dlx.Model``), copying parameters and BatchNorm's running statistics, so that the two compute
the same function (the benchmarks check that they do before timing them).
"""

from __future__ import annotations

import numpy as np


def _module(layer, shape: tuple[int, ...]):
    """The PyTorch module doing what the dlx ``layer`` does on inputs of sample ``shape``;
    a list of modules where dlx's one layer is two in PyTorch (Affine's implied Flatten)."""
    import dlx.layers as L
    import torch
    from torch import nn

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
        return [m]
    if isinstance(layer, L.Affine):
        m = nn.Linear(layer.in_features, layer.out_features)
        m.weight.data = p["W"].T.contiguous()
        m.bias.data = p["b"]
        return [nn.Flatten(), m] if len(shape) > 1 else [m]
    if isinstance(layer, L.BatchNorm):
        m = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(
            layer.num_features, eps=layer.eps, momentum=1 - layer.momentum
        )
        m.weight.data, m.bias.data = p["gamma"], p["beta"]
        m.running_mean.data = torch.from_numpy(layer.buffers["running_mean"].copy())
        m.running_var.data = torch.from_numpy(layer.buffers["running_var"].copy())
        return [m]
    if isinstance(layer, L.MaxPool2d):
        return [nn.MaxPool2d(layer.kernel_size, layer.stride, layer.pad)]
    if isinstance(layer, L.AvgPool2d):
        return [nn.AvgPool2d(layer.kernel_size, layer.stride, layer.pad, count_include_pad=True)]
    if isinstance(layer, L.GlobalAvgPool2d):
        return [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if isinstance(layer, L.Dropout):
        return [nn.Dropout(layer.p)]
    if isinstance(layer, L.Flatten):
        return [nn.Flatten()]
    return [{L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh}[type(layer)]()]


def torch_twin(net, input_shape: tuple[int, ...]):
    import dlx

    if isinstance(net, dlx.Model):
        return _graph_twin(net)
    from torch import nn

    modules = []
    shape = tuple(input_shape)
    for layer in net.layers:
        modules += _module(layer, shape)
        shape = layer.output_shape(shape)
    return nn.Sequential(*modules)


def _graph_twin(model):
    """A torch module running the nodes of a dlx.Model in the same order, each layer object
    once (a layer called twice shares its module)."""
    import dlx.layers as L
    import torch
    from torch import nn

    nodes = model._computed  # the benchmark mirrors the graph's own order
    modules, module_of = nn.ModuleList(), {}
    for node in nodes:
        if not node.layer.merges and id(node.layer) not in module_of:
            module_of[id(node.layer)] = len(modules)
            modules.append(nn.Sequential(*_module(node.layer, node.inputs[0].shape)))

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = modules

        def forward(self, x):
            values = {id(model.inputs[0]): x}
            for node in nodes:
                args = [values[id(p)] for p in node.inputs]
                layer = node.layer
                if isinstance(layer, L.Add):
                    out = args[0]
                    for a in args[1:]:
                        out = out + a
                elif isinstance(layer, L.Mul):
                    out = args[0]
                    for a in args[1:]:
                        out = out * a
                elif isinstance(layer, L.Concat):
                    out = torch.cat(args, dim=layer.axis)
                else:
                    out = self.layers[module_of[id(layer)]](args[0])
                values[id(node)] = out
            return values[id(model.outputs[0])]

    return Graph()


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
