"""Write the documentation's printed output into its pages, as the reader will see it.

    python scripts/doc_outputs.py docs/tutorial/convolution.md        # show what would change
    python scripts/doc_outputs.py --write docs/tutorial/*.md          # rewrite the pages

Runs a page's blocks in order in one namespace, as tests/docs/test_docs.py does. A
```` ```python ```` block that prints becomes a ```` ```pycon ```` session, statement by
statement with its output; a ```` ```pycon ```` block whose output no longer matches (under
the tests' rules: numbers to the precision written, ``...`` for elisions) gets the new output,
and one that still matches is left as written, so hand-shortened numbers survive. Review the
diff: the tests compare pages with the library, and this script only saves typing.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import doctest
import io
import os
import sys
import tempfile
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "docs"))
from doc_pages import FENCE, output_matches


def statements(code: str) -> list[tuple[str, bool]]:
    """Split a block into its top-level statements, each with the comments above it and
    whether a blank line set it apart from the one before."""
    lines = code.splitlines()
    starts = sorted(
        {
            node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
            for node in ast.parse(code).body
        }
    )
    for i, a in enumerate(starts):
        while a > 1 and lines[a - 2].lstrip().startswith("#"):
            a -= 1  # a comment belongs to the statement below it
        starts[i] = a
    ends = [*starts[1:], len(lines) + 1]
    return [
        ("\n".join(lines[a - 1 : b - 1]).strip("\n"), a > 1 and not lines[a - 2].strip())
        for a, b in zip(starts, ends)
    ]


def run(source: str, namespace: dict) -> str:
    """What the statement prints in a console, an exception as doctest writes it."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source + "\n", "<doc>", "single"), namespace)
    except Exception as error:
        last = traceback.format_exception_only(type(error), error)[-1]
        return out.getvalue() + "Traceback (most recent call last):\n  ...\n" + last.rstrip() + "\n"
    return out.getvalue()


COMPOUND = (ast.For, ast.While, ast.If, ast.With, ast.Try, ast.FunctionDef, ast.ClassDef)


def as_session(source: str, output: str) -> str:
    first, *rest = source.splitlines()
    lines = [">>> " + first] + [("... " + line).rstrip() for line in rest]
    if isinstance(ast.parse(source).body[-1], COMPOUND):
        lines.append("...")  # the blank line that ends a block in the console
    return "\n".join(lines) + "\n" + output


def python_block(code: str, namespace: dict) -> tuple[str, str]:
    """Run a python block; return its language and text (a session if it printed)."""
    parts = [(src, gap, run(src, namespace)) for src, gap in statements(code)]
    if not any(output for _, _, output in parts):
        return "python", code
    return "pycon", "".join(
        ("\n" if gap else "") + as_session(src, output) for src, gap, output in parts
    )


def pycon_block(code: str, namespace: dict) -> str:
    """Run a session; keep it as written if every output still matches, else rewrite it."""
    examples = doctest.DocTestParser().get_examples(code)
    outputs = [run(example.source.rstrip("\n"), namespace) for example in examples]
    if all(output_matches(e.want, got) for e, got in zip(examples, outputs)):
        return code
    return "".join(
        as_session(e.source.rstrip("\n"), e.want if output_matches(e.want, got) else got)
        for e, got in zip(examples, outputs)
    )


def refresh(page: Path) -> str:
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    text = page.read_text()
    pieces, last = [], 0
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            for match in FENCE.finditer(text):
                language, code = match.groups()
                if language not in ("python", "pycon"):
                    continue
                if language == "python":
                    language, code = python_block(code, namespace)
                else:
                    code = pycon_block(code, namespace)
                pieces += [text[last : match.start()], f"```{language}\n{code}```"]
                last = match.end()
        finally:
            os.chdir(cwd)
    return "".join([*pieces, text[last:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--write", action="store_true", help="rewrite the pages in place")
    args = parser.parse_args(argv)
    for page in args.pages:
        old, new = page.read_text(), refresh(page.resolve())
        if old == new:
            continue
        if args.write:
            page.write_text(new)
            print(f"updated {page}")
        else:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), str(page), str(page)
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
