"""The book's computational-graph examples with Add and Mul nodes."""

import pytest
from dlx.graph import Add, Mul


def test_buying_apples():
    mul_apple, mul_tax = Mul(), Mul()
    price = mul_tax.forward(mul_apple.forward(100, 2), 1.1)
    assert price == pytest.approx(220)
    d_apple_price, d_tax = mul_tax.backward(1)
    d_apple, d_apple_num = mul_apple.backward(d_apple_price)
    assert (d_apple, d_apple_num, d_tax) == pytest.approx((2.2, 110, 200))


def test_buying_apples_and_oranges():
    mul_apple, mul_orange, add, mul_tax = Mul(), Mul(), Add(), Mul()
    apple_price = mul_apple.forward(100, 2)
    orange_price = mul_orange.forward(150, 3)
    price = mul_tax.forward(add.forward(apple_price, orange_price), 1.1)
    assert price == pytest.approx(715)
    d_all, d_tax = mul_tax.backward(1)
    d_apple_price, d_orange_price = add.backward(d_all)
    d_orange, d_orange_num = mul_orange.backward(d_orange_price)
    d_apple, d_apple_num = mul_apple.backward(d_apple_price)
    assert (d_apple_num, d_apple, d_orange, d_orange_num, d_tax) == pytest.approx(
        (110, 2.2, 3.3, 165, 650)
    )
