"""Print the pinned versions (name==version) of skinsim's dependency closure as installed here.

Refresh the constraints file after the suite passes on today's releases:

    pip install -U -e ".[dev]" && python -m pytest && python .ci/lock.py > .ci/constraints.txt

pyproject.toml keeps ranges for people installing skinsim into their own environment; the quick start and
.ci/run install with `-c .ci/constraints.txt`, so a new machine gets the versions the suite passed with.
"""
from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

EXTRAS = ("dev",)  # the extras the quick start installs
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def direct_requirements() -> list[str]:
    """skinsim's own requirements and those of EXTRAS, read from pyproject.toml (not from a stale install)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return project["dependencies"] + [r for e in EXTRAS for r in project["optional-dependencies"][e]]


def closure(requirements: list[str]) -> dict[str, str]:
    """{canonical name: installed version} of `requirements` and everything they need, markers evaluated here."""
    found: dict[str, str] = {}
    todo = [(Requirement(r).name, tuple(Requirement(r).extras)) for r in requirements
            if Requirement(r).marker is None or Requirement(r).marker.evaluate()]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            sys.exit(f"error: {name} is required but not installed; run pip install -e \".[dev]\" first")
        key = canonicalize_name(dist.metadata["Name"])
        if key in found and not wanted:
            continue
        found[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, tuple(req.extras)))
    return found


def main() -> int:
    """Print the constraints file."""
    pins = closure(direct_requirements())
    print(f"# written by `python .ci/lock.py` (Python {sys.version.split()[0]}); see that file for how to refresh")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
