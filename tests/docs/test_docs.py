"""The documentation cannot rot: every code block runs and every printed value is checked
against the page (doc_pages.py says how); tests/docs/test_site.py builds the site and opens
it in a browser. The blocks of a page run in order in one namespace, in a temporary working
directory.
"""

import importlib
import re
from pathlib import Path

import pytest
from doc_pages import SYBIL, blocks

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "reference" not in p.parts)

WITH_CODE = [p for p in PAGES if blocks(p, "python") or blocks(p, "pycon")]


def test_every_tutorial_page_has_checked_output():
    tutorial = [p for p in PAGES if p.parent.name == "tutorial" and ".zh." not in p.name]
    assert len(tutorial) == 15
    unchecked = [p.name for p in tutorial if not blocks(p, "pycon")]
    assert not unchecked, f"tutorial pages whose output no test checks: {unchecked}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_python_blocks_print_nothing(page):
    """Output a reader is told about sits in a pycon block, where the tests compare it."""
    for code in blocks(page, "python"):
        assert "print(" not in code, f"{page.name}: print in a python block:\n{code}"
        assert not code.lstrip().startswith(">>>"), f"{page.name}: prompts in a python block"


@pytest.fixture
def fresh_process_state():
    """What a page may change for the whole process, put back: its registered layers (the
    plugin guide registers one, in each language) and the kernels' workspace budget."""
    from dlx import ops, registry

    layers, providers = dict(registry._layers), dict(registry._providers)
    budget = ops.workspace_budget()
    yield
    registry._layers.clear()
    registry._layers.update(layers)
    registry._providers.clear()
    registry._providers.update(providers)
    ops.set_workspace_budget(budget / 2**20)


@pytest.mark.parametrize("page", WITH_CODE, ids=[str(p.relative_to(DOCS)) for p in WITH_CODE])
@pytest.mark.usefixtures("fresh_process_state")
def test_page_examples_run_and_print_what_the_page_says(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    document = SYBIL.parse(page)
    examples = list(document)
    assert examples, f"{page.name}: Sybil found no examples"
    for example in examples:
        example.evaluate()
    stray = capsys.readouterr().out
    assert not stray, f"{page.name}: a python block printed {stray[:300]!r}"


GLOSSARIES = [DOCS / "glossary.md", DOCS / "glossary.zh.md"]
API_NAME = re.compile(r"`(dlx(?:\.\w+)+)")


def resolve(name: str):
    module, _, attribute = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError:
        return importlib.import_module(name)


@pytest.mark.parametrize("glossary", GLOSSARIES, ids=lambda p: p.name)
def test_glossary_names_exist_in_the_api(glossary):
    names = API_NAME.findall(glossary.read_text())
    assert len(names) > 30
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"{glossary.name} names what dlx does not have: {missing}"


def test_glossaries_agree():
    english, chinese = (sorted(API_NAME.findall(g.read_text())) for g in GLOSSARIES)
    assert english == chinese


TRANSLATED = sorted(DOCS.rglob("*.zh.md"))


def test_the_course_is_in_chinese():
    """The tutorial, the getting-started page and the plugin guide each have a Chinese page."""
    wanted = [p for p in PAGES if p.parent.name == "tutorial" and ".zh." not in p.name]
    wanted += [DOCS / "index.md", DOCS / "plugins.md", DOCS / "glossary.md"]
    missing = [p.name for p in wanted if not p.with_name(p.stem + ".zh.md").is_file()]
    assert not missing, f"pages without a Chinese translation: {missing}"


@pytest.mark.parametrize("page", TRANSLATED, ids=[str(p.relative_to(DOCS)) for p in TRANSLATED])
def test_translation_has_the_same_code(page):
    """A translation changes the words, never the code or what it prints."""
    english = page.with_name(page.name.replace(".zh.md", ".md"))
    for language in ("python", "pycon"):
        assert blocks(page, language) == blocks(english, language), (
            f"{page.name} and {english.name} differ in their {language} blocks"
        )
