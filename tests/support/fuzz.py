"""What the fuzz tests of the three transports share: how many examples they try, and
hypothesis' settings for them (deterministic: CI sees the same cases every run)."""

from __future__ import annotations

import os
import re

import hypothesis
import schemathesis
from hypothesis import HealthCheck

#: Examples per operation, root field or tool; ``SPECOPS_FUZZ_EXAMPLES=400`` explores
#: further (a longer run than CI's).
MAX_EXAMPLES = int(os.environ.get("SPECOPS_FUZZ_EXAMPLES", "40"))

SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)

#: Generation from the OpenAPI document: valid and invalid input alike. Credentials are
#: sent explicitly; generated Authorization headers would only be refused.
OPENAPI_CONFIG = schemathesis.Config.from_dict(
    {"generation": {"mode": "all", "with-security-parameters": False}}
)

_CODE = re.compile(r"^[A-Z][A-Z_]*$")


def is_stable_refusal(code: object) -> bool:
    """Whether ``code`` is a catalogue code of a refusal: not missing, not INTERNAL."""
    return isinstance(code, str) and _CODE.fullmatch(code) is not None and code != "INTERNAL"
