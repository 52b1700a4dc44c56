"""Nodes of a computational graph: the first step towards backpropagation.

Each node computes its output in ``forward`` and, in ``backward``, multiplies the gradient
arriving from above by its local derivative and passes it to each of its inputs. The book's
example: 2 apples at 100 each, with 10% tax::

    apples, tax = Mul(), Mul()
    price = tax.forward(apples.forward(100, 2), 1.1)      # 220
    d_apple_total, d_tax = tax.backward(1)                # 1.1, 200
    d_apple, d_count = apples.backward(d_apple_total)     # 2.2, 110
"""

from __future__ import annotations


class Add:
    """z = x + y; both inputs receive the upstream gradient unchanged."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1, dout * 1

    def __repr__(self) -> str:
        return "Add()"


class Mul:
    """z = x * y; each input receives the upstream gradient times the other input."""

    def __init__(self) -> None:
        self.x = None
        self.y = None

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x

    def __repr__(self) -> str:
        return "Mul()"
