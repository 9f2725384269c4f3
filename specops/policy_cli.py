"""``specops policy``: the operators' view of the policy in the database.

Operators may write lines of any tenant, global ones (``*``) included; running servers
pick changes up within ``SPECOPS_POLICY_REFRESH_SECONDS``.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from policy.enforcer import POLICY_PATH
from policy.rules import PolicyLine, PolicyLineError, applies_to, read_policy_file
from registry.actor import Actor
from specops.app import Server, unsatisfiable_rules
from specops.cli_support import run_on_server


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


@click.group()
def policy() -> None:
    """Inspect and change the policy (the database's; policy.csv only seeds it)."""


def line_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options that describe one line, shared by grant and revoke."""
    options = [
        click.option("--tenant", required=True, help="The tenant, or '*' for every tenant."),
        click.option("--role", required=True, help="The role the line is about."),
        click.option("--resource", default=None, help="Permission: the resource."),
        click.option("--action", default=None, help="Permission: the action."),
        click.option(
            "--effect", type=click.Choice(["allow", "deny"]), default="allow", show_default=True
        ),
        click.option("--inherits", default=None, help="Inheritance: the role inherited."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _line(
    tenant: str,
    role: str,
    resource: str | None,
    action: str | None,
    effect: str,
    inherits: str | None,
) -> PolicyLine:
    try:
        if inherits is not None:
            if resource is not None or action is not None:
                raise click.UsageError("give --resource and --action, or --inherits, not both")
            return PolicyLine.inheritance(role, inherits, tenant)
        if resource is None or action is None:
            raise click.UsageError("a permission needs --resource and --action")
        return PolicyLine.permission(
            role, tenant, resource, action, "deny" if effect == "deny" else "allow"
        )
    except PolicyLineError as exc:
        raise click.UsageError(str(exc)) from None


@policy.command("list")
@click.option("--tenant", default=None, help="Only the lines that apply to this tenant.")
def policy_list(tenant: str | None) -> None:
    """Print the stored lines, in policy-file form, with who added each."""

    async def work(server: Server) -> tuple[int, list[tuple[str, str]]]:
        await server.authorizer.reload()  # seeds a never-seeded database
        assert server.authorizer.store is not None
        snapshot = await server.authorizer.store.snapshot()
        rows = [
            (str(s.line), s.created_by or "")
            for s in snapshot.lines
            if tenant is None or applies_to(s.line, tenant)
        ]
        return snapshot.version, rows

    version, rows = run_on_server(work)
    width = max((len(line) for line, _ in rows), default=0)
    for line, by in rows:
        click.echo(f"{line.ljust(width)}  # {by}" if by else line)
    click.echo(f"# policy version {version}, {len(rows)} lines", err=True)


@policy.command("grant")
@line_options
def policy_grant(
    tenant: str,
    role: str,
    resource: str | None,
    action: str | None,
    effect: str,
    inherits: str | None,
) -> None:
    """Add a line (any tenant, '*' included)."""
    line = _line(tenant, role, resource, action, effect, inherits)

    async def work(server: Server) -> tuple[bool, int]:
        await server.authorizer.reload()
        assert server.authorizer.store is not None
        _, added, version = await server.authorizer.store.add(line, by=_operator())
        return added, version

    added, version = run_on_server(work)
    click.echo(f"{'added' if added else 'already present'}: {line}  (policy version {version})")


@policy.command("revoke")
@line_options
def policy_revoke(
    tenant: str,
    role: str,
    resource: str | None,
    action: str | None,
    effect: str,
    inherits: str | None,
) -> None:
    """Remove a line."""
    line = _line(tenant, role, resource, action, effect, inherits)

    async def work(server: Server) -> tuple[bool, int]:
        await server.authorizer.reload()
        assert server.authorizer.store is not None
        return await server.authorizer.store.remove(line)

    removed, version = run_on_server(work)
    if not removed:
        raise click.ClickException(f"no line {line}")
    click.echo(f"removed: {line}  (policy version {version})")


@policy.command("import")
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=POLICY_PATH
)
def policy_import(path: Path) -> None:
    """Add the lines of a policy file the database lacks (none is removed): how new grants
    in policy.csv reach a database seeded before them."""
    try:
        lines = read_policy_file(path)
    except PolicyLineError as exc:
        raise click.ClickException(str(exc)) from None

    async def work(server: Server) -> list[PolicyLine]:
        await server.authorizer.reload()
        assert server.authorizer.store is not None
        added = []
        for line in lines:
            _, new, _ = await server.authorizer.store.add(line, by=f"{_operator()} import")
            if new:
                added.append(line)
        return added

    for line in run_on_server(work):
        click.echo(f"added: {line}")


@policy.command("lint")
def policy_lint() -> None:
    """Report contract rules no stored line grants to any role in any tenant (exit 1)."""

    async def work(server: Server) -> list[tuple[str, str]]:
        await server.authorizer.reload()
        return [
            (ref, f"{rule.resource}:{rule.action}")
            for ref, rule in unsatisfiable_rules(server.registry, server.authorizer)
        ]

    findings = run_on_server(work)
    for ref, rule in findings:
        click.echo(f"{ref}: no policy line can grant {rule}")
    if findings:
        click.echo(f"{len(findings)} unsatisfiable contract rule(s)", err=True)
        sys.exit(1)
    click.echo("every contract rule can be granted")


@policy.command("check")
@click.option("--actor", "actor_id", required=True, help="The caller's id.")
@click.option("--tenant", required=True)
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@click.option("--kind", type=click.Choice(["user", "service", "agent"]), default="user")
@click.option("--op", "key", required=True, help="The operation key, e.g. billing.capturePayment.")
@click.option("--version", default=None)
@click.option("--input", "raw_input", default="{}", help="The input as JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def policy_check(
    actor_id: str,
    tenant: str,
    roles: tuple[str, ...],
    kind: str,
    key: str,
    version: str | None,
    raw_input: str,
    as_json: bool,
) -> None:
    """Would this caller be allowed, and which rule decides? Resource conditions (owner,
    tenant) are read from the configured database; no handler runs, nothing is audited.
    Exit status: 0 allowed, 1 denied, 2 undecided (unknown operation, invalid input)."""
    try:
        payload = json.loads(raw_input)
    except ValueError:
        raise click.BadParameter("not valid JSON", param_hint="--input") from None
    actor = Actor(
        id=actor_id,
        tenant_id=tenant,
        roles=frozenset(roles),
        kind=kind,  # type: ignore[arg-type]
    )

    async def work(server: Server) -> dict[str, Any]:
        call = await server.pipeline.check(actor, key, payload, version=version)
        contract = call.operation.contract if call.operation else None
        answer: dict[str, Any] = {
            "decision": call.decision,
            "operation": contract.ref if contract else key,
            "auth": contract.policy.auth if contract else None,
            "actor": {"id": actor.id, "tenant": tenant, "roles": sorted(roles), "kind": kind},
            "rule": call.policy_rule,
        }
        if call.error is not None:
            answer["code"] = call.error.code
            answer["detail"] = call.error.detail
        return answer

    answer = run_on_server(work)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(f"decision: {answer['decision']}")
        click.echo(f"operation: {answer['operation']} (auth {answer['auth']})")
        click.echo(f"actor: {actor_id} ({kind}) in tenant {tenant}, roles {', '.join(roles)}")
        if answer["rule"]:
            click.echo(f"rule: {answer['rule']}")
        if "code" in answer:
            click.echo(f"refused: {answer['code']}: {answer['detail']}")
    sys.exit({"allow": 0, "deny": 1}.get(answer["decision"], 2))
