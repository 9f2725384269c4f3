"""registry.registry: installing operations and resources, resolving versions, check()."""

from __future__ import annotations

import re

import pytest

from registry.actor import Actor
from registry.contract import ContractError, Deprecation
from registry.errors import ErrorSpec
from registry.registry import (
    Registry,
    ResourceAttrs,
    install_op,
    install_resource,
)

THING_NOT_FOUND = ErrorSpec("THING_NOT_FOUND", 404, "Thing not found")


async def handler(_input, _ctx):
    return {"ok": True}


async def other_handler(_input, _ctx):
    return {"ok": False}


async def load_thing(resource_id: str, actor: Actor) -> ResourceAttrs | None:
    return ResourceAttrs(resource_id, actor.tenant_id or "", actor.id)


def versions(registry: Registry, declare, *specs: tuple[str, bool]) -> None:
    for version, deprecated in specs:
        stability = "deprecated" if deprecated else "stable"
        install_op(registry, declare(version=version, stability=stability), handler)


def test_install_and_resolve(declare_command) -> None:
    registry = Registry()
    contract = declare_command()
    install_op(registry, contract, handler)
    op = registry.resolve("things.doThing")
    assert op is not None
    assert op.contract is contract
    assert op.handler is handler
    assert registry.is_latest(op)


def test_the_same_version_is_refused_twice(declare_command) -> None:
    registry = Registry()
    install_op(registry, declare_command(), handler)
    with pytest.raises(ContractError, match=r"things\.doThing@1\.0\.0 is installed twice"):
        install_op(registry, declare_command(title="Another"), other_handler)
    op = registry.resolve("things.doThing", "1.0.0")
    assert op is not None and op.handler is handler


def test_a_handler_must_be_callable(declare_command) -> None:
    registry = Registry()
    with pytest.raises(ContractError, match="not callable"):
        install_op(registry, declare_command(), "not a function")  # type: ignore[arg-type]
    assert registry.resolve("things.doThing") is None


def test_several_versions_coexist(declare_command) -> None:
    registry = Registry()
    versions(registry, declare_command, ("1.0.0", False), ("1.2.0", False), ("2.0.0", False))
    for version in ("1.0.0", "1.2.0", "2.0.0"):
        op = registry.resolve("things.doThing", version)
        assert op is not None
        assert str(op.contract.version) == version


def test_unversioned_resolve_picks_the_highest_non_deprecated(declare_command) -> None:
    registry = Registry()
    # installed out of order; 10.0.0 > 9.0.0 numerically, not lexically
    versions(
        registry,
        declare_command,
        ("9.0.0", False),
        ("10.0.0", False),
        ("2.0.0", False),
        ("11.0.0", True),
    )
    op = registry.resolve("things.doThing")
    assert op is not None
    assert str(op.contract.version) == "10.0.0"
    assert registry.is_latest(op)
    deprecated = registry.resolve("things.doThing", "11.0.0")
    assert deprecated is not None and not registry.is_latest(deprecated)


def test_a_deprecation_notice_also_counts_as_deprecated(declare_command) -> None:
    registry = Registry()
    install_op(registry, declare_command(version="1.0.0"), handler)
    install_op(
        registry, declare_command(version="2.0.0", deprecation=Deprecation("broken")), handler
    )
    op = registry.resolve("things.doThing")
    assert op is not None and str(op.contract.version) == "1.0.0"


def test_unversioned_resolve_falls_back_to_the_highest_when_all_are_deprecated(
    declare_command,
) -> None:
    registry = Registry()
    versions(registry, declare_command, ("1.0.0", True), ("3.0.0", True), ("2.0.0", True))
    op = registry.resolve("things.doThing")
    assert op is not None
    assert str(op.contract.version) == "3.0.0"


def test_a_new_current_version_replaces_the_deprecated_fallback(declare_command) -> None:
    registry = Registry()
    versions(registry, declare_command, ("2.0.0", True))
    versions(registry, declare_command, ("1.5.0", False))
    op = registry.resolve("things.doThing")
    assert op is not None and str(op.contract.version) == "1.5.0"


@pytest.mark.parametrize("pinned", ["1.2.0", "v1.2.0"])
def test_pinned_resolve_with_and_without_a_leading_v(declare_command, pinned: str) -> None:
    registry = Registry()
    versions(registry, declare_command, ("1.0.0", False), ("1.2.0", False), ("2.0.0", False))
    op = registry.resolve("things.doThing", pinned)
    assert op is not None
    assert str(op.contract.version) == "1.2.0"


@pytest.mark.parametrize(
    ("key", "version"),
    [
        ("things.unknown", None),
        ("things.unknown", "1.0.0"),
        ("things.doThing", "1.0.1"),
        ("things.doThing", "3.0.0"),
        ("things.doThing", "1"),
        ("things.doThing", "latest"),
        ("things.doThing", ""),
        ("things.doThing", "vv1.0.0"),
    ],
)
def test_unknown_key_or_version_resolves_to_none(declare_command, key, version) -> None:
    registry = Registry()
    versions(registry, declare_command, ("1.0.0", False))
    assert registry.resolve(key, version) is None


def test_check_refuses_a_conditioned_rule_without_a_loader(declare_command) -> None:
    registry = Registry()
    install_op(
        registry,
        declare_command(rules=[("thing", "read", "owner")], errors=[THING_NOT_FOUND]),
        handler,
    )
    with pytest.raises(ContractError, match="no loader installed for resource 'thing'"):
        registry.check()
    install_resource(registry, "thing", load_thing, not_found=THING_NOT_FOUND)
    registry.check()


def test_check_ignores_rules_without_a_condition(declare_command) -> None:
    registry = Registry()
    install_op(registry, declare_command(rules=[("thing", "read")]), handler)
    registry.check()


def test_check_refuses_an_undeclared_not_found_error(declare_command) -> None:
    registry = Registry()
    install_resource(registry, "thing", load_thing, not_found=THING_NOT_FOUND)
    install_op(registry, declare_command(rules=[("thing", "read", "tenant")]), handler)
    with pytest.raises(ContractError, match="must declare THING_NOT_FOUND"):
        registry.check()


def test_a_resource_gets_one_loader(declare_command) -> None:
    registry = Registry()
    install_resource(registry, "thing", load_thing, not_found=THING_NOT_FOUND)
    with pytest.raises(ContractError, match="two loaders"):
        install_resource(registry, "thing", load_thing, not_found=THING_NOT_FOUND)
    assert registry.resource("thing").loader is load_thing
    assert registry.resource("thing").not_found is THING_NOT_FOUND


def test_operations_and_latest_are_ordered(declare_command, declare_query) -> None:
    registry = Registry()
    install_op(registry, declare_query(key="zeta.last", version="1.0.0"), handler)
    install_op(registry, declare_command(key="alpha.first", version="10.0.0"), handler)
    install_op(registry, declare_command(key="alpha.first", version="2.0.0"), handler)
    install_op(registry, declare_command(key="alpha.first", version="2.0.0-rc.1"), handler)
    install_op(registry, declare_query(key="mid.dle", version="1.0.0"), handler)

    assert [op.contract.ref for op in registry.operations()] == [
        "alpha.first@2.0.0-rc.1",
        "alpha.first@2.0.0",
        "alpha.first@10.0.0",
        "mid.dle@1.0.0",
        "zeta.last@1.0.0",
    ]
    assert [op.contract.ref for op in registry.latest()] == [
        "alpha.first@10.0.0",
        "mid.dle@1.0.0",
        "zeta.last@1.0.0",
    ]


def test_check_refuses_a_successor_that_is_not_installed(declare_command) -> None:
    registry = Registry()
    notice = Deprecation("replaced", replaced_by="things.doThing@2.0.0")
    install_op(registry, declare_command(version="1.0.0", deprecation=notice), handler)
    with pytest.raises(
        ContractError, match=re.escape("replaced_by 'things.doThing@2.0.0' is not installed")
    ):
        registry.check()
    install_op(registry, declare_command(version="2.0.0"), handler)
    registry.check()
    retired = registry.resolve("things.doThing", "1.0.0")
    assert retired is not None and retired.ref.successor == ("things.doThing", "2.0.0")
