"""Explicit-loop versions of the dlx kernels: the test oracle.

Written from the definitions alone, one output element at a time, sharing no code with
dlx.ops.reference or the C++ kernels, so both backends are checked against something
independent. Everything is computed in float64. Slow by design: keep test shapes small.
"""

from __future__ import annotations

import math

import numpy as np


def _out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _padded(x, ph, pw):
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def im2col(x, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    oh, ow = _out(h, kh, sh, ph), _out(w, kw, sw, pw)
    xp = _padded(x, ph, pw)
    rows = []
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                rows.append(xp[b, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(-1))
    return np.array(rows).reshape(n * oh * ow, c * kh * kw)


def col2im(col, x_shape, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x_shape
    oh, ow = _out(h, kh, sh, ph), _out(w, kw, sw, pw)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    r = 0
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                xp[b, :, i * sh : i * sh + kh, j * sw : j * sw + kw] += col[r].reshape(c, kh, kw)
                r += 1
    return xp[:, :, ph : ph + h, pw : pw + w]


def conv2d(x, w, b, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    n, _, h, wd = x.shape
    fn, _, kh, kw = w.shape
    oh, ow = _out(h, kh, sh, ph), _out(wd, kw, sw, pw)
    xp = _padded(x, ph, pw)
    y = np.zeros((n, fn, oh, ow))
    for bi in range(n):
        for f in range(fn):
            for i in range(oh):
                for j in range(ow):
                    window = xp[bi, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    y[bi, f, i, j] = np.sum(window * w[f]) + (0.0 if b is None else b[f])
    return y


def conv2d_backward(dy, x, w, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    n, _, h, wd = x.shape
    fn, _, kh, kw = w.shape
    _, _, oh, ow = dy.shape
    xp = _padded(x, ph, pw)
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape)
    db = np.zeros(fn)
    for bi in range(n):
        for f in range(fn):
            for i in range(oh):
                for j in range(ow):
                    g = float(dy[bi, f, i, j])
                    rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                    dw[f] += g * xp[bi, :, rows, cols]
                    dxp[bi, :, rows, cols] += g * w[f]
                    db[f] += g
    return dxp[:, :, ph : ph + h, pw : pw + wd], dw, db


def _windows(x_shape, kernel, stride, pad):
    """Yields (b, c, i, j, cells) with cells the real (h, w) positions of each window, in order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x_shape
    oh, ow = _out(h, kh, sh, ph), _out(w, kw, sw, pw)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    cells = [
                        (r, q)
                        for r in range(i * sh - ph, i * sh - ph + kh)
                        for q in range(j * sw - pw, j * sw - pw + kw)
                        if 0 <= r < h and 0 <= q < w
                    ]
                    yield b, ch, i, j, cells


def max_pool2d(x, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    shape = (n, c, _out(h, kh, sh, ph), _out(w, kw, sw, pw))
    y, argmax = np.zeros(shape), np.zeros(shape, dtype=np.int64)
    for b, ch, i, j, cells in _windows(x.shape, kernel, stride, pad):
        best, at = None, None
        for r, q in cells:
            v = float(x[b, ch, r, q])
            if best is None or (not math.isnan(best) and (v > best or math.isnan(v))):
                best, at = v, r * w + q
        y[b, ch, i, j], argmax[b, ch, i, j] = best, at
    return y, argmax


def max_pool2d_backward(dy, argmax, x_shape):
    n, c, h, w = x_shape
    dx = np.zeros((n, c, h * w))
    for b in range(n):
        for ch in range(c):
            for k, at in enumerate(argmax[b, ch].reshape(-1)):
                dx[b, ch, at] += dy[b, ch].reshape(-1)[k]
    return dx.reshape(x_shape)


def avg_pool2d(x, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    y = np.zeros((n, c, _out(h, kh, sh, ph), _out(w, kw, sw, pw)))
    for b, ch, i, j, cells in _windows(x.shape, kernel, stride, pad):
        y[b, ch, i, j] = sum(float(x[b, ch, r, q]) for r, q in cells) / (kh * kw)
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, pad):
    kh, kw = kernel
    dx = np.zeros(x_shape)
    for b, ch, i, j, cells in _windows(x_shape, kernel, stride, pad):
        for r, q in cells:
            dx[b, ch, r, q] += float(dy[b, ch, i, j]) / (kh * kw)
    return dx


def linear(x, w, b):
    n, (k, m) = x.shape[0], w.shape
    y = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            y[i, j] = math.fsum(float(x[i, p]) * float(w[p, j]) for p in range(k))
            y[i, j] += 0.0 if b is None else b[j]
    return y


def linear_backward(dy, x, w):
    n, (k, m) = x.shape[0], w.shape
    dx, dw = np.zeros((n, k)), np.zeros((k, m))
    for i in range(n):
        for p in range(k):
            dx[i, p] = math.fsum(float(dy[i, j]) * float(w[p, j]) for j in range(m))
    for p in range(k):
        for j in range(m):
            dw[p, j] = math.fsum(float(x[i, p]) * float(dy[i, j]) for i in range(n))
    db = np.array([math.fsum(float(dy[i, j]) for i in range(n)) for j in range(m)])
    return dx, dw, db
