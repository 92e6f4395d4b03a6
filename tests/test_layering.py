"""DESIGN.md's import rules, enforced by an ``ast`` scan of every module of the package.

Every import counts: at module level and inside functions, relative ones resolved, and
``from package import name`` as an import of the submodule when ``name`` is one. What
importing a module actually loads (its module-level imports and every package
``__init__`` on the way, transitively) is checked too, and a subprocess confirms it.

Rules (``seqrec.`` omitted):
* data imports only data and the core;
* config, errors, persist, quoting, trainconfig (the core) import only the core;
* a model module imports only models.base, nn, data and the core; the two exceptions
  are the lazy ``import seqrec.training`` in ``Recommender.fit`` (SEAM) and the lazy
  import of the registry in ``seqrec.models.hybrid.part_class`` (PART_SEAM: a hybrid
  builds and loads its parts by name);
* models/__init__ imports nothing at module level (registry and base lazily);
* evaluation and serving import no model module and no training code (serving may
  reach models.registry inside functions only);
* nothing below training (data, core, models, evaluation, serving) imports training;
  training imports models, data, the core and evaluation (its validation callable),
  never serving or the command-line glue (cli, pipeline, tuning).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import seqrec

PKG = Path(seqrec.__file__).parent
CORE = {"seqrec", "seqrec.config", "seqrec.errors", "seqrec.persist", "seqrec.quoting"}
CORE |= {"seqrec.trainconfig"}
SEAM = ("seqrec.models.base", "Recommender.fit", "seqrec.training")
# a hybrid builds and loads its parts by model name: the one model that reaches the
# registry, lazily, in one function (docs/DESIGN.md)
PART_SEAM = ("seqrec.models.hybrid", "part_class", "seqrec.models.registry")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    scope: str  # "" at module level, else the enclosing function's qualified name


def _name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


class _Scanner(ast.NodeVisitor):
    def __init__(self, name: str) -> None:
        self.name, self.scope, self.edges = name, [], []

    def _add(self, target: str) -> None:
        if target.split(".")[0] == "seqrec":
            self.edges.append(Edge(self.name, target, ".".join(self.scope)))

    def _scoped(self, node: ast.AST) -> None:
        self.scope.append(node.name)  # type: ignore[attr-defined]
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:  # the TYPE_CHECKING body never runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            pkg = self.name if _is_package(self.name) else self.name.rpartition(".")[0]
            for _ in range(node.level - 1):
                pkg = pkg.rpartition(".")[0]
            base = f"{pkg}.{base}" if base else pkg
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in MODULES else base)


@cache
def edges(name: str) -> tuple[Edge, ...]:
    scanner = _Scanner(name)
    scanner.visit(ast.parse(MODULES[name].read_text(encoding="utf-8")))
    return tuple(scanner.edges)


ALL_EDGES = [e for m in MODULES for e in edges(m)]


@cache
def loaded(name: str) -> frozenset[str]:
    """Modules that ``import name`` loads: parent packages and module-level imports."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        m = todo.pop()
        for part in _with_parents(m):
            if part in MODULES and part not in seen:
                seen.add(part)
                todo.extend(e.target for e in edges(part) if not e.scope)
    return frozenset(seen)


def group(name: str) -> str:
    if name in CORE:
        return "core"
    if name in ("seqrec.models", "seqrec.models.base", "seqrec.models.registry"):
        return name
    if name.startswith("seqrec.models."):
        return "model"
    for top in ("data", "nn", "training", "evaluation", "serving"):
        if name == f"seqrec.{top}" or name.startswith(f"seqrec.{top}."):
            return top
    return "app"  # cli, pipeline, tuning: the glue on top


MODEL_OK = {"core", "data", "nn", "seqrec.models", "seqrec.models.base"}
ALLOWED = {  # source group -> target groups its imports may reach
    "data": {"data", "core"},
    "core": {"core"},
    "nn": {"nn", "core"},
    "model": MODEL_OK,
    "seqrec.models.base": MODEL_OK,
    "seqrec.models.registry": MODEL_OK | {"model"},
    "seqrec.models": {"seqrec.models.base", "seqrec.models.registry"},
    "evaluation": {"core", "data", "evaluation", "seqrec.models", "seqrec.models.base"},
    "serving": {"core", "data", "serving", "seqrec.models", "seqrec.models.base"},
    # training trains models and validates them through evaluation; never serving/app
    "training": MODEL_OK | {"model", "training", "evaluation"},
}


def _allowed(e: Edge) -> bool:
    src, dst = group(e.source), group(e.target)
    if (e.source, e.scope, e.target) in (SEAM, PART_SEAM):
        return True
    if src == "seqrec.models" and not e.scope:
        return False  # the package imports nothing at import time
    if src == "serving" and dst == "seqrec.models.registry" and e.scope:
        return True  # a loader may reach the registry when it runs
    return src not in ALLOWED or dst in ALLOWED[src]


def test_the_scan_sees_the_package():
    assert {"seqrec.models.gru4rec", "seqrec.training.loop", "seqrec.serving.runtime"} <= set(
        MODULES
    )
    found = {(e.source, e.scope, e.target) for e in ALL_EDGES}
    assert SEAM in found  # the seam is a function-level import, and it is seen
    assert PART_SEAM in found
    assert ("seqrec.models.registry", "", "seqrec.models.gru4rec") in found
    assert any(e.scope for e in ALL_EDGES) and any(not e.scope for e in ALL_EDGES)


def test_every_import_follows_the_layering_rules():
    bad = [f"{e.source} ({e.scope or 'module level'}) imports {e.target}" for e in ALL_EDGES]
    bad = [b for b, e in zip(bad, ALL_EDGES, strict=True) if not _allowed(e)]
    assert not bad, "\n".join(bad)


def test_the_seam_is_the_only_import_of_training_from_below():
    below = {"data", "core", "nn", "model", "seqrec.models", "seqrec.models.base"}
    below |= {"seqrec.models.registry", "evaluation", "serving"}
    found = [
        (e.source, e.scope, e.target)
        for e in ALL_EDGES
        if group(e.source) in below and group(e.target) == "training"
    ]
    assert found == [SEAM]


@pytest.mark.parametrize("name", ["seqrec.evaluation", "seqrec.serving"])
def test_importing_evaluation_or_serving_loads_no_model_and_no_training(name):
    reached = loaded(name)
    assert "seqrec.models.base" in reached  # models are seen through the protocols
    assert not {m for m in reached if group(m) in ("model", "training", "seqrec.models.registry")}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if group(m) == "model"))
def test_importing_a_model_loads_no_training(name):
    assert not {m for m in loaded(name) if group(m) == "training"}


def test_a_fresh_interpreter_agrees():
    code = (
        "import sys, seqrec.evaluation, seqrec.serving; "
        "print(' '.join(m for m in sys.modules if m.startswith('seqrec')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PKG.parent
    ).stdout.split()
    assert "seqrec.evaluation" in out and "seqrec.serving" in out
    bad = [m for m in out if group(m) in ("model", "training", "seqrec.models.registry")]
    assert not bad, bad
