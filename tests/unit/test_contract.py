"""registry.contract: what ``command(...)`` and ``query(...)`` accept and refuse."""

from __future__ import annotations

from datetime import date

import pytest
import semver
from pydantic import BaseModel

from registry.contract import ContractError, Deprecation, Rule, revision
from registry.errors import ErrorSpec
from tests.unit.conftest import ThingInput, ThingOutput

NOT_FOUND = ErrorSpec("THING_NOT_FOUND", 404, "Thing not found")


def test_a_valid_command_and_query(declare_command, declare_query) -> None:
    cmd = declare_command(tags=["a", "b"], errors=[NOT_FOUND])
    qry = declare_query(key="things.getThing", version="2.1.0-beta.1")

    assert cmd.kind == "command"
    assert cmd.version == semver.Version(1, 0, 0)
    assert cmd.owners == ("team-tests",)
    assert cmd.tags == ("a", "b")
    assert cmd.errors == (NOT_FOUND,)
    assert cmd.declared_error("THING_NOT_FOUND") is NOT_FOUND
    assert cmd.declared_error("OTHER") is None
    assert cmd.policy.auth == "user"
    assert cmd.policy.rules == ()
    assert qry.kind == "query"
    assert qry.version == semver.Version(2, 1, 0, prerelease="beta.1")


@pytest.mark.parametrize(
    "key",
    [
        "billing",  # no domain separator
        "Billing.capturePayment",  # domain starts upper case
        "billing.CapturePayment",  # name starts upper case
        "billing.capture_payment",  # snake case
        "billing..capture",
        "billing.capture.",
        ".billing.capture",
        "billing.1capture",
        "billing capture",
        "billing.capture-payment",
        "",
    ],
)
def test_bad_keys_are_refused(declare_command, key: str) -> None:
    with pytest.raises(ContractError, match="must look like"):
        declare_command(key=key)


@pytest.mark.parametrize("key", ["billing.capturePayment", "a.b", "billing.v2.refund2"])
def test_good_keys_are_accepted(declare_command, key: str) -> None:
    assert declare_command(key=key).key == key


def test_a_key_with_a_trailing_newline_is_refused(declare_command) -> None:
    with pytest.raises(ContractError):
        declare_command(key="billing.capturePayment\n")


@pytest.mark.parametrize("version", ["1", "1.0", "v1.0.0", "1.0.0.0", "one", "", "01.0.0"])
def test_non_semver_versions_are_refused(declare_command, version: str) -> None:
    with pytest.raises(ContractError, match="is not semver"):
        declare_command(version=version)


class PlainModel(BaseModel):
    thing_id: str


@pytest.mark.parametrize(
    "overrides",
    [
        {"input": PlainModel},
        {"output": PlainModel},
        {"input": dict},
        {"output": ThingOutput(ok=True)},  # an instance, not a class
    ],
)
def test_io_models_must_subclass_wire_model(declare_command, overrides) -> None:
    with pytest.raises(ContractError, match="WireModel"):
        declare_command(**overrides)


def test_an_error_code_declared_twice_is_refused(declare_command) -> None:
    again = ErrorSpec("THING_NOT_FOUND", 410, "Gone")
    with pytest.raises(ContractError, match="declared twice"):
        declare_command(errors=[NOT_FOUND, again])


def test_a_conditioned_rule_needs_its_id_field_in_the_input(declare_command) -> None:
    with pytest.raises(ContractError, match="'invoice_id'"):
        declare_command(rules=[("invoice", "pay", "owner")])
    with pytest.raises(ContractError, match="'widget_id'"):
        declare_command(rules=[Rule("thing", "read", "tenant", id_field="widget_id")])


def test_a_conditioned_rule_on_a_present_id_field_is_accepted(declare_command) -> None:
    contract = declare_command(rules=[("thing", "read", "tenant")])
    assert contract.policy.rules == (Rule("thing", "read", "tenant"),)
    custom = declare_command(rules=[Rule("widget", "read", "owner", id_field="thing_id")])
    assert custom.policy.rules[0].resource_id_field == "thing_id"


def test_an_unconditioned_rule_needs_no_id_field(declare_command) -> None:
    contract = declare_command(rules=[("invoice", "create")])
    assert contract.policy.rules == (Rule("invoice", "create", None),)


def test_rule_tuples_are_parsed_into_rules(declare_command) -> None:
    contract = declare_command(
        rules=[("thing", "read"), ("thing", "pay", "owner"), ("thing", "list", None)]
    )
    assert contract.policy.rules == (
        Rule("thing", "read"),
        Rule("thing", "pay", "owner"),
        Rule("thing", "list"),
    )
    assert all(isinstance(r, Rule) for r in contract.policy.rules)
    assert contract.policy.rules[1].resource_id_field == "thing_id"


def test_an_unknown_condition_is_refused(declare_command) -> None:
    with pytest.raises(ContractError, match="unknown policy condition"):
        declare_command(rules=[("thing", "read", "friend")])


def test_owners_are_required_unless_anonymous(declare_command) -> None:
    with pytest.raises(ContractError, match="at least one owner"):
        declare_command(owners=[])
    with pytest.raises(ContractError, match="at least one owner"):
        declare_command(owners=(), auth="admin")
    assert declare_command(owners=[], auth="anonymous").owners == ()


def test_deprecated_follows_stability_or_a_deprecation(declare_command) -> None:
    assert not declare_command(stability="stable").deprecated
    assert declare_command(stability="deprecated").deprecated
    notice = Deprecation("replaced", sunset=date(2030, 1, 1), replaced_by="things.doBetter")
    retired = declare_command(stability="stable", deprecation=notice)
    assert retired.deprecated
    assert retired.deprecation is notice


@pytest.mark.parametrize(
    ("replaced_by", "successor", "text"),
    [
        ("1.1.0", ("things.doThing", "1.1.0"), "things.doThing@1.1.0"),
        ("things.doBetter", ("things.doBetter", None), "things.doBetter"),
        ("things.doBetter@2.0.0", ("things.doBetter", "2.0.0"), "things.doBetter@2.0.0"),
        (None, None, None),
    ],
)
def test_a_successor_is_a_version_a_key_or_both(
    declare_command, replaced_by: str | None, successor: object, text: str | None
) -> None:
    notice = Deprecation("replaced", replaced_by=replaced_by)
    retired = declare_command(key="things.doThing", deprecation=notice)
    assert notice.successor(retired.key) == successor
    assert notice.successor_ref(retired.key) == text


@pytest.mark.parametrize(
    ("deprecation", "message"),
    [
        (Deprecation("x", replaced_by="things.doBetter@2"), "names no semver version"),
        (Deprecation("x", replaced_by="2"), "names no semver version"),
        (Deprecation("x", replaced_by="things.doBetter@"), "not a version, a key or key@version"),
        (Deprecation("x", replaced_by="Things@1.0.0"), "not a version, a key or key@version"),
        (Deprecation("x", replaced_by="1.0.0"), "names this very version"),
        (Deprecation("x", replaced_by="things.doThing@1.0.0"), "names this very version"),
        (
            Deprecation("x", since=date(2030, 1, 2), sunset=date(2030, 1, 1)),
            "sunset 2030-01-01 comes before since 2030-01-02",
        ),
    ],
)
def test_a_malformed_deprecation_is_refused_at_declaration(
    declare_command, deprecation: Deprecation, message: str
) -> None:
    with pytest.raises(ContractError, match=message):
        declare_command(key="things.doThing", version="1.0.0", deprecation=deprecation)


def test_a_revision_keeps_the_operation_and_declares_what_changed(declare_command) -> None:
    class WiderInput(ThingInput):
        note: str | None = None

    retired = Deprecation("paged now", replaced_by="1.1.0")
    first = declare_command(
        tags=["things"], auth="admin", rules=[("thing", "write")], deprecation=retired
    )
    second = revision(first, version="1.1.0", input=WiderInput, description="Does it better")
    assert (second.kind, second.key, second.version_text) == ("command", "things.doThing", "1.1.0")
    assert (second.title, second.goal, second.owners, second.tags) == (
        first.title,
        first.goal,
        first.owners,
        first.tags,
    )
    assert second.policy == first.policy
    assert (second.input, second.output) == (WiderInput, first.output)
    assert second.description == "Does it better"
    assert second.deprecation is None and not second.deprecated


def test_a_revision_is_checked_like_a_declaration(declare_command) -> None:
    with pytest.raises(ContractError, match="not semver"):
        revision(declare_command(), version="2")
    retired = declare_command(stability="deprecated")
    with pytest.raises(ContractError, match=r"is deprecated: give 2\.0\.0 a stability"):
        revision(retired, version="2.0.0")
    assert not revision(retired, version="2.0.0", stability="beta").deprecated
    with pytest.raises(ContractError, match="needs input field 'gadget_id'"):
        revision(declare_command(), version="2.0.0", rules=[("gadget", "read", "owner")])


def test_domain_and_ref(declare_command) -> None:
    contract = declare_command(key="billing.v2.capturePayment", version="2.0.1-rc.1")
    assert contract.domain == "billing"
    assert contract.ref == "billing.v2.capturePayment@2.0.1-rc.1"


def test_the_input_model_is_kept_as_declared(declare_command) -> None:
    contract = declare_command()
    assert contract.input is ThingInput
    assert contract.output is ThingOutput
