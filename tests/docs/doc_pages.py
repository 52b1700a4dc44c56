"""How the documentation's code blocks are read and checked, shared by tests/docs/test_docs.py
and scripts/doc_outputs.py.

A ```` ```python ```` block is code the reader copies; it runs and must print nothing. A
```` ```pycon ```` block is a console session as the reader sees it, prompts and output, and
runs as a doctest through Sybil. In its output a number written with decimals matches within
one unit of its last digit (``0.874`` stands for 0.873 up to 0.875), a whole number (``60``,
``60.``, ``1e-3``) and text match exactly, ``...`` stands for elided output and runs of
whitespace are one space.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

from sybil import Sybil
from sybil.evaluators import doctest as sybil_doctest
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
OPTIONFLAGS = sybil_doctest.NUMBER | doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


class RoundedNumbers(sybil_doctest.OutputChecker):
    """Sybil's NUMBER rule, made exact for whole numbers: ``60.`` and ``[0. 1.]`` match only
    those values (Sybil would accept 59 to 61), while ``0.874`` matches within one unit of
    its last digit, so that a value that rounds the other way on another CPU still matches."""

    def _remove_unwanted_precision(self, want: str, got: str) -> str:
        wants, gots = list(self._number_re.finditer(want)), list(self._number_re.finditer(got))
        if len(wants) != len(gots):
            return got
        pieces, last = [], 0
        for w, g in zip(wants, gots):
            exponent = w.group("exponent1") or w.group("exponent2") or 0
            digits = len(w.group("fraction") or "") - int(exponent)
            tolerance = 10.0**-digits * (1 + 1e-9) if w.group("fraction") else 0.0
            close = abs(float(w.group()) - float(g.group())) <= tolerance
            pieces += [got[last : g.start()], w.group() if close else g.group()]
            last = g.end()
        return "".join([*pieces, got[last:]])


class _Runner(sybil_doctest.DocTestRunner):
    def __init__(self, optionflags: int) -> None:
        super().__init__(optionflags)
        self._checker = RoundedNumbers()  # doctest.DocTestRunner's checker


class _Evaluator(sybil_doctest.DocTestEvaluator):
    def __init__(self, optionflags: int) -> None:
        self.runner = _Runner(optionflags)


class _Blocks(PythonCodeBlockParser):
    """Fenced blocks of one language: run as code, or as a doctest if they open with >>>."""

    def __init__(self, language: str) -> None:
        super().__init__(doctest_optionflags=OPTIONFLAGS)
        self.doctest_parser.evaluator = _Evaluator(OPTIONFLAGS)
        self.codeblock_parser = CodeBlockParser(language, PythonEvaluator())


SYBIL = Sybil(parsers=[_Blocks("python"), _Blocks("pycon")], patterns=["*.md"])


def blocks(page: Path, language: str) -> list[str]:
    """The code of a page's fenced blocks in one language."""
    return [code for lang, code in FENCE.findall(page.read_text()) if lang == language]


def output_matches(want: str, got: str) -> bool:
    return RoundedNumbers().check_output(want, got, OPTIONFLAGS)
