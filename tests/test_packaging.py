"""The constraints file pins every dependency of the quick start, inside pyproject.toml's ranges."""
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")


def pins() -> dict[str, str]:
    lines = (REPO / ".ci" / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pairs}


def test_constraints_pin_every_direct_dependency_inside_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not pinned in .ci/constraints.txt: refresh it with .ci/lock.py"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} is outside {req}"


def test_quick_start_and_ci_install_with_the_constraints():
    assert "-c .ci/constraints.txt" in (REPO / ".ci" / "run").read_text()
    assert 'pip install -c .ci/constraints.txt -e ".[dev]"' in (REPO / "README.md").read_text()
