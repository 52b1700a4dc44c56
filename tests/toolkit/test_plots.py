"""Figures are written without touching matplotlib's global state."""

import subprocess
import sys

SCRIPT = """
import matplotlib
matplotlib.use("svg")  # the user's choice (a notebook's inline backend, say)
import matplotlib.pyplot as plt
import numpy as np
from dlx import plots

history = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "train_acc": [0.5, 0.7]}
plots.plot_history(history, sys.argv[1] + "/curves.png")
plots.plot_confusion(np.eye(3, dtype=np.int64), ["a", "b", "c"], sys.argv[1] + "/cm.png")
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""


def test_plots_keep_the_users_backend_and_leave_no_open_figures(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", "import sys\n" + SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["svg", "0"]
    for name in ("curves.png", "cm.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
