"""The compiled build (``setup.py``, mypyc): what it may compile, and stale extensions."""

from __future__ import annotations

import ast
import importlib
import os
import traceback
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from registry.errors import OperationError
from registry.invocation import Invocation
from registry.pipeline import Call
from specops.native import stale_extensions
from tests.unit.test_trace_context import Sink, make_pipeline

ROOT = Path(__file__).resolve().parents[2]


def compiled_sources() -> list[str]:
    """``COMPILED`` of setup.py, read without running it."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED" for target in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py lists no COMPILED modules")


def test_the_listed_modules_are_all_compiled_or_none_is() -> None:
    names = [source.removesuffix(".py").replace("/", ".") for source in compiled_sources()]
    compiled = [
        name for name in names if not str(importlib.import_module(name).__file__).endswith(".py")
    ]
    assert compiled in ([], names)  # none: SPECOPS_PURE_PYTHON=1


@pytest.mark.parametrize("source", compiled_sources())
def test_compiled_modules_do_not_rely_on_exception_chaining(source: str) -> None:
    """mypyc ignores the ``from`` of ``raise ... from cause``: the exception gets no
    ``__cause__`` (and ``from None`` hides no context). A compiled module may write ``from
    None`` (for the interpreted build's tracebacks), nothing else."""
    chained = [
        node.lineno
        for node in ast.walk(ast.parse((ROOT / source).read_text()))
        if isinstance(node, ast.Raise)
        and node.cause is not None
        and not (isinstance(node.cause, ast.Constant) and node.cause.value is None)
    ]
    assert not chained, f"{source}: raise ... from <cause> on lines {chained}"
    # ...and ``from None`` only on a ``detached(...)`` error, which hides the context
    # whether or not the ``from None`` is honoured
    bare = [
        node.lineno
        for node in ast.walk(ast.parse((ROOT / source).read_text()))
        if isinstance(node, ast.Raise)
        and node.cause is not None
        and not (
            isinstance(node.exc, ast.Call)
            and isinstance(node.exc.func, ast.Name)
            and node.exc.func.id == "detached"
        )
    ]
    assert not bare, f"{source}: raise ... from None without detached() on lines {bare}"


#: The dataclasses compiled modules make on every call, whose ``__init__`` they write out.
PER_CALL_CLASSES = [
    "registry.invocation.Invocation",
    "registry.invocation.Outcome",
    "registry.pipeline.Call",
    "registry.context.Context",
    "registry.deadlines._Call",
    "registry.errors.Problem",
    "registry.errors.Issue",
    "transports.http.RequestHeaders",
    "audit.redaction.RedactedInput",
]


@pytest.mark.parametrize("path", PER_CALL_CLASSES)
def test_per_call_dataclasses_write_their_init_out(path: str) -> None:
    """A dataclass' generated ``__init__`` is Python code, interpreted even in a compiled
    module; a written-out one is compiled with it. Either build: the class says
    ``init=False`` and defines ``__init__`` itself."""
    module, name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    assert not cls.__dataclass_params__.init, f"{path}: @dataclass(init=False) expected"
    assert "__init__" in vars(cls), f"{path} defines no __init__"
    if not str(importlib.import_module(module).__file__).endswith(".py"):
        assert not hasattr(cls.__init__, "__code__"), f"{path}.__init__ is not compiled"


async def test_an_invalid_input_error_does_not_show_the_validation_error_it_replaced() -> None:
    """A pydantic ValidationError quotes the input: the INVALID_INPUT that replaces it
    must not show it in a traceback, in the compiled build as in the interpreted one."""
    pipeline = make_pipeline(Sink())
    call = Call(Invocation(key="test.echo", input={"text": 5}, transport="cli"), 0.0)
    await pipeline.resolve(call)
    with pytest.raises(OperationError) as raised:
        await pipeline.validate_input(call)
    assert raised.value.code == "INVALID_INPUT"
    assert raised.value.__suppress_context__ and raised.value.__cause__ is None
    shown = "".join(traceback.format_exception(raised.value))
    assert "ValidationError" not in shown


def test_an_extension_module_older_than_its_source_is_stale(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("")  # a source checkout
    package = tmp_path / "pkg"
    package.mkdir()
    source = package / "mod.py"
    source.write_text("")
    extension = package / f"mod{EXTENSION_SUFFIXES[0]}"
    extension.write_bytes(b"")
    (package / "other.py").write_text("")
    os.utime(source, (1000, 1000))
    os.utime(extension, (2000, 2000))
    assert stale_extensions([str(package)]) == []
    os.utime(source, (3000, 3000))
    assert stale_extensions([str(package)]) == [str(extension)]
    source.unlink()
    assert stale_extensions([str(package)]) == [str(extension)]
    (tmp_path / "setup.py").unlink()  # installed: sources and extensions come together
    assert stale_extensions([str(package)]) == []
