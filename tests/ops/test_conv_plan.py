"""The convolution's plan and its workspace: every item covers its part of the output once,
the workspace stays within the budget whatever N or FN, memory held between calls is bounded
and can be released, and a smaller budget gives the same results through more items."""

import itertools
import os
import subprocess
import sys

import dlx.ops as ops
import numpy as np
import pytest
from conftest import DTYPES
from helpers import assert_close

MiB = 2**20


@pytest.fixture
def budget():
    """Restores the workspace budget the test changes."""
    previous = ops.workspace_budget()
    yield
    ops._module_of("cpp")._core.set_workspace_budget(previous)


def _coverage(plan_product, n, p):
    """Counts, for each (image, position), the items that compute it."""
    count = np.zeros((n, p), int)
    for item in range(plan_product["items"]):
        if plan_product["images"] > 1:
            first = item * plan_product["images"]
            count[first : first + plan_product["images"]] += 1
        else:
            image, block = divmod(item, plan_product["blocks"])
            start = block * plan_product["length"]
            count[image, start : start + plan_product["length"]] += 1
    return count


def _channel_coverage(plan_product, n, c):
    count = np.zeros((n, c), int)
    for item in range(plan_product["items"]):
        image, group = divmod(item, plan_product["blocks"])
        start = group * plan_product["length"]
        count[image, start : start + plan_product["length"]] += 1
    return count


def _check_winograd_items(plan_product, n, size):
    """The Winograd route's items are groups of `images` images covering the batch; an image's
    4x4 tiles go in `blocks` blocks of `length` (several images' tiles in one block)."""
    images, tiles = plan_product["images"], (-(-size // 4)) ** 2
    assert plan_product["items"] == -(-n // images) and plan_product["tile"]
    if images > 1:
        assert plan_product["blocks"] == 1 and plan_product["length"] == images * tiles
    else:
        blocks, length = plan_product["blocks"], plan_product["length"]
        assert (blocks - 1) * length < tiles <= blocks * length


GEOMETRIES = [
    # (N, C, H, FN, k, stride, pad)
    (200, 1, 28, 512, 3, 1, 1),  # many filters over one channel
    (16, 64, 56, 64, 3, 1, 1),  # resnet-block
    (32, 256, 28, 512, 1, 1, 0),  # a wide 1x1
    (64, 3, 32, 32, 3, 2, 1),
    (1, 3, 224, 64, 7, 2, 3),  # one large image: blocks of positions
    (3, 16, 9, 6, 3, 1, 1),
    (100, 32, 14, 64, 3, 1, 1),
]


@pytest.mark.parametrize("budget_mib", [256, 16, 1])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_items_cover_every_output_once_within_the_budget(budget, budget_mib, geometry):
    n, c, h, fn, k, s, p = geometry
    ops.set_workspace_budget(budget_mib)
    x = np.zeros((n, c, h, h), np.float32)
    w = np.zeros((fn, c, k, k), np.float32)
    plan = ops.conv2d_plan(x, w, s, p)
    positions = ops.conv_output_size(h, k, s, p) ** 2
    for name in ("forward", "grad_weight"):
        product = plan[name]
        if product["algorithm"].startswith("shifted"):
            assert product["items"] == n and product["images"] == 1 and product["tile"]
        elif product["algorithm"] == "winograd":
            _check_winograd_items(product, n, ops.conv_output_size(h, k, s, p))
        else:
            np.testing.assert_array_equal(_coverage(product, n, positions), 1)
            assert product["tile"] is None
    if plan["grad_input"]["algorithm"] == "winograd":
        _check_winograd_items(plan["grad_input"], n, h)
    elif not plan["grad_input"]["algorithm"].startswith("shifted"):
        np.testing.assert_array_equal(_channel_coverage(plan["grad_input"], n, c), 1)
    # Whatever N and FN, a pass's workspace fits the budget (with 1 MiB, less than a channel
    # of columns may not: those layers run over single-channel groups).
    workspace = plan["workspace_bytes"]
    assert workspace <= max(budget_mib * MiB, (k * k * positions * 4 + 8192) * plan["threads"])


def test_the_workspace_does_not_grow_with_the_batch_or_the_filters(budget):
    ops.set_workspace_budget(64)
    sizes = []
    for n, fn in itertools.product((100, 400), (64, 1024)):
        plan = ops.conv2d_plan(
            np.zeros((n, 1, 28, 28), np.float32), np.zeros((fn, 1, 3, 3), np.float32), 1, 1
        )
        sizes.append(plan["workspace_bytes"])
    assert max(sizes) <= 64 * MiB


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "geometry",
    [(64, 3, 32, 32, 3, 3, 1), (2, 8, 64, 16, 3, 3, 1), (4, 16, 40, 32, 1, 1, 0)],
    ids=str,
)
def test_a_smaller_budget_gives_the_same_results_through_more_items(budget, rng, dtype, geometry):
    # The im2col and pointwise routes cut their work by the budget (the shifted route always
    # takes one image an item). The GEMMs then have other widths, and OpenBLAS may round their
    # edge columns differently: equal to the parity tolerance, not always bit for bit.
    n, c, h, fn, k, s, p = geometry
    x = rng.standard_normal((n, c, h, h)).astype(dtype)
    w = rng.standard_normal((fn, c, k, k)).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    results, plans = [], []
    for budget_mib in (256, 0.25):
        ops.set_workspace_budget(budget_mib)
        plans.append(ops.conv2d_plan(x, w, s, p))
        y = ops.conv2d(x, w, b, s, p)
        results.append((y, *ops.conv2d_backward(np.cos(y), x, w, s, p)))
    large, small = plans
    for product in ("forward", "grad_weight", "grad_input"):
        assert small[product]["algorithm"] == large[product]["algorithm"]
        assert small[product]["workspace_bytes"] <= large[product]["workspace_bytes"]
    assert small["forward"]["items"] > large["forward"]["items"]
    for a, b_ in zip(*results):
        assert_close(a, b_, dtype)


def test_workspace_is_reported_and_released(budget):
    ops.set_workspace_budget(64)
    x = np.ones((64, 3, 32, 32), np.float32)
    w = np.ones((32, 3, 3, 3), np.float32)
    ops.conv2d(x, w, None, 2, 1)
    held = ops.workspace_bytes()
    assert 0 < held <= 64 * MiB
    assert held >= ops.conv2d_plan(x, w, 2, 1)["workspace_bytes"]
    ops.release_workspace()
    assert ops.workspace_bytes() == 0
    ops.set_workspace_budget(0)  # nothing is kept between calls
    ops.conv2d(x, w, None, 2, 1)
    assert ops.workspace_bytes() == 0


def test_workspace_arguments_are_checked(budget):
    with pytest.raises(ValueError, match="megabytes must be a finite number >= 0, got -1"):
        ops.set_workspace_budget(-1)
    with pytest.raises(ValueError, match="megabytes must be a finite number >= 0, got '8'"):
        ops.set_workspace_budget("8")
    with pytest.raises(ValueError, match="megabytes must be a finite number >= 0, got inf"):
        ops.set_workspace_budget(float("inf"))


# In a fresh process: the resident memory a large call leaves behind. glibc is told to map
# every large allocation apart, so that freed arrays leave the process and only what dlx
# keeps is measured.
_RETAINED = """
import numpy as np, sys
import dlx.ops as ops

def rss_mib():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1]) / 1024

n, c, h, fn, k, s, p = map(int, sys.argv[1:])
x = np.random.default_rng(0).standard_normal((n, c, h, h), dtype=np.float32)
w = np.random.default_rng(1).standard_normal((fn, c, k, k), dtype=np.float32)
before = rss_mib()
y = ops.conv2d(x, w, None, s, p)
grads = ops.conv2d_backward(np.ones_like(y), x, w, s, p)
del y, grads
held = rss_mib() - before
ops.release_workspace()
print(held, rss_mib() - before, ops.workspace_bytes())
"""


@pytest.mark.parametrize(
    "geometry",
    [(200, 1, 28, 512, 3, 1, 1), (16, 64, 56, 64, 3, 1, 1), (32, 256, 28, 512, 1, 1, 0)],
    ids=["many-filters", "resnet-block", "wide-1x1"],
)
def test_memory_held_after_a_large_call_stays_within_the_budget(geometry):
    env = {**os.environ, "DLX_WORKSPACE_MB": "24", "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(
        [sys.executable, "-c", _RETAINED, *map(str, geometry)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    held, released, workspace = map(float, result.stdout.split())
    assert workspace == 0
    if hasattr(ops._module_of("cpp")._core, "_sanitizer_canary"):
        pytest.skip("under AddressSanitizer the resident set counts its quarantine and shadow")
    assert held <= 24 + 8, f"{held:.1f} MiB held after the call"
    assert released <= 8, f"{released:.1f} MiB held after release_workspace()"


def test_an_invalid_workspace_budget_in_the_environment_is_an_error():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dlx, numpy as np\nprint('imported')\ndlx.ops.relu(np.ones(2))",
        ],
        env={**os.environ, "DLX_WORKSPACE_MB": "lots"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and result.stdout.strip() == "imported"
    assert "DLX_WORKSPACE_MB must be a number of MiB >= 0 (and finite), got 'lots'" in result.stderr


def test_plans_of_empty_shapes():
    # In a child process: a division by zero in the planner would kill it (SIGFPE).
    code = """
import numpy as np, dlx.ops as ops
for x_shape, w_shape in [((4, 0, 5, 5), (0, 0, 3, 3)), ((4, 0, 5, 5), (3, 0, 3, 3)),
                         ((0, 2, 5, 5), (3, 2, 3, 3)), ((2, 3, 5, 5), (0, 3, 3, 3)),
                         ((2, 32, 3, 0), (8, 32, 3, 3)), ((1, 1, 1, 1), (1, 1, 1, 1))]:
    x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
    plan = ops.conv2d_plan(x, w, 1, 2 if x_shape[3] == 0 else 1)
    assert plan["workspace_bytes"] >= 0
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.strip() == "ok"
