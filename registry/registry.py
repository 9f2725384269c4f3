"""The registry: installed contracts, their handlers and the resource loaders policy needs."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, get_type_hints

import semver

from registry.actor import Actor
from registry.context import Context
from registry.contract import Contract, ContractError, RateLimit
from registry.errors import ErrorSpec
from registry.invocation import OperationRef
from registry.model import WireModel

Handler = Callable[[Any, Context], Awaitable[WireModel | dict[str, Any]]]


def handler_input_type(handler: Handler) -> type | None:
    """The class a handler annotates its input with, when it says."""
    target = handler if inspect.isfunction(handler) or inspect.ismethod(handler) else None
    if target is None:
        target = getattr(type(handler), "__call__", None)  # noqa: B004
    if target is None:
        return None
    try:
        hints = get_type_hints(target)
    except (NameError, TypeError):
        return None
    params = [p for p in inspect.signature(target).parameters if p not in ("self", "return")]
    if not params:
        return None
    hint = hints.get(params[0])
    return hint if isinstance(hint, type) else None


@dataclass(frozen=True, slots=True)
class ResourceAttrs:
    """What policy conditions read about a resource: whose it is and in which tenant."""

    id: str
    tenant_id: str
    owner_id: str | None


ResourceLoader = Callable[[str, Actor], Awaitable[ResourceAttrs | None]]


@dataclass(frozen=True, slots=True)
class ResourceType:
    """How to load one kind of resource, and the error to answer when it is absent.

    Loaders must filter by the actor's tenant: a resource of another tenant is absent.
    """

    name: str
    loader: ResourceLoader
    not_found: ErrorSpec


@dataclass(frozen=True, slots=True)
class Operation:
    """A contract together with the handler that implements it."""

    contract: Contract
    handler: Handler
    #: How outcomes and problems name it (made once, not per call).
    ref: OperationRef = field(init=False, compare=False)

    def __post_init__(self) -> None:
        c = self.contract
        retired = c.deprecation
        ref = OperationRef(
            c.key,
            c.version_text,
            c.kind,
            c.deprecated,
            retired.sunset if retired is not None else None,
            retired.successor(c.key) if retired is not None else None,
            retired.since if retired is not None else None,
        )
        object.__setattr__(self, "ref", ref)


class Registry:
    """Every installed operation, by key and version."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[semver.Version, Operation]] = {}
        self._latest: dict[str, Operation] = {}
        self._resources: dict[str, ResourceType] = {}

    def add(self, contract: Contract, handler: Handler) -> None:
        versions = self._versions.setdefault(contract.key, {})
        if contract.version in versions:
            raise ContractError(f"{contract.ref} is installed twice")
        if not callable(handler):
            raise ContractError(f"{contract.ref}: handler is not callable")
        expected = handler_input_type(handler)
        if expected is not None and expected is not contract.input:
            raise ContractError(
                f"{contract.ref}: handler {getattr(handler, '__qualname__', handler)!r} takes "
                f"{expected.__name__}, but the contract's input is {contract.input.__name__}"
            )
        versions[contract.version] = Operation(contract, handler)
        self._latest[contract.key] = self._pick_latest(versions)

    def add_resource(self, resource: ResourceType) -> None:
        if resource.name in self._resources:
            raise ContractError(f"resource {resource.name!r} has two loaders")
        self._resources[resource.name] = resource

    @staticmethod
    def _pick_latest(versions: dict[semver.Version, Operation]) -> Operation:
        ordered = sorted(versions.items(), key=lambda item: item[0], reverse=True)
        current = [op for _, op in ordered if not op.contract.deprecated]
        return current[0] if current else ordered[0][1]

    def resolve(self, key: str, version: str | None = None) -> Operation | None:
        """The operation for ``key`` at ``version``; latest non-deprecated when unpinned."""
        if version is None:
            return self._latest.get(key)
        versions = self._versions.get(key)
        if versions is None:
            return None
        try:
            return versions.get(semver.Version.parse(version.removeprefix("v")))
        except ValueError:
            return None

    def override_rate_limit(self, key: str, limit: RateLimit | None) -> None:
        """Count every version of ``key`` against ``limit`` instead of the rate limit its
        contract declares (None: no limit); an operator's setting, applied at start-up."""
        versions = self._versions.get(key)
        if versions is None:
            raise ContractError(f"a rate limit is set for {key!r}, which is not installed")
        for version, op in versions.items():
            policy = replace(op.contract.policy, rate_limit=limit)
            versions[version] = Operation(replace(op.contract, policy=policy), op.handler)
        self._latest[key] = self._pick_latest(versions)

    def resource(self, name: str) -> ResourceType:
        return self._resources[name]

    def operations(self) -> Iterator[Operation]:
        """Every installed operation, sorted by key then version."""
        for key in sorted(self._versions):
            for version in sorted(self._versions[key]):
                yield self._versions[key][version]

    def latest(self) -> Iterator[Operation]:
        """The operation each unversioned key resolves to."""
        for key in sorted(self._latest):
            yield self._latest[key]

    def is_latest(self, operation: Operation) -> bool:
        return self._latest.get(operation.contract.key) is operation

    def check(self) -> None:
        """Refuse at start-up what would fail per call: rules on resources with no loader,
        or a loader whose not-found error the contract does not declare; and a retired
        version whose successor is not installed."""
        for op in self.operations():
            successor = op.ref.successor
            if successor is not None and self.resolve(*successor) is None:
                named = op.contract.deprecation.replaced_by if op.contract.deprecation else None
                raise ContractError(f"{op.contract.ref}: replaced_by {named!r} is not installed")
            for rule in op.contract.policy.rules:
                if rule.condition is None:
                    continue
                resource = self._resources.get(rule.resource)
                if resource is None:
                    raise ContractError(
                        f"{op.contract.ref}: no loader installed for resource {rule.resource!r}"
                    )
                if op.contract.declared_error(resource.not_found.code) is None:
                    raise ContractError(
                        f"{op.contract.ref}: must declare {resource.not_found.code}, "
                        f"which its {rule.resource!r} rule can answer"
                    )


def install_op(registry: Registry, contract: Contract, handler: Handler) -> None:
    """Install ``handler`` as the implementation of ``contract``."""
    registry.add(contract, handler)


def install_resource(
    registry: Registry, name: str, loader: ResourceLoader, *, not_found: ErrorSpec
) -> None:
    """Install the loader policy conditions use for resources called ``name``."""
    registry.add_resource(ResourceType(name, loader, not_found))
