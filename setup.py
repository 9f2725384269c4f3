"""Build hook: the hot-path modules, compiled to C extensions by mypyc (``pyproject.toml``
holds everything else about the package).

mypyc ships with mypy (pinned in ``requirements.lock`` and in ``[build-system] requires``)
and needs a C compiler. Each module below is installed both as source and as an extension
module beside it, which Python imports instead of the source. With
``SPECOPS_PURE_PYTHON=1`` at install time nothing is compiled: the same code, slower.

An editable install (``make install``) puts the extension modules into the source tree,
next to their sources; they are rebuilt only by installing again, which ``make install``
does whenever a source changed (see the Makefile and ``specops.native``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup

#: The modules mypyc compiles: the per-request path of a call (REST, pipeline, redaction,
#: identity, policy decision). A compiled class checks annotated types at run time and
#: cannot be subclassed or monkeypatched by interpreted code. Left interpreted on purpose:
#: transports/app.py (Starlette tells endpoint functions by introspection, which compiled
#: functions fail), audit/record.py (tests build records of wrong types, which a compiled
#: class refuses), audit/log.py and audit/sqlite_appender.py (they read ``__cause__``,
#: which mypyc does not set: see tests/unit/test_native.py).
COMPILED = [
    "registry/pipeline.py",
    "registry/invocation.py",
    "registry/tracing.py",
    "registry/deadlines.py",
    "registry/errors.py",
    "registry/registry.py",
    "registry/context.py",
    "transports/rest.py",
    "transports/http.py",
    "audit/chain.py",
    "audit/redaction.py",
    "policy/api_keys.py",
    "policy/enforcer.py",
    "policy/identity.py",
    "policy/actor.py",
]

#: mypy as mypyc runs it: not the project's [tool.mypy] (strict, with the pydantic plugin),
#: so that the build also works where the dependencies are not installed (an isolated
#: ``pip install .``: their types are then Any), and type errors outside the compiled
#: modules do not stop it; and a cache of its own, so as not to churn ``mypy .``'s.
MYPY_ARGS = [
    "--config-file=",
    "--ignore-missing-imports",
    "--follow-imports=silent",
    "--cache-dir=build/mypyc-cache",
]

#: The shared library of the compiled modules: ``specops_native__mypyc`` at the top level.
GROUP = "specops_native"

#: The setuptools commands that build extension modules (as pip and ``build`` run them).
BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def pure_python() -> bool:
    return os.environ.get("SPECOPS_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes")


def building() -> bool:
    """Whether setuptools is to build: setup.py also runs for a build's requirements and
    metadata, which need no extension modules (generating them runs mypy: seconds)."""
    return any(command in BUILD_COMMANDS for command in sys.argv[1:])


def ext_modules() -> list[Any]:
    if pure_python() or not building():
        return []
    from mypyc.build import mypycify

    # multi_file: a C file per module rather than one for all, which compiles in about
    # half the time (measured: no slower per request).
    return mypycify([*MYPY_ARGS, *COMPILED], group_name=GROUP, multi_file=True)


setup(ext_modules=ext_modules())
