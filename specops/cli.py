"""The ``specops`` command: serve, inspect operations, call them, manage keys and the schema."""

from __future__ import annotations

import json
import os
import sys

import click

from registry.docs import ContractDoc
from registry.invocation import Invocation
from specops.app import Server
from specops.audit_cli import audit
from specops.cli_support import run_on_server
from specops.logging import configure_logging
from specops.policy_cli import policy
from specops.settings import Settings
from storage import migrate
from transports.openapi import openapi_document


@click.group()
def main() -> None:
    """specops: contract-first operations server."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option(
    "--migrate/--no-migrate",
    "run_migrations",
    default=True,
    show_default=True,
    help="Apply pending migrations before serving.",
)
def serve(host: str, port: int, workers: int, run_migrations: bool) -> None:
    """Serve every transport over HTTP."""
    import uvicorn

    if run_migrations:
        run_on_server(lambda s: migrate.upgrade(s.db))
    uvicorn.run(
        "specops.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@main.group()
def ops() -> None:
    """Inspect installed operations."""


@ops.command("list")
def ops_list() -> None:
    """A table of every installed contract."""
    server = Server.build()
    rows = [("KEY", "VERSION", "KIND", "STABILITY", "AUTH", "TITLE")]
    for op in server.registry.operations():
        c = op.contract
        note = " (deprecated)" if c.deprecated else ""
        if not note and not server.registry.is_latest(op):
            note = " (older)"
        rows.append((c.key, f"{c.version}{note}", c.kind, c.stability, c.policy.auth, c.title))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@ops.command("show")
@click.argument("key")
@click.option("--version", default=None)
def ops_show(key: str, version: str | None) -> None:
    """Everything a contract declares."""
    server = Server.build()
    op = server.registry.resolve(key, version)
    if op is None:
        raise click.ClickException(f"no operation {key}")
    doc = ContractDoc(op.contract).as_dict()
    click.echo(json.dumps(doc, indent=2))


@main.command()
@click.argument("key")
@click.option("--input", "raw_input", default="{}", help="The input as JSON.")
@click.option("--version", default=None)
@click.option(
    "--api-key", envvar="SPECOPS_API_KEY", default=None, help="Credentials (or SPECOPS_API_KEY)."
)
@click.option("--idempotency-key", default=None)
def call(
    key: str, raw_input: str, version: str | None, api_key: str | None, idempotency_key: str | None
) -> None:
    """Invoke an operation through the pipeline (transport "cli"). A W3C trace context
    in the TRACEPARENT environment variable names the call's trace."""
    from registry.tracing import trace_id_from

    try:
        payload = json.loads(raw_input)
        wire_error = None
    except ValueError:
        from registry.errors import CATALOGUE

        payload, wire_error = None, CATALOGUE.MALFORMED_REQUEST("--input is not valid JSON")
    invocation = Invocation(
        key=key,
        version=version,
        input=payload,
        transport="cli",
        credentials=api_key,
        idempotency_key=idempotency_key,
        client="cli",
        wire_error=wire_error,
        trace_id=trace_id_from(os.environ.get("TRACEPARENT")),
    )
    outcome = run_on_server(lambda s: s.invoke(invocation))
    if outcome.ok:
        click.echo(json.dumps(outcome.output, indent=2))
        return
    click.echo(json.dumps(outcome.problem_body(), indent=2), err=True)
    sys.exit(1)


@main.command("graphql-schema")
def graphql_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from transports.graphql import graphql_sdl

    click.echo(graphql_sdl(Server.build().registry), nl=False)


@main.command("mcp")
@click.option(
    "--api-key",
    envvar="SPECOPS_API_KEY",
    default=None,
    help="The caller's key (or SPECOPS_API_KEY).",
)
@click.option(
    "--migrate/--no-migrate",
    "run_migrations",
    default=True,
    show_default=True,
    help="Apply pending migrations first.",
)
def mcp_stdio(api_key: str | None, run_migrations: bool) -> None:
    """Serve MCP over stdio for an agent host (stdout is the protocol; logs go to stderr)."""
    from transports.mcp import serve_stdio

    async def work(server: Server) -> None:
        if run_migrations:
            await migrate.upgrade(server.db)
        await server.start()
        await serve_stdio(server.pipeline, api_key=api_key)

    run_on_server(work)


@main.command()
def openapi() -> None:
    """Print the OpenAPI 3.1 document."""
    click.echo(json.dumps(openapi_document(Server.build().registry), indent=2))


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--tenant", required=True)
@click.option("--user", "actor_id", required=True, help="The actor id the key acts as.")
@click.option("--role", "roles", multiple=True, required=True, help="Repeat for several roles.")
@click.option("--kind", type=click.Choice(["user", "service", "agent"]), default="user")
@click.option("--description", default=None)
@click.option(
    "--operation",
    "operations",
    multiple=True,
    help="Limit the key to this operation key (repeat for several); default: no limit.",
)
def keys_create(
    tenant: str,
    actor_id: str,
    roles: tuple[str, ...],
    kind: str,
    description: str | None,
    operations: tuple[str, ...],
) -> None:
    """Create a key; its secret is printed once, here, and never again."""

    async def work(server: Server) -> str:
        unknown = [key for key in operations if server.registry.resolve(key) is None]
        if unknown:
            raise click.BadParameter(f"no operation {', '.join(unknown)}", param_hint="--operation")
        _, token = await server.api_keys.create(
            tenant_id=tenant,
            actor_id=actor_id,
            roles=roles,
            kind=kind,  # type: ignore[arg-type]
            description=description,
            operations=operations or None,
        )
        return token

    token = run_on_server(work)
    click.echo(token)


@keys.command("list")
@click.option("--tenant", default=None)
def keys_list(tenant: str | None) -> None:
    """List keys (ids, never secrets)."""
    for key in run_on_server(lambda s: s.api_keys.list(tenant)):
        state = "revoked" if key.revoked_at else "active"
        scope = ",".join(key.operations) if key.operations is not None else "*"
        click.echo(
            f"{key.id}  {key.tenant_id}  {key.actor_id}  {key.kind}  {','.join(key.roles)}  "
            f"{scope}  {state}"
        )


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    if not run_on_server(lambda s: s.key_identity.revoke(key_id)):
        raise click.ClickException(f"no active key {key_id}")
    click.echo(f"revoked {key_id}")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to a revision."""
    run_on_server(lambda s: migrate.upgrade(s.db, revision))
    click.echo(f"database at {run_on_server(migrate_current)}")


async def migrate_current(server: Server) -> str | None:
    return await migrate.current_revision(server.db)


@db.command("current")
def db_current() -> None:
    """Print the database's revision."""
    click.echo(str(run_on_server(migrate_current)))


main.add_command(policy)  # specops policy ... (specops/policy_cli.py)
main.add_command(audit)  # specops audit verify|tail|export (specops/audit_cli.py)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
