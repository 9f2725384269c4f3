"""Extension modules that mypyc built in a source checkout, and whether any is stale.

``make install`` (an editable install) compiles the modules that ``setup.py`` lists into
extension modules beside their sources, and Python imports an extension module rather
than the source of the same name. Once a source changes, its extension module holds the
old code until the next install; the packages holding compiled modules therefore call
``refuse_stale`` as they are imported, so that an edit never runs as the old compiled
code unnoticed. (Falling back to the edited source alone would not do: the compiled
modules call each other's compiled code directly.)

Only a source checkout is checked (a ``setup.py`` beside the package): an installed wheel
replaces sources and extension modules together.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path


class StaleExtension(ImportError):
    """An extension module is older than its source (or has none)."""


def _source_of(extension: Path) -> Path | None:
    """``pkg/mod.py`` for ``pkg/mod.cpython-311-x86_64-linux-gnu.so``; None for a file that
    is not an extension module."""
    for suffix in EXTENSION_SUFFIXES:  # the longest (the interpreter's own) first
        if extension.name.endswith(suffix):
            return extension.with_name(extension.name[: -len(suffix)] + ".py")
    return None


def stale_extensions(package_dirs: Iterable[str]) -> list[str]:
    """The extension modules in ``package_dirs`` (of a source checkout) whose source was
    changed after they were built, or removed."""
    stale = []
    for directory in map(Path, package_dirs):
        if not (directory.parent / "setup.py").is_file():
            continue
        for path in directory.iterdir():
            source = _source_of(path)
            if source is None:
                continue
            try:
                changed = source.stat().st_mtime > path.stat().st_mtime
            except FileNotFoundError:
                changed = True
            if changed:
                stale.append(str(path))
    return sorted(stale)


def refuse_stale(package_dirs: Iterable[str]) -> None:
    """Raise ``StaleExtension`` when a compiled module of the package is stale."""
    stale = stale_extensions(package_dirs)
    if stale:
        raise StaleExtension(
            "compiled modules are older than their sources: "
            + ", ".join(stale)
            + ". Run `make install` to compile them again, or `make clean-native` to run "
            "the sources interpreted."
        )
