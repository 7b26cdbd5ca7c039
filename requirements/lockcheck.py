"""Does the lock still match pyproject.toml? `make test` asks before anything runs.

    python requirements/lockcheck.py requirements/test.in requirements/test.txt
    python requirements/lockcheck.py --drift requirements/test.txt


Every requirement that the `.in` file pulls in (its own lines, and through `-e PATH[extras]` the
dependencies and those extras of that project's pyproject.toml) must be pinned in the lock, for
this interpreter, at a version its specifier allows. A dependency added to pyproject.toml, or a
range that no longer admits the pinned version, means the lock is stale: the exit code is 1 and
the message names each requirement and the command that re-locks.

Offline and fast: it reads files only (the resolver runs in `make lock`).

`--drift LOCK` lists what the running interpreter has installed at other versions than the lock
pins: what `make test-latest` is about to test that `make test` does not.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

RELOCK = "make lock"


def locked_versions(lock: Path) -> dict[str, str]:
    """name → version of the pins that apply to this interpreter (a universal lock may pin a
    package twice, under different markers)."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if not line or line[0] in " #-":
            continue
        requirement = Requirement(line.rstrip(" \\"))
        if requirement.marker is None or requirement.marker.evaluate():
            (version,) = [spec.version for spec in requirement.specifier]
            pins[canonicalize_name(requirement.name)] = version
    return pins


def wanted(source: Path) -> list[tuple[str, Requirement]]:
    """(where it was asked for, requirement) for each line of the .in file, with the projects
    it installs in editable mode expanded into their dependencies."""
    found: list[tuple[str, Requirement]] = []
    for line in source.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        editable = re.fullmatch(r"-e\s+(\S+?)(?:\[([^\]]*)\])?", line)
        if editable is None:
            found.append((str(source), Requirement(line)))
            continue
        project = (source.parent / ".." / editable.group(1)).resolve() / "pyproject.toml"
        table = tomllib.loads(project.read_text())["project"]
        extras = [e.strip() for e in (editable.group(2) or "").split(",") if e.strip()]
        where = str(project.relative_to(Path.cwd().resolve()))
        for text in table.get("dependencies", []):
            found.append((where, Requirement(text)))
        for extra in extras:
            for text in table.get("optional-dependencies", {}).get(extra, []):
                found.append((f"{where} [{extra}]", Requirement(text)))
    return found


def problems(source: Path, lock: Path) -> list[str]:
    if not lock.exists():
        return [f"{lock} is missing"]
    pins = locked_versions(lock)
    found = []
    for where, requirement in wanted(source):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            found.append(f"{requirement} ({where}) is not in {lock}")
        elif not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{requirement} ({where}) does not allow the locked {version}")
    return found


def drift(lock: Path) -> list[str]:
    from importlib.metadata import distributions

    pins = locked_versions(lock)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    return [
        f"{name} {pins[name]} -> {version}"
        for name, version in sorted(installed.items())
        if name in pins and pins[name] != version
    ]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--drift"] and len(argv) == 2:
        changed = drift(Path(argv[1]))
        print(f"Newer than {argv[1]}: " + (", ".join(changed) if changed else "nothing"))
        return 0
    if len(argv) % 2:
        print("usage: lockcheck.py SOURCE.in LOCK.txt [SOURCE.in LOCK.txt ...]", file=sys.stderr)
        return 2
    found = []
    for source, lock in zip(argv[::2], argv[1::2], strict=True):
        found += problems(Path(source), Path(lock))
    if found:
        print("The lock does not match pyproject.toml:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        print(f"Run `{RELOCK}` and commit requirements/*.txt with the change.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
