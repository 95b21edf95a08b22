"""The locks in requirements/ agree with pyproject.toml: a dependency added or changed there
without `make lock` fails here, offline, instead of as an ImportError somewhere else."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SELF = canonicalize_name(PROJECT["name"])


def locked(name: str) -> dict[str, set[str]]:
    """{package: versions} pinned by a lock (a package may be pinned twice, under markers)."""
    pins: dict[str, set[str]] = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if not line[:1].isalnum():
            continue  # comments, hashes, "# via" lines
        requirement = Requirement(line.rstrip(" \\"))
        (pin,) = requirement.specifier
        assert pin.operator == "==", line
        pins.setdefault(canonicalize_name(requirement.name), set()).add(pin.version)
    return pins


def direct(*groups: str) -> list[Requirement]:
    wanted = [Requirement(r) for r in PROJECT["dependencies"]]
    for group in groups:
        wanted += [Requirement(r) for r in PROJECT["optional-dependencies"][group]]
    return [r for r in wanted if canonicalize_name(r.name) != SELF]


LOCKS = {"runtime.txt": (), "run.txt": ("run",), "dev.txt": ("run", "dev")}


@pytest.mark.parametrize(("lock", "groups"), LOCKS.items())
def test_every_direct_dependency_is_locked_within_its_range(lock, groups):
    pins = locked(lock)
    stale = [
        str(requirement)
        for requirement in direct(*groups)
        if not any(
            requirement.specifier.contains(v, prereleases=True)
            for v in pins.get(canonicalize_name(requirement.name), ())
        )
    ]
    assert stale == [], f"requirements/{lock} does not match pyproject.toml: run `make lock`"


def test_each_lock_keeps_the_versions_of_the_one_before():
    runtime, run, dev = (locked(name) for name in LOCKS)
    assert {name: run.get(name) for name in runtime} == runtime
    assert {name: dev.get(name) for name in run} == run


def test_production_lock_has_no_laptop_or_test_tool():
    assert not {"moto", "duckdb", "plotly", "pytest", "ruff", "hypothesis"} & set(
        locked("runtime.txt")
    )


def test_ruff_is_pinned_exactly():
    (ruff,) = [r for r in direct("dev") if r.name == "ruff"]
    assert str(ruff.specifier).startswith("==")
    assert locked("dev.txt")["ruff"] == {str(ruff.specifier)[2:]}
