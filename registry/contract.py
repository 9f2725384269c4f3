"""Contract declarations: ``command(...)`` and ``query(...)``.

A contract is plain data: what an operation is called, what it takes and returns, who
may call it and how it can fail. It does no I/O; handlers implement it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Required, TypedDict, Unpack

import semver

from registry.errors import ErrorSpec
from registry.model import WireModel

Kind = Literal["command", "query"]
Stability = Literal["idea", "in_creation", "experimental", "beta", "stable", "deprecated"]
AuthLevel = Literal["anonymous", "user", "admin", "service"]
Condition = Literal["owner", "tenant"]

KEY_PATTERN = re.compile(r"^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)+$")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


class ContractError(ValueError):
    """A contract or an installation is malformed; raised at start-up, never per call."""


@dataclass(frozen=True, slots=True)
class Rule:
    """``(resource, action, condition)``: the caller needs ``action`` on ``resource``.

    With a condition, the resource named by the input field ``id_field`` (default
    ``<resource>_id``) is loaded before the handler runs, and ``owner`` requires the
    caller to own it, ``tenant`` to share its tenant.
    """

    resource: str
    action: str
    condition: Condition | None = None
    id_field: str | None = None

    @property
    def resource_id_field(self) -> str:
        return self.id_field or f"{self.resource}_id"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``rpm`` calls a minute, counted per actor, per tenant, or for everyone."""

    rpm: int
    per: Literal["actor", "tenant", "global"] = "actor"

    def __post_init__(self) -> None:
        if self.rpm < 1:
            raise ContractError("a rate limit needs rpm >= 1")


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may invoke: an auth level plus rules, all of which must allow, and an optional
    rate limit."""

    auth: AuthLevel = "user"
    rules: tuple[Rule, ...] = ()
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class Deprecation:
    """Why a version is retired, when it stops working (``sunset``), since when it is
    retired (``since``), and what replaces it. ``replaced_by`` names a version of the same
    key (``"1.1.0"``), another operation at its current version (``"billing.payInvoice"``)
    or at one version (``"billing.payInvoice@2.0.0"``); see ``successor``."""

    reason: str
    sunset: date | None = None
    replaced_by: str | None = None
    since: date | None = None

    def successor(self, key: str) -> tuple[str, str | None] | None:
        """The key and version (None: the key's current one) that replace a retired
        version of ``key``; None when nothing does. ContractError when ``replaced_by``
        has none of the three forms."""
        named = self.replaced_by
        if named is None:
            return None
        other, at, version = named.partition("@")
        if not at and not KEY_PATTERN.fullmatch(other):
            other, version = key, named  # a version of the same key
        if not KEY_PATTERN.fullmatch(other) or (at and not version):
            raise ContractError(
                f"{key}: replaced_by {named!r} is not a version, a key or key@version"
            )
        if not version:
            return other, None
        try:
            return other, str(semver.Version.parse(version))
        except ValueError:
            raise ContractError(f"{key}: replaced_by {named!r} names no semver version") from None

    def successor_ref(self, key: str) -> str | None:
        """``successor`` as text: ``key@version``, or the key alone."""
        found = self.successor(key)
        if found is None:
            return None
        other, version = found
        return other if version is None else f"{other}@{version}"


@dataclass(frozen=True, slots=True)
class Contract:
    """One operation at one version."""

    kind: Kind
    key: str
    version: semver.Version
    title: str
    description: str
    goal: str
    context: str
    owners: tuple[str, ...]
    tags: tuple[str, ...]
    stability: Stability
    input: type[WireModel]
    output: type[WireModel]
    errors: tuple[ErrorSpec, ...] = ()
    policy: Policy = field(default_factory=Policy)
    deprecation: Deprecation | None = None
    timeout_seconds: float = 30.0
    #: ``str(version)``, made once (semver's ``__str__`` costs microseconds a call).
    version_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "version_text", str(self.version))

    @property
    def domain(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def deprecated(self) -> bool:
        return self.deprecation is not None or self.stability == "deprecated"

    @property
    def ref(self) -> str:
        """``key@version``, for logs and messages."""
        return f"{self.key}@{self.version_text}"

    def declared_error(self, code: str) -> ErrorSpec | None:
        return next((e for e in self.errors if e.code == code), None)


RuleLike = Rule | tuple[str, str] | tuple[str, str, str | None]


def _rule(value: RuleLike) -> Rule:
    if isinstance(value, Rule):
        return value
    resource, action, *rest = value
    condition = rest[0] if rest else None
    if condition not in (None, "owner", "tenant"):
        raise ContractError(f"unknown policy condition {condition!r}")
    return Rule(resource, action, condition)  # type: ignore[arg-type]


def _declare(
    kind: Kind,
    *,
    key: str,
    version: str,
    title: str,
    description: str,
    goal: str,
    context: str,
    owners: Iterable[str],
    tags: Iterable[str] = (),
    stability: Stability = "experimental",
    input: type[WireModel],
    output: type[WireModel],
    errors: Iterable[ErrorSpec] = (),
    auth: AuthLevel = "user",
    rules: Iterable[RuleLike] = (),
    deprecation: Deprecation | None = None,
    timeout_seconds: float = 30.0,
    rate_limit: RateLimit | None = None,
) -> Contract:
    if not KEY_PATTERN.fullmatch(key):
        raise ContractError(f"contract key {key!r} must look like 'domain.verbNoun'")
    try:
        parsed = semver.Version.parse(version)
    except ValueError as exc:
        raise ContractError(f"{key}: version {version!r} is not semver") from exc
    for model in (input, output):
        if not (isinstance(model, type) and issubclass(model, WireModel)):
            raise ContractError(f"{key}: IO models must subclass registry.model.WireModel")
    owner_list = tuple(owners)
    declared = tuple(errors)
    codes = [e.code for e in declared]
    if len(set(codes)) != len(codes):
        raise ContractError(f"{key}: an error code is declared twice")
    parsed_rules = tuple(_rule(r) for r in rules)
    for rule in parsed_rules:
        if rule.condition and rule.resource_id_field not in input.model_fields:
            raise ContractError(
                f"{key}: rule on {rule.resource!r} needs input field {rule.resource_id_field!r}"
            )
    if auth != "anonymous" and not owner_list:
        raise ContractError(f"{key}: a contract needs at least one owner")
    if deprecation is not None:
        _check_deprecation(key, parsed, deprecation)
    return Contract(
        kind=kind,
        key=key,
        version=parsed,
        title=title,
        description=description,
        goal=goal,
        context=context,
        owners=owner_list,
        tags=tuple(tags),
        stability=stability,
        input=input,
        output=output,
        errors=declared,
        policy=Policy(auth, parsed_rules, rate_limit),
        deprecation=deprecation,
        timeout_seconds=timeout_seconds,
    )


def _check_deprecation(key: str, version: semver.Version, deprecation: Deprecation) -> None:
    """Refuse a successor that is malformed or the retired version itself, and a sunset
    before the retirement."""
    successor = deprecation.successor(key)
    if successor == (key, str(version)):
        raise ContractError(f"{key}@{version}: replaced_by names this very version")
    since, sunset = deprecation.since, deprecation.sunset
    if since is not None and sunset is not None and sunset < since:
        raise ContractError(f"{key}@{version}: sunset {sunset} comes before since {since}")


class _Settings(TypedDict, total=False):
    """What a declaration and a revision may set alike (their defaults: ``_declare``'s)."""

    stability: Stability
    errors: Iterable[ErrorSpec]
    auth: AuthLevel
    rules: Iterable[RuleLike]
    deprecation: Deprecation | None
    timeout_seconds: float
    rate_limit: RateLimit | None


class ContractFields(_Settings, total=False):
    """The keyword arguments of ``command(...)`` and ``query(...)``."""

    key: Required[str]
    version: Required[str]
    title: Required[str]
    description: Required[str]
    goal: Required[str]
    context: Required[str]
    owners: Required[Iterable[str]]
    tags: Iterable[str]
    input: Required[type[WireModel]]
    output: Required[type[WireModel]]


def command(**fields: Unpack[ContractFields]) -> Contract:
    """Declare an operation that changes state (POST only, idempotency keys honoured)."""
    return _declare("command", **fields)


def query(**fields: Unpack[ContractFields]) -> Contract:
    """Declare an operation that only reads (GET or POST)."""
    return _declare("query", **fields)


class Revision(_Settings, total=False):
    """What another version of an operation declares anew (``revision``)."""

    version: Required[str]
    description: str
    input: type[WireModel]
    output: type[WireModel]


def revision(earlier: Contract, **changes: Unpack[Revision]) -> Contract:
    """Another version of ``earlier``'s operation: its key, title, goal, context, owners
    and tags, with ``changes`` (a ``version`` at least) over the rest of its declaration,
    checked as any declaration is. A retirement is not carried over: neither a
    ``deprecation`` nor, unless ``changes`` give one, a ``"deprecated"`` stability."""
    if earlier.stability == "deprecated" and "stability" not in changes:
        raise ContractError(f"{earlier.ref} is deprecated: give {changes['version']} a stability")
    policy = earlier.policy
    fields: dict[str, Any] = {
        "key": earlier.key,
        "title": earlier.title,
        "description": earlier.description,
        "goal": earlier.goal,
        "context": earlier.context,
        "owners": earlier.owners,
        "tags": earlier.tags,
        "stability": earlier.stability,
        "input": earlier.input,
        "output": earlier.output,
        "errors": earlier.errors,
        "auth": policy.auth,
        "rules": policy.rules,
        "rate_limit": policy.rate_limit,
        "timeout_seconds": earlier.timeout_seconds,
        **changes,
    }
    return _declare(earlier.kind, **fields)
