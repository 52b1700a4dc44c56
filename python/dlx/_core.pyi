"""Type stub of the compiled module dlx._core (private: use dlx.ops).

Every kernel takes C-contiguous float32 or float64 arrays (never converted) and returns arrays
of the same dtype. Window arguments are (kh, kw, sh, sw, ph, pw).
"""

import numpy as np
import numpy.typing as npt

_F = npt.NDArray[np.float32] | npt.NDArray[np.float64]
_Shape = tuple[int, int, int, int]

def im2col(x: _F, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> _F: ...
def col2im(
    col: _F, x_shape: _Shape, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int
) -> _F: ...
def conv2d_forward(x: _F, w: _F, b: _F | None, sh: int, sw: int, ph: int, pw: int) -> _F: ...
def conv2d_backward(
    dy: _F, x: _F, w: _F, sh: int, sw: int, ph: int, pw: int
) -> tuple[_F, _F, _F]: ...
def max_pool2d_forward(
    x: _F, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int
) -> tuple[_F, npt.NDArray[np.int64]]: ...
def max_pool2d_backward(
    dy: _F,
    argmax: npt.NDArray[np.int64],
    x_shape: _Shape,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> _F: ...
def avg_pool2d_forward(x: _F, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> _F: ...
def avg_pool2d_backward(
    dy: _F, x_shape: _Shape, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int
) -> _F: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
