"""The access matrix: every installed contract x every kind of caller x every transport,
against a running server that accepts API keys and HS256 tokens (``identity_stack``).

``EXPECTED`` is the table of what each caller must get from each contract: ``OK`` (the
pipeline allows it: audited with decision ``allow``; the handler may still answer a domain
error, such as INVOICE_ALREADY_PAID, which is fine) or the refusal's code (audited with
decision ``deny``, that code as outcome, and a reason). Adding a contract makes
``test_the_matrix_covers_every_installed_contract`` fail until it has a row.

Each transport runs the whole matrix in one test, in a tenant of its own (one backend is
enough: the decisions do not depend on it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from policy.api_keys import key_id_of
from specops.operations import build_registry
from specops.settings import Settings
from storage.database import Database
from storage.tables import audit_events
from tests.support import api
from tests.support.mcp_client import http_client, meta
from tests.support.stack import Stack
from tests.support.tokens import mint

pytestmark = pytest.mark.e2e

OK = "OK"
UNAUTH = "UNAUTHENTICATED"
FORBID = "FORBIDDEN"
NOT_FOUND = "INVOICE_NOT_FOUND"

#: The callers. ``owner`` owns the invoice of the run (tenant T); ``user`` is a user of T
#: with a signed token (JWT), ``peer`` one with an API key, neither the owner; ``stranger``
#: a user of another tenant; ``admin`` an admin of T; ``service`` a key of kind service
#: with role service in T; ``revoked`` a revoked key of T; ``expired`` a token of T past
#: its ``exp``; ``forged`` an admin token of T signed with a secret the server does not
#: know.
ACTORS = (
    "anonymous",
    "user",
    "owner",
    "peer",
    "stranger",
    "admin",
    "service",
    "revoked",
    "expired",
    "forged",
)
#: The callers refused by the identity stage, whatever they call.
NO_IDENTITY = {"anonymous": UNAUTH, "revoked": UNAUTH, "expired": UNAUTH, "forged": UNAUTH}


def row(
    user: str,
    owner: str,
    peer: str,
    stranger: str,
    admin: str,
    service: str,
) -> dict[str, str]:
    return {
        **NO_IDENTITY,
        "user": user,
        "owner": owner,
        "peer": peer,
        "stranger": stranger,
        "admin": admin,
        "service": service,
    }


#: contract -> caller -> expected outcome (OK: allowed by the pipeline).
EXPECTED: dict[str, dict[str, str]] = {
    #                                user    owner   peer    stranger   admin   service
    "system.ping": row(OK, OK, OK, OK, OK, OK),
    "billing.createInvoice": row(OK, OK, OK, OK, OK, FORBID),
    "billing.getInvoice": row(OK, OK, OK, NOT_FOUND, OK, FORBID),
    "billing.listInvoices": row(OK, OK, OK, OK, OK, FORBID),
    "billing.capturePayment": row(FORBID, OK, FORBID, NOT_FOUND, FORBID, FORBID),
    "keys.createKey": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
    "keys.listKeys": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
    "keys.revokeKey": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
    "policy.grant": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
    "policy.revoke": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
    "policy.listRules": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
    "audit.listEvents": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
    "audit.getEvent": row(FORBID, FORBID, FORBID, FORBID, OK, FORBID),
}


def test_the_matrix_covers_every_installed_contract(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    registry = build_registry(Database(url), Settings(DATABASE_URL=url, extra_operations=""))
    installed = {op.contract.key for op in registry.operations()}
    assert installed == set(EXPECTED)
    for contract, by_actor in EXPECTED.items():
        assert set(by_actor) == set(ACTORS), contract


@dataclass
class World:
    """One run's tenant, callers (token or None) and data."""

    tenant: str
    tokens: dict[str, str | None]
    invoice: dict[str, Any]
    revoked_key_id: str

    def input(self, contract: str) -> dict[str, Any]:
        """An input of ``contract`` that passes validation and, for a caller the table
        allows, policy."""
        rule = {"role": "matrix-auditor", "resource": "report", "action": "read"}
        return {
            "system.ping": {"message": "matrix"},
            "billing.createInvoice": {"amount": "3.00", "currency": "usd"},
            "billing.getInvoice": {"invoiceId": self.invoice["id"]},
            "billing.listInvoices": {},
            "billing.capturePayment": api.capture_body(self.invoice),
            "keys.createKey": {"actorId": "matrix-bot", "roles": ["user"]},
            "keys.listKeys": {},
            "keys.revokeKey": {"keyId": self.revoked_key_id},
            "policy.grant": rule,
            "policy.revoke": rule,
            "policy.listRules": {},
            "audit.listEvents": {},
            "audit.getEvent": {"seq": 1},  # perhaps another tenant's: AUDIT_EVENT_NOT_FOUND
        }[contract]


async def make_world(stack: Stack) -> World:
    tenant, other = api.new_tenant(), api.new_tenant()
    owner = await stack.key(tenant, "alice")
    admin = await stack.key(tenant, "root", ("admin",))
    revoked = await stack.key(tenant, "rita")
    async with stack.client(admin) as http:
        r = await http.post("/api/ops/keys.revokeKey", json={"keyId": key_id_of(revoked)})
    assert r.status_code == 200, r.text
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "user": mint(tenant, "dana"),
        "owner": owner,
        "peer": await stack.key(tenant, "bob"),
        "stranger": await stack.key(other, "eve"),
        "admin": admin,
        "service": await stack.key(tenant, "robot", ("service",), kind="service"),
        "revoked": revoked,
        "expired": mint(tenant, "erin", lifetime=-3600),
        "forged": mint(tenant, "mallory", ("admin",), secret="not-the-server-secret-0123456789"),
    }
    invoice = await api.create_invoice(stack, owner, amount="7.25")
    revoked_id = key_id_of(revoked)
    assert revoked_id is not None
    return World(tenant, tokens, invoice, revoked_id)


@dataclass
class Call:
    contract: str
    actor: str
    request_id: str
    code: str
    #: Whether the pipeline ran (False: refused before any operation, at the HTTP layer).
    audited: bool = True


def field_of(contract: str) -> str:
    return contract.replace(".", "_")


async def via_rest(stack: Stack, world: World) -> list[Call]:
    calls = []
    for actor, token in world.tokens.items():
        async with stack.client(token) as http:
            for contract in EXPECTED:
                request_id = api.rid(f"rest-{actor}")
                r = await http.post(
                    f"/api/ops/{contract}",
                    json=world.input(contract),
                    headers=api.headers(request_id),
                )
                code = OK if r.status_code == 200 else r.json()["code"]
                calls.append(Call(contract, actor, request_id, code))
    return calls


def graphql_document(contract: str) -> str:
    registry_op = OPERATIONS[contract]
    verb = "query" if registry_op[0] == "query" else "mutation"
    return (
        f"{verb} M($input: {registry_op[1]}!) "
        f"{{ {field_of(contract)}(input: $input) {{ __typename }} }}"
    )


#: contract -> (kind, GraphQL input type), read from the registry.
OPERATIONS: dict[str, tuple[str, str]] = {}


def load_operations(stack: Stack) -> None:
    registry = build_registry(
        Database(stack.database_url),
        Settings(DATABASE_URL=stack.database_url, extra_operations=""),
    )
    for op in registry.latest():
        OPERATIONS[op.contract.key] = (op.contract.kind, op.contract.input.__name__)


async def via_graphql(stack: Stack, world: World) -> list[Call]:
    calls = []
    for actor, token in world.tokens.items():
        for contract in EXPECTED:
            request_id = api.rid(f"gql-{actor}")
            r = await api.post_graphql(
                stack,
                graphql_document(contract),
                {"input": world.input(contract)},
                token=token,
                headers=api.headers(request_id),
            )
            assert r.status_code == 200, r.text
            body = r.json()
            errors = body.get("errors")
            if errors:
                assert len(errors) == 1, body
                code = errors[0]["extensions"]["code"]
            else:
                assert body["data"][field_of(contract)] is not None, body
                code = OK
            calls.append(Call(contract, actor, request_id, code))
    return calls


async def via_mcp(stack: Stack, world: World) -> list[Call]:
    calls = []
    for actor, token in world.tokens.items():
        if actor in NO_IDENTITY:
            # refused at the HTTP layer, before any session or tool call
            async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
                for contract in EXPECTED:
                    request_id = api.rid(f"mcp-{actor}")
                    sent = {
                        "Accept": "application/json, text/event-stream",
                        "X-Request-Id": request_id,
                    }
                    if token is not None:
                        sent["Authorization"] = f"Bearer {token}"
                    r = await http.post(
                        "/mcp",
                        json={
                            "jsonrpc": "2.0",
                            "id": 1,
                            "method": "tools/call",
                            "params": {
                                "name": field_of(contract),
                                "arguments": world.input(contract),
                            },
                        },
                        headers=sent,
                    )
                    assert r.status_code == 401, r.text
                    calls.append(Call(contract, actor, request_id, r.json()["code"], audited=False))
            continue
        async with http_client(stack.url + "/mcp", token) as client:
            for contract in EXPECTED:
                request_id = api.rid(f"mcp-{actor}")
                result = await client.call_tool(
                    field_of(contract), world.input(contract), meta=meta(requestId=request_id)
                )
                body = result.structured_content
                assert isinstance(body, dict), result
                code = body["code"] if result.is_error else OK
                calls.append(Call(contract, actor, request_id, code))
    return calls


CALLERS = {"rest": via_rest, "graphql": via_graphql, "mcp": via_mcp}


async def audit_by_request(stack: Stack, request_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {rid: [] for rid in request_ids}
    async with stack.db.connect() as conn:
        rows = await conn.execute(
            select(audit_events)
            .where(audit_events.c.request_id.in_(request_ids))
            .order_by(audit_events.c.id)
        )
        for r in rows.mappings().all():
            found[r["request_id"]].append(dict(r))
    return found


def problems(transport: str, calls: list[Call], rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every way the calls differ from the table, one line each."""
    wrong: list[str] = []
    for call in calls:
        expected = EXPECTED[call.contract][call.actor]
        where = f"{transport} {call.contract} as {call.actor}"
        audit = rows[call.request_id]
        if not call.audited:
            if call.code != expected:
                wrong.append(f"{where}: {call.code}, expected {expected}")
            # The MCP endpoint refuses a missing or bad credential at the HTTP layer, before
            # any tool call; it audits the refusal against the endpoint (operation "mcp").
            if len(audit) != 1 or any(
                (r["decision"], r["outcome"], r["transport"], r["operation_key"])
                != ("deny", expected, "mcp", "mcp")
                for r in audit
            ):
                wrong.append(f"{where}: refused at the HTTP layer, audited {audit}")
            continue
        if len(audit) != 1:
            wrong.append(f"{where}: {len(audit)} audit rows")
            continue
        [record] = audit
        if record["transport"] != transport or record["operation_key"] != call.contract:
            wrong.append(f"{where}: audited as {record['transport']} {record['operation_key']}")
        if expected == OK:
            if record["decision"] != "allow":
                wrong.append(f"{where}: refused ({call.code}: {record['policy_rule']})")
            elif record["outcome"] != call.code:
                wrong.append(f"{where}: answered {call.code}, audited {record['outcome']}")
            continue
        if record["decision"] == "allow":
            wrong.append(f"{where}: UNEXPECTED ALLOW ({call.code}, {record['policy_rule']})")
            continue
        if call.code != expected or record["outcome"] != expected:
            wrong.append(f"{where}: {call.code} (audited {record['outcome']}), expected {expected}")
        if record["decision"] != "deny":
            wrong.append(f"{where}: decision {record['decision']!r}")
        if not (record["policy_rule"] or record["detail"]):
            wrong.append(f"{where}: a denial without a reason")
    return wrong


@pytest.mark.parametrize("identity_stack", ["sqlite"], indirect=True)
@pytest.mark.parametrize("transport", list(CALLERS))
async def test_every_contract_for_every_caller(identity_stack: Stack, transport: str) -> None:
    stack = identity_stack
    if not OPERATIONS:
        load_operations(stack)
    world = await make_world(stack)
    calls = await CALLERS[transport](stack, world)
    assert len(calls) == len(EXPECTED) * len(ACTORS)
    # query records and refusals are written asynchronously: wait for each one (the
    # refusals at MCP's HTTP layer too, or the last of them may not be stored yet)
    for call in calls:
        await stack.audit(call.request_id)
    audited = [c.request_id for c in calls]
    rows = await audit_by_request(stack, audited)
    wrong = problems(transport, calls, rows)
    assert not wrong, "\n" + "\n".join(wrong)
    # the owner's payment went through (or was already made): allowed, and the only one
    [owner_capture] = [
        c for c in calls if (c.contract, c.actor) == ("billing.capturePayment", "owner")
    ]
    assert owner_capture.code == OK, json.dumps(world.invoice)
    paid = await api.get_invoice(stack, world.tokens["owner"] or "", world.invoice["id"])
    assert paid["status"] == "paid"
