"""Queries over GET: query parameters, ?input=<json>, pinned versions, pagination."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.api import (
    GET_INVOICE,
    LIST_INVOICES,
    LIST_OP,
    assert_problem,
    capture_body,
    create_invoice,
    headers,
    new_tenant,
    new_user,
    one_audit,
    rid,
)
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


async def test_get_invoice_by_query_parameter_input_and_pinned_path(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    invoice = await create_invoice(stack, alice, amount="5", description="five dollars")
    assert invoice["amountMinor"] == 500
    ids = [rid() for _ in range(5)]
    async with stack.client(alice) as http:
        answers = [
            await http.get(
                GET_INVOICE, params={"invoiceId": invoice["id"]}, headers=headers(ids[0])
            ),
            await http.get(
                GET_INVOICE,
                params={"input": json.dumps({"invoiceId": invoice["id"]})},
                headers=headers(ids[1]),
            ),
            await http.get(
                f"{GET_INVOICE}/v1.0.0",
                params={"invoiceId": invoice["id"]},
                headers=headers(ids[2]),
            ),
            await http.post(
                GET_INVOICE, json={"invoiceId": invoice["id"]}, headers=headers(ids[3])
            ),
            await http.post(
                f"{GET_INVOICE}/v1.0.0", json={"invoiceId": invoice["id"]}, headers=headers(ids[4])
            ),
        ]
    for r in answers:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == invoice
    assert invoice["description"] == "five dollars"
    for request_id in ids:
        await one_audit(
            stack,
            request_id,
            outcome="OK",
            status=200,
            decision="allow",
            tenant_id=tenant,
            actor_id="alice",
            operation_key="billing.getInvoice",
            operation_version="1.0.0",
            replayed=False,
        )


async def test_list_invoices_pages_newest_first(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    bob = await stack.key(tenant, "bob")
    created = [await create_invoice(stack, alice, amount=f"{n}.00") for n in range(1, 6)]
    await create_invoice(stack, bob)  # someone else's: not listed
    expected = [
        i["id"] for i in sorted(created, key=lambda i: (i["createdAt"], i["id"]), reverse=True)
    ]
    assert set(expected) == {i["id"] for i in created}

    async def walk(use_input_param: bool) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor = None
        async with stack.client(alice) as http:
            while True:
                request_id = rid()
                fields: dict[str, Any] = (
                    {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
                )
                if use_input_param:
                    params = {"input": json.dumps(fields)}
                else:
                    params = {k: str(v) for k, v in fields.items()}
                r = await http.get(LIST_INVOICES, params=params, headers=headers(request_id))
                assert r.status_code == 200, r.text
                await one_audit(
                    stack,
                    request_id,
                    outcome="OK",
                    decision="allow",
                    tenant_id=tenant,
                    operation_key="billing.listInvoices",
                )
                page = r.json()
                assert len(page["items"]) <= 2
                pages.append([item["id"] for item in page["items"]])
                cursor = page["nextCursor"]
                if cursor is None:
                    return pages
                assert len(pages) < 10, "pagination does not end"

    for use_input_param in (False, True):
        pages = await walk(use_input_param)
        assert [len(p) for p in pages] == [2, 2, 1]
        flat = [i for p in pages for i in p]
        assert flat == expected
        assert len(set(flat)) == len(flat)


async def test_list_invoices_filters_by_status(stack: Stack) -> None:
    _, alice = await new_user(stack)
    paid = await create_invoice(stack, alice)
    unpaid = await create_invoice(stack, alice)
    async with stack.client(alice) as http:
        r = await http.post("/api/ops/billing.capturePayment", json=capture_body(paid))
        assert r.status_code == 200, r.text
        only_paid = await http.get(LIST_INVOICES, params={"status": "paid"})
        only_open = await http.get(LIST_INVOICES, params={"input": '{"status": "open"}'})
    assert [i["id"] for i in only_paid.json()["items"]] == [paid["id"]]
    assert [i["id"] for i in only_open.json()["items"]] == [unpaid["id"]]


async def test_list_of_an_empty_tenant_is_empty(stack: Stack) -> None:
    alice = await stack.key(new_tenant(), "alice")
    async with stack.client(alice) as http:
        r = await http.get(LIST_INVOICES)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "nextCursor": None}


async def test_cursor_the_server_did_not_issue_is_422(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.get(
            LIST_INVOICES, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=headers(request_id)
        )
    assert_problem(r, 422, "INVALID_INPUT", request_id=request_id, operation=LIST_OP)
    await one_audit(stack, request_id, outcome="INVALID_INPUT", tenant_id=tenant)


async def test_listing_another_users_invoices_without_list_any_is_403(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    request_id = rid()
    async with stack.client(alice) as http:
        r = await http.get(LIST_INVOICES, params={"ownerId": "bob"}, headers=headers(request_id))
    assert_problem(r, 403, "FORBIDDEN", request_id=request_id, operation=LIST_OP)
    await one_audit(stack, request_id, outcome="FORBIDDEN", tenant_id=tenant)


async def test_admin_lists_another_users_invoices(stack: Stack) -> None:
    tenant, alice = await new_user(stack)
    root = await stack.key(tenant, "root", roles=("admin",))
    invoice = await create_invoice(stack, alice)
    async with stack.client(root) as http:
        r = await http.get(LIST_INVOICES, params={"ownerId": "alice"})
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == [invoice["id"]]
