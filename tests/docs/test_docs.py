"""The documentation cannot rot: every Python block runs, and the site builds strictly."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "reference" not in p.parts)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


WITH_CODE = [p for p in PAGES if BLOCK.search(p.read_text())]


def test_every_tutorial_page_has_code():
    tutorial = [p for p in PAGES if p.parent.name == "tutorial"]
    assert len(tutorial) == 14 and set(tutorial) <= set(WITH_CODE)


@pytest.mark.parametrize("page", WITH_CODE, ids=[str(p.relative_to(DOCS)) for p in WITH_CODE])
def test_page_examples_run(page, tmp_path, monkeypatch):
    """The blocks of a page run in order, in one namespace, as a reader would run them."""
    blocks = BLOCK.findall(page.read_text())
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name} block {i + 1}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{page.name}, block {i + 1} failed: {error!r}\n{code}") from error


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "index.html").is_file() and (site / "reference" / "ops" / "index.html").is_file()
    figures = sorted(p.name for p in (site / "figures").glob("*.png"))
    assert {"edge_detection.png", "optimizer_paths.png", "im2col.png", "curves.png"} <= set(figures)
    assert "conv2d_backward" in (site / "reference" / "ops" / "index.html").read_text()
