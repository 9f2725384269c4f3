"""audit.query: filtered, tenant-scoped pages of audit events and their cursor, on both
backends; and the scope rules of the audit.listEvents/audit.getEvent handlers."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert

from audit.query import (
    EVERY_TENANT,
    AuditQuery,
    CursorError,
    EventFilter,
    Scope,
    decode_cursor,
    encode_cursor,
    parse_input,
)
from handlers.audit.events import AuditEventHandlers
from registry.actor import Actor
from registry.context import Context
from registry.errors import OperationError
from specs.audit.get_event import GetEventInput
from specs.audit.list_events import ListEventsInput
from storage.database import Database
from storage.tables import audit_events

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def event(seq: int, **changes: Any) -> dict[str, Any]:
    """An audit row at chain position ``seq``, ``seq`` minutes after T0, in acme."""
    values: dict[str, Any] = {
        "at": T0 + timedelta(minutes=seq),
        "request_id": f"req-{seq:08d}",
        "transport": "rest",
        "client": "127.0.0.1",
        "tenant_id": "acme",
        "actor_id": "alice",
        "actor_kind": "user",
        "credential_id": "abcdefghijkl",
        "operation_key": "billing.getInvoice",
        "operation_version": "1.0.0",
        "decision": "allow",
        "outcome": "OK",
        "status": 200,
        "latency_ms": 1.5,
        "idempotency_key": None,
        "replayed": False,
        "input_digest": "0" * 64,
        "detail": None,
        "policy_rule": "p, user, *, invoice, read, allow",
        "trace_id": f"{seq:032x}",
        "input": json.dumps({"invoiceId": f"inv_{seq}"}),
        "seq": seq,
        "prev_hash": f"{seq - 1:064x}",
        "hash": f"{seq:064x}",
    }
    values.update(changes)
    return values


async def store(db: Database, *rows: dict[str, Any]) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(audit_events), list(rows))


#: Ten events: acme (alice, bob), globex, and an anonymous refusal (no tenant).
EVENTS = [
    event(1),
    event(2, actor_id="bob", operation_key="billing.createInvoice"),
    event(3, tenant_id="globex", actor_id="gina"),
    event(4, outcome="FORBIDDEN", status=403, decision="deny", transport="graphql"),
    event(
        5,
        tenant_id=None,
        actor_id=None,
        actor_kind=None,
        credential_id=None,
        outcome="UNAUTHENTICATED",
        status=401,
        decision="deny",
        input=None,
    ),
    event(6, actor_id="bob", transport="mcp"),
    event(7, operation_key="billing.createInvoice"),
    event(8, tenant_id="globex", actor_id="gina", outcome="FORBIDDEN", status=403),
    event(9, input=json.dumps(["not", "an", "object"])),
    event(10, replayed=True, idempotency_key="idem-1"),
]


@pytest.fixture
async def query(database: Database) -> AuditQuery:
    await store(database, *EVENTS)
    return AuditQuery(database)


async def seqs(
    query: AuditQuery, scope: Scope, limit: int = 100, before: int | None = None, **filters: Any
) -> list[int]:
    events, more = await query.page(scope, EventFilter(**filters), limit=limit, before_seq=before)
    assert not more
    return [e.seq for e in events]


# -- the cursor ----------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [1, 9, 10, 12345678901, 2**63 - 1])
def test_a_cursor_decodes_to_its_seq(seq: int) -> None:
    cursor = encode_cursor(seq)
    assert decode_cursor(cursor) == seq
    assert all(c.isalnum() or c in "-_" for c in cursor)


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "x",
        "!!!!",
        "abc",
        b64("seq:"),
        b64("seq:0"),
        b64("seq:-1"),
        b64("seq:01"),
        b64("seq:1.5"),
        b64("seq: 1"),
        b64(f"seq:{2**63}"),
        b64("seq:" + "9" * 40),
        b64("12"),
        b64("id:12"),
        b64("seq:١٢"),  # Arabic-Indic digits are digits to str.isdigit
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_malformed_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(cursor)


# -- filters and scopes --------------------------------------------------------------------


async def test_a_tenant_sees_its_own_events_newest_first(query: AuditQuery) -> None:
    assert await seqs(query, "acme") == [10, 9, 7, 6, 4, 2, 1]
    assert await seqs(query, "globex") == [8, 3]
    assert await seqs(query, "initech") == []


async def test_every_tenant_includes_events_without_a_tenant(query: AuditQuery) -> None:
    assert await seqs(query, EVERY_TENANT) == list(range(10, 0, -1))
    assert await seqs(query, EVERY_TENANT, tenant_id="globex") == [8, 3]


async def test_a_tenant_filter_never_widens_a_tenant_scope(query: AuditQuery) -> None:
    assert await seqs(query, "acme", tenant_id="globex") == []
    assert await seqs(query, "acme", tenant_id="acme") == [10, 9, 7, 6, 4, 2, 1]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"actor_id": "bob"}, [6, 2]),
        ({"operation_key": "billing.createInvoice"}, [7, 2]),
        ({"outcome": "FORBIDDEN"}, [4]),
        ({"transport": "mcp"}, [6]),
        ({"request_id": "req-00000007"}, [7]),
        ({"trace_id": f"{9:032x}"}, [9]),
        ({"since": T0 + timedelta(minutes=7)}, [10, 9, 7]),
        ({"until": T0 + timedelta(minutes=4)}, [2, 1]),
        ({"since": T0 + timedelta(minutes=2), "until": T0 + timedelta(minutes=7)}, [6, 4, 2]),
        ({"actor_id": "bob", "transport": "rest"}, [2]),
        ({"outcome": "NOPE"}, []),
    ],
)
async def test_filters(query: AuditQuery, filters: dict[str, Any], expected: list[int]) -> None:
    assert await seqs(query, "acme", **filters) == expected


async def test_time_filters_compare_instants_not_wall_clocks(query: AuditQuery) -> None:
    # 14:07:00.123456+02:00 is 12:07:00.123456 UTC: event 7's time exactly (since is inclusive)
    since = (T0 + timedelta(minutes=7)).astimezone(timezone(timedelta(hours=2)))
    assert await seqs(query, "acme", since=since) == [10, 9, 7]
    assert await seqs(query, "acme", until=since) == [6, 4, 2, 1]


async def test_rows_come_back_as_written(query: AuditQuery) -> None:
    [seventh] = (await query.page("acme", EventFilter(request_id="req-00000007"), limit=1))[0]
    assert seventh.at == T0 + timedelta(minutes=7) and seventh.at.tzinfo is not None
    assert seventh.at.utcoffset() == timedelta(0)
    assert seventh.input == {"invoiceId": "inv_7"}
    assert (seventh.seq, seventh.prev_hash, seventh.hash) == (7, f"{6:064x}", f"{7:064x}")
    assert (seventh.tenant_id, seventh.actor_id, seventh.status) == ("acme", "alice", 200)
    assert seventh.replayed is False
    tenth = await query.get("acme", 10)
    assert tenth is not None and tenth.replayed is True and tenth.idempotency_key == "idem-1"
    ninth = await query.get("acme", 9)
    assert ninth is not None and ninth.input == {"_value": ["not", "an", "object"]}


def test_inputs_are_objects_or_nothing() -> None:
    assert parse_input(None) is None
    assert parse_input('{"a": 1}') == {"a": 1}
    assert parse_input("[1]") == {"_value": [1]}
    assert parse_input('"text"') == {"_value": "text"}
    assert parse_input("{not json") == {"_unparsed": True}


# -- pages ---------------------------------------------------------------------------------


async def every_page(
    query: AuditQuery, scope: Scope, limit: int, between: Callable[[], Awaitable[None]]
) -> list[list[int]]:
    pages: list[list[int]] = []
    before: int | None = None
    while True:
        events, more = await query.page(scope, EventFilter(), limit=limit, before_seq=before)
        pages.append([e.seq for e in events])
        await between()
        if not more:
            return pages
        before = events[-1].seq


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
async def test_pages_cover_every_event_once(query: AuditQuery, limit: int) -> None:
    async def nothing() -> None:
        return None

    pages = await every_page(query, "acme", limit, nothing)
    assert [s for page in pages for s in page] == [10, 9, 7, 6, 4, 2, 1]
    assert all(len(page) == limit for page in pages[:-1]) and 0 < len(pages[-1]) <= limit


async def test_events_written_while_paging_shift_nothing(
    database: Database, query: AuditQuery
) -> None:
    written = iter(range(11, 100))

    async def write_more() -> None:  # a new acme event and a globex one after every page
        await store(database, event(next(written)), event(next(written), tenant_id="globex"))

    pages = await every_page(query, "acme", 2, write_more)
    assert pages == [[10, 9], [7, 6], [4, 2], [1]]


async def test_get_is_scoped(query: AuditQuery) -> None:
    found = await query.get("acme", 1)
    assert found is not None and found.request_id == "req-00000001"
    assert await query.get("acme", 3) is None  # globex's
    assert await query.get("acme", 5) is None  # no tenant's
    assert await query.get("acme", 11) is None  # nobody's
    other = await query.get(EVERY_TENANT, 3)
    assert other is not None and other.tenant_id == "globex"
    anonymous = await query.get(EVERY_TENANT, 5)
    assert anonymous is not None and anonymous.tenant_id is None and anonymous.input is None


# -- who reads what: the handlers' scopes ------------------------------------------------


def context(tenant: str, *grants: str) -> tuple[Context, list[tuple[str, str]]]:
    """A context for a caller of ``tenant`` whom policy grants ``grants`` (actions on
    ``audit``), and the list of the questions it asked policy."""
    asked: list[tuple[str, str]] = []

    async def allowed(resource: str, action: str) -> bool:
        asked.append((resource, action))
        return resource == "audit" and action in grants

    actor = Actor("auditor-1", tenant, frozenset({"auditor"}), "user")
    ctx = Context(actor, "req-unit-0001", "cli", "audit.listEvents", None, allowed)
    return ctx, asked


async def listed(handlers: AuditEventHandlers, ctx: Context, **data: Any) -> list[int]:
    page = await handlers.list_events(ListEventsInput.model_validate(data), ctx)
    return [e.seq for e in page.items]


async def test_without_a_platform_tenant_everyone_reads_only_their_own(
    query: AuditQuery,
) -> None:
    handlers = AuditEventHandlers(query, platform_tenant=None)
    ctx, asked = context("acme", "read", "read_any_tenant")
    assert await listed(handlers, ctx) == [10, 9, 7, 6, 4, 2, 1]
    assert await listed(handlers, ctx, tenantId="acme", actorId="bob") == [6, 2]
    with pytest.raises(OperationError) as refused:
        await listed(handlers, ctx, tenantId="globex")
    assert refused.value.code == "FORBIDDEN" and "read_any_tenant" in refused.value.detail
    with pytest.raises(OperationError) as missing:
        await handlers.get_event(GetEventInput(seq=3), ctx)
    assert missing.value.code == "AUDIT_EVENT_NOT_FOUND"
    assert asked == []  # a grant alone is not enough: policy is not even asked


async def test_a_tenant_admin_outside_the_platform_tenant_reads_only_its_own(
    query: AuditQuery,
) -> None:
    handlers = AuditEventHandlers(query, platform_tenant="ops")
    ctx, _ = context("globex", "read", "read_any_tenant")
    assert await listed(handlers, ctx) == [8, 3]
    with pytest.raises(OperationError):
        await listed(handlers, ctx, tenantId="acme")
    with pytest.raises(OperationError):
        await handlers.get_event(GetEventInput(seq=1), ctx)
    assert (await handlers.get_event(GetEventInput(seq=8), ctx)).tenant_id == "globex"


async def test_a_platform_auditor_reads_every_tenant(query: AuditQuery) -> None:
    handlers = AuditEventHandlers(query, platform_tenant="ops")
    ctx, asked = context("ops", "read", "read_any_tenant")
    assert await listed(handlers, ctx) == list(range(10, 0, -1))
    assert await listed(handlers, ctx, tenantId="globex") == [8, 3]
    assert await listed(handlers, ctx, outcome="UNAUTHENTICATED") == [5]
    anonymous = await handlers.get_event(GetEventInput(seq=5), ctx)
    assert anonymous.tenant_id is None and anonymous.outcome == "UNAUTHENTICATED"
    assert set(asked) == {("audit", "read_any_tenant")}


async def test_the_platform_tenant_without_the_grant_reads_only_its_own(
    query: AuditQuery,
) -> None:
    handlers = AuditEventHandlers(query, platform_tenant="acme")
    ctx, asked = context("acme", "read")
    assert await listed(handlers, ctx) == [10, 9, 7, 6, 4, 2, 1]
    with pytest.raises(OperationError) as refused:
        await listed(handlers, ctx, tenantId="globex")
    assert refused.value.code == "FORBIDDEN"
    with pytest.raises(OperationError):
        await handlers.get_event(GetEventInput(seq=5), ctx)
    assert ("audit", "read_any_tenant") in asked


async def test_pages_through_the_handler(query: AuditQuery) -> None:
    handlers = AuditEventHandlers(query, platform_tenant=None)
    ctx, _ = context("acme", "read")
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = await handlers.list_events(ListEventsInput(limit=3, cursor=cursor), ctx)
        seen.extend(e.seq for e in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [10, 9, 7, 6, 4, 2, 1]
    with pytest.raises(OperationError) as bad:
        await handlers.list_events(ListEventsInput(cursor=b64("seq:x")), ctx)
    assert bad.value.code == "INVALID_INPUT"
    assert [i.path for i in bad.value.issues] == ["cursor"]
