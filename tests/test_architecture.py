"""The house rule: data flows down. A package imports only packages on lower floors (skinsim/__init__.py draws
them), no module imports in a circle, and only the benchmarks (the top floor) import the dashboard.

Read from the source with `ast`, imports inside functions included: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skinsim"
# lower number = lower floor; a package may import the ones below it, and itself
FLOORS = {"runs": 0, "compute": 0, "data": 1, "model": 2, "search": 3, "evaluate": 4, "audit": 5, "train": 6,
          "bench": 7}
TOP = 8  # the documented commands' names at the top of the package: skinsim/index.py, benchmark.py, screen.py


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted module name of a file below `root`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = ROOT) -> set[str]:
    """Every skinsim or dashboard module a file imports (absolute or relative, anywhere in the file)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                # `from skinsim.runs import folder` imports the module skinsim.runs.folder, not only the package
                sub = f"{base}.{alias.name}"
                out.add(sub if is_module(sub, root) else base)
    return {m for m in out if m.split(".")[0] in ("skinsim", "dashboard")}


def is_module(name: str, root: Path = ROOT) -> bool:
    """Whether a dotted name is a module or package below `root`."""
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module below `root`."""
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


def floor(name: str) -> int:
    """The floor of a skinsim module: its package's, or the top for the commands' names."""
    parts = name.split(".")
    if len(parts) == 1:
        return -1  # skinsim/__init__.py: the version, importable from anywhere; it imports nothing
    return FLOORS.get(parts[1], TOP)


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the skinsim modules it imports (names that are not modules, like a function, are dropped)."""
    known = modules(root)
    return {name: {m for m in imported(path) if m in known and m != name} for name, path in known.items()}


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a package into a package on the same floor or above (its own package aside)."""
    bad = []
    for src, targets in edges.items():
        for dst in targets:
            same_package = src.split(".")[:2] == dst.split(".")[:2]
            if not same_package and floor(dst) >= floor(src) and floor(dst) != -1:
                bad.append(f"{src} -> {dst}")
    return sorted(bad)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import circles between modules (each found once, from where the search first meets it)."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_every_package_is_on_a_floor_and_says_what_it_holds() -> None:
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(FLOORS), "a new package needs a floor here and in skinsim/__init__.py"
    for name in packages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "Floor" in doc, f"skinsim/{name}/__init__.py must say what it holds and what it may import"


def test_no_package_imports_upward() -> None:
    assert upward(graph()) == []


def test_no_module_imports_in_a_circle() -> None:
    assert circles(graph()) == []


def test_only_the_benchmarks_import_the_dashboard() -> None:
    """skinsim.bench measures the dashboard in a browser, so it sits above it; nothing else in skinsim may, and the
    dashboard never imports a benchmark."""
    assert [name for name, path in modules(PACKAGE).items() if not name.startswith("skinsim.bench.")
            and any(m.split(".")[0] == "dashboard" for m in imported(path))] == []
    assert [name for name, path in modules(ROOT / "dashboard").items()
            if any(m.startswith("skinsim.bench") for m in imported(path))] == []


def test_the_root_imports_nothing() -> None:
    assert imported(PACKAGE / "__init__.py") == set()


@pytest.mark.parametrize("edges, bad", [
    ({"skinsim.data.images": {"skinsim.train.sampler"}}, ["skinsim.data.images -> skinsim.train.sampler"]),
    ({"skinsim.search.explain": {"skinsim.evaluate.metrics"}}, ["skinsim.search.explain -> skinsim.evaluate.metrics"]),
    ({"skinsim.runs.folder": {"skinsim.compute.device"}}, ["skinsim.runs.folder -> skinsim.compute.device"]),
    ({"skinsim.train.train": {"skinsim.train.cli", "skinsim.audit.core", "skinsim"}}, []),
    ({"skinsim.index": {"skinsim.search.indexing"}}, []),
    ({"skinsim.bench.retrieval": {"skinsim.index"}}, ["skinsim.bench.retrieval -> skinsim.index"]),
])
def test_the_rule_itself_on_cases_worked_out_by_hand(edges: dict, bad: list) -> None:
    assert upward(edges) == bad


def test_circles_are_found_on_a_planted_one() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_from_functions_and_relative_forms(tmp_path: Path) -> None:
    pkg = tmp_path / "skinsim" / "model"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "y.py").write_text("")
    (pkg / "x.py").write_text("from . import y\nfrom skinsim.model import z\n\ndef f():\n"
                              "    from skinsim.train import epoch\n    import dashboard.map\n")
    found = imported(pkg / "x.py", tmp_path)
    # y is a module there; z is not (a name in the package), so the package itself is what x imports
    assert found == {"skinsim.model.y", "skinsim.model", "skinsim.train", "dashboard.map"}



def test_paths_made_from_a_modules_own_file_still_reach_the_repository(monkeypatch) -> None:
    """Moving a module one folder down must not move what it computes from `__file__`."""
    monkeypatch.delenv("SKINSIM_RUNS", raising=False)
    from skinsim.bench.search_speed import DEMO
    from skinsim.runs.folder import REPO_ROOT, runs_dir

    assert REPO_ROOT == ROOT and (REPO_ROOT / "pyproject.toml").is_file()
    assert DEMO == ROOT / "data" / "runs" / "demo"
    assert runs_dir() == ROOT / "data" / "runs"
