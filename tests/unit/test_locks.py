"""The locks (requirements/README.md) agree with what they are compiled from: an input changed without
`make lock` fails here, before an install from a stale lock hides it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?: ; (?P<marker>.+?))? \\$")
_VIA = re.compile(r"^    #   (?P<source>.+)$|^    # via (?P<only>.+)$")


def locked(lock: Path) -> dict[str, tuple[str, set[str], int]]:
    """Each package of a uv lock: its version, what pulled it in (the "via" lines) and its hash count."""
    packages: dict[str, tuple[str, set[str], int]] = {}
    name = ""
    for line in lock.read_text().splitlines():
        if entry := _ENTRY.match(line):
            name = canonicalize_name(entry["name"])
            packages[name] = (entry["version"], set(), 0)
        elif line.strip().startswith("--hash=sha256:"):
            version, via, hashes = packages[name]
            packages[name] = (version, via, hashes + 1)
        elif via_line := _VIA.match(line):
            packages[name][1].add(via_line["source"] or via_line["only"])
    return packages


def pins(requirements: list[str]) -> dict[str, str]:
    """name -> version of requirements that must all be exact pins."""
    pinned = {}
    for text in requirements:
        requirement = Requirement(text)
        (specifier,) = requirement.specifier  # one specifier each: an exact pin
        assert specifier.operator == "==", f"{text}: a locked input is pinned with =="
        pinned[canonicalize_name(requirement.name)] = specifier.version
    return pinned


def group(name: str) -> list[str]:
    """A dependency group of pyproject.toml with its included groups expanded."""
    entries: list[str] = []
    for entry in PYPROJECT["dependency-groups"][name]:
        entries += group(entry["include-group"]) if isinstance(entry, dict) else [entry]
    return entries


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def direct(lock: Path, source: str) -> dict[str, str]:
    """The packages of a lock that its input names itself (uv marks them "via <input>")."""
    return {name: version for name, (version, via, _) in locked(lock).items() if source in via}


LOCKS = {
    # lock: (its input's pins, how uv names that input in the lock's "via" lines)
    "requirements/dev.lock": (lambda: pins(group("dev")), "asyncstack (pyproject.toml:dev)"),
    "requirements/checkov.lock": (
        lambda: pins(requirement_lines(ROOT / "requirements/checkov.txt")),
        "-r requirements/checkov.txt",
    ),
    "asyncstack/runtime/requirements.lock": (
        lambda: pins(requirement_lines(ROOT / "asyncstack/runtime/requirements.txt")),
        "-r asyncstack/runtime/requirements.txt",
    ),
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_a_lock_pins_exactly_what_its_input_names(lock: str) -> None:
    # Given a lock and the pinned input it was compiled from
    wanted, source = LOCKS[lock]
    # Then the packages the lock says its input named are those of the input, at the same versions
    assert direct(ROOT / lock, source) == wanted(), f"{lock} is stale: run make lock"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_locked_package_has_hashes(lock: str) -> None:
    # Given a lock
    packages = locked(ROOT / lock)
    # Then every package in it is pinned and carries the hashes pip checks in --require-hashes mode
    assert packages
    assert [name for name, (_, _, hashes) in packages.items() if hashes == 0] == []


def test_the_layer_installs_the_versions_the_tests_run_with() -> None:
    # Given the Lambda layer's input and the dev environment's runtime group
    layer = pins(requirement_lines(ROOT / "asyncstack/runtime/requirements.txt"))
    runtime = pins(group("runtime"))
    # Then every package the layer ships is the version the tests run (boto3 comes with Lambda's runtime)
    assert {name: runtime[name] for name in layer} == layer
    assert set(runtime) - set(layer) == {"boto3"}


def test_a_stale_lock_is_told_apart(tmp_path: Path) -> None:
    # Given the dev lock with one direct package at another version than pyproject.toml pins
    stale = tmp_path / "dev.lock"
    stale.write_text((ROOT / "requirements/dev.lock").read_text().replace("\npytest==", "\npytest==0.0.0+"))
    # Then the comparison sees it
    assert direct(stale, "asyncstack (pyproject.toml:dev)") != pins(group("dev"))
