"""Policy lines, as policy.csv and the ``policy_rules`` table hold them, and decisions.

Two kinds of line, in Casbin's CSV form:

    p, <role>, <tenant>, <resource>, <action>, allow|deny   a permission
    g, <role>, <inherited role>, <tenant>                   a role inherits another's lines

``*`` in a tenant, resource or action matches anything from there on (Casbin's
``keyMatch``); tenant ``*`` makes a line global.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from casbin.util import key_match as casbin_key_match

PType = Literal["p", "g"]
Effect = Literal["allow", "deny"]
GLOBAL = "*"

#: One field of a line: no separators, quotes, spaces or NULs (they would break the CSV
#: form), and no longer than the table's columns.
FIELD = re.compile(r'^[^\s,"\x00]{1,255}$')
ARITY: dict[str, int] = {"p": 5, "g": 3}


class PolicyLineError(ValueError):
    """A line that is not a valid ``p`` or ``g`` line."""


@dataclass(frozen=True, slots=True)
class PolicyLine:
    """One ``p`` (role, tenant, resource, action, effect) or ``g`` (role, inherited role,
    tenant) line."""

    ptype: PType
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.ptype not in ARITY:
            raise PolicyLineError(f"a policy line is 'p' or 'g', not {self.ptype!r}")
        if len(self.values) != ARITY[self.ptype]:
            raise PolicyLineError(
                f"a {self.ptype} line has {ARITY[self.ptype]} fields, not {len(self.values)}"
            )
        for value in self.values:
            if not FIELD.fullmatch(value):
                raise PolicyLineError(
                    f"{value!r} is not a policy field (1 to 255 characters, no spaces, "
                    "commas or quotes)"
                )
        if self.ptype == "p" and self.values[4] not in ("allow", "deny"):
            raise PolicyLineError(f"the effect is 'allow' or 'deny', not {self.values[4]!r}")

    @classmethod
    def permission(
        cls, role: str, tenant: str, resource: str, action: str, effect: Effect = "allow"
    ) -> PolicyLine:
        return cls("p", (role, tenant, resource, action, effect))

    @classmethod
    def inheritance(cls, role: str, inherits: str, tenant: str) -> PolicyLine:
        return cls("g", (role, inherits, tenant))

    @classmethod
    def parse(cls, text: str) -> PolicyLine:
        """``p, user, *, invoice, pay, allow`` or ``g, admin, user, *``."""
        ptype, *values = (part.strip() for part in text.split(","))
        if ptype not in ("p", "g"):
            raise PolicyLineError(f"a policy line starts with 'p' or 'g': {text!r}")
        return cls(ptype, tuple(values))  # type: ignore[arg-type]

    @property
    def role(self) -> str:
        return self.values[0]

    @property
    def tenant(self) -> str:
        return self.values[1] if self.ptype == "p" else self.values[2]

    @property
    def resource(self) -> str | None:
        return self.values[2] if self.ptype == "p" else None

    @property
    def action(self) -> str | None:
        return self.values[3] if self.ptype == "p" else None

    @property
    def effect(self) -> Effect | None:
        return self.values[4] if self.ptype == "p" else None  # type: ignore[return-value]

    @property
    def inherits(self) -> str | None:
        return self.values[1] if self.ptype == "g" else None

    @property
    def is_global(self) -> bool:
        return self.tenant == GLOBAL

    def columns(self) -> dict[str, str]:
        """``ptype`` and ``v0``..``v4`` of the ``policy_rules`` table ("" past the end)."""
        padded = (*self.values, "", "", "")[:5]
        return {"ptype": self.ptype, **{f"v{i}": value for i, value in enumerate(padded)}}

    @classmethod
    def from_columns(cls, ptype: str, *columns: str) -> PolicyLine:
        if ptype not in ARITY:
            raise PolicyLineError(f"a policy line is 'p' or 'g', not {ptype!r}")
        return cls(ptype, tuple(columns[: ARITY[ptype]]))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return ", ".join((self.ptype, *self.values))


def parse_lines(text: str, *, source: str = "policy") -> list[PolicyLine]:
    """Every line of a policy file, skipping blanks and ``#`` comments, duplicates once."""
    lines: dict[PolicyLine, None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            lines.setdefault(PolicyLine.parse(stripped))
        except PolicyLineError as exc:
            raise PolicyLineError(f"{source}:{number}: {exc}") from None
    return list(lines)


def read_policy_file(path: Path) -> list[PolicyLine]:
    return parse_lines(path.read_text(), source=str(path))


def applies_to(line: PolicyLine, tenant: str) -> bool:
    """Whether ``line`` takes part in decisions for callers of ``tenant``."""
    return key_match(tenant, line.tenant)


def key_match(value: str, pattern: str) -> bool:
    """Casbin's ``keyMatch``: ``*`` in ``pattern`` matches any rest of ``value``."""
    return bool(casbin_key_match(value, pattern))


def unique(lines: Iterable[PolicyLine]) -> list[PolicyLine]:
    """``lines`` without repeats, in their first order."""
    return list(dict.fromkeys(lines))
