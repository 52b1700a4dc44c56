"""An example dlx plugin: GELU and LeakyReLU layers."""

from .layers import GELU, LeakyReLU

__all__ = ["GELU", "LeakyReLU"]
