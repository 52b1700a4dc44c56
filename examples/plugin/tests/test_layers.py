"""The plugin's layers pass dlx's conformance kit."""

import numpy as np
import pytest
from dlx.testing import check_layer
from dlx_example_plugin import GELU, LeakyReLU


def test_gelu_conforms():
    check_layer(lambda dtype: GELU(), input_shape=(4, 7))


def test_leaky_relu_conforms():
    check_layer(lambda dtype: LeakyReLU(0.1), input_shape=(3, 2, 4, 4))


def test_gelu_values():
    y = GELU().forward(np.array([[-3.0, 0.0, 1.0, 3.0]]))
    np.testing.assert_allclose(y, [[-0.00363739, 0.0, 0.84119199, 2.99636261]], rtol=1e-6)


def test_leaky_relu_refuses_a_bad_slope():
    with pytest.raises(ValueError, match="negative_slope must lie in"):
        LeakyReLU(2.0)
