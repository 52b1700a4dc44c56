import os

import numpy as np
import pytest
from hypothesis import settings

# Reproducible property tests: the same examples on every run, no time limit per example.
settings.register_profile("dlx", derandomize=True, deadline=None, print_blob=True)
# HYPOTHESIS_PROFILE=fuzz: fresh random examples on every run, for long fuzzing sessions.
settings.register_profile("fuzz", derandomize=False, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dlx"))

DTYPES = [np.float32, np.float64]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=["cpp", "numpy"])
def backend(request):
    import dlx.ops

    with dlx.ops.use_backend(request.param):
        yield request.param
