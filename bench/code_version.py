"""The version of the result-affecting code, stored in every run record.

It is a hash of the syntax trees (without docstrings) of the modules whose changes can
change a cell's numbers: data, losses, training, the cell runner, presets, reference rows
and backbones. Not tables, report, plots, CLI or executors: they only present or schedule.
A hash rather than a hand-bumped constant because nobody has to remember it: any change of
code changes it, while comments, docstrings and formatting do not (so editing a docstring
does not make every finished cell stale). A third-party backbone plugin is outside the
hash; its package version is recorded with the cell's settings.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_AFFECTING = ("bench/data/*.py", "bench/losses.py", "bench/similarity.py", "bench/train.py",
                    "bench/classifier.py", "bench/runner.py",
                    "bench/presets.py", "bench/distances.py", "bench/references.py", "bench/checkpoint.py",
                    "backbones/*.py")
NOT_RESULT_AFFECTING = ("bench/data/describe.py",)  # reports on data, never feeds a cell


def result_affecting_files() -> list[Path]:
    skip = {ROOT / p for p in NOT_RESULT_AFFECTING}
    return sorted(f for pattern in RESULT_AFFECTING for f in ROOT.glob(pattern) if f not in skip)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(text: str) -> str:
    """Hash of one module's code: its syntax tree without docstrings (comments never reach it)."""
    tree = _without_docstrings(ast.parse(text))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """12 hex digits naming the result-affecting code this process runs (read once: a file
    edited while a sweep runs does not change the code already imported)."""
    h = hashlib.sha256()
    for f in result_affecting_files():
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + source_digest(f.read_text()).encode())
    return h.hexdigest()[:12]
