"""Models in and out of ONNX, the format networks move between frameworks in.

- :func:`export` writes a dlx network (``Sequential`` or graph ``Model``) as an ONNX model
  that ONNX Runtime, OpenVINO or TensorRT run: every built-in layer maps to standard
  operators, a plugin layer to the nodes its ``to_onnx`` method emits (:class:`OnnxGraph`).
- :func:`load` builds a dlx network from an ONNX file made of those operators (as PyTorch's
  exporter writes small CNNs), with its weights, ready to predict, train and save.

Both need the ``onnx`` package: ``pip install "dlx-scratch[onnx]"``.
"""

from __future__ import annotations

from .errors import OnnxError
from .export import export
from .graph import OnnxGraph
from .load import load

DEFAULT_OPSET = 17

__all__ = ["DEFAULT_OPSET", "OnnxError", "OnnxGraph", "export", "load"]
