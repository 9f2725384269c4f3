"""storage.idempotency.SqlIdempotencyStore on real databases."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from registry.errors import Issue, Problem
from registry.ports import IdempotencyScope, StoredOutcome
from storage.idempotency import SqlIdempotencyStore
from storage.tables import idempotency_keys

SCOPE = IdempotencyScope("acme", "alice", "key-1")


async def states(store: SqlIdempotencyStore, scope: IdempotencyScope, fp: str) -> str:
    return (await store.claim(scope, fp)).state


async def rows(database) -> int:
    async with database.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(idempotency_keys))).scalar_one()
        )


async def test_claim_busy_mismatch(database) -> None:
    store = SqlIdempotencyStore(database)
    first = await store.claim(SCOPE, "fp-a")
    assert first.state == "claimed"
    assert first.stored is None
    assert await states(store, SCOPE, "fp-a") == "busy"
    assert await states(store, SCOPE, "fp-b") == "mismatch"
    assert await rows(database) == 1


async def test_complete_then_replay_the_output(database) -> None:
    store = SqlIdempotencyStore(database)
    await store.claim(SCOPE, "fp-a")
    output = {"transactionId": "pi_1", "amount": "12.50", "nested": {"list": [1, None]}}
    await store.complete(SCOPE, StoredOutcome(output, None))
    claim = await store.claim(SCOPE, "fp-a")
    assert claim.state == "replay"
    assert claim.stored == StoredOutcome(output, None)
    # still a mismatch for another request, and replayable again
    assert await states(store, SCOPE, "fp-b") == "mismatch"
    assert await states(store, SCOPE, "fp-a") == "replay"


async def test_a_stored_problem_round_trips(database) -> None:
    store = SqlIdempotencyStore(database)
    problem = Problem(
        "CARD_DECLINED",
        402,
        "The card was declined",
        "Your card has insufficient funds — try another",
        True,
        (
            Issue("amount", "currency_precision", "USD amounts have at most 2 decimal places"),
            Issue("", "object_type", "Input should be an object"),
        ),
    )
    await store.claim(SCOPE, "fp-a")
    await store.complete(SCOPE, StoredOutcome(None, problem))
    claim = await store.claim(SCOPE, "fp-a")
    assert claim.state == "replay"
    assert claim.stored is not None
    assert claim.stored.output is None
    assert claim.stored.problem == problem
    error = claim.stored.problem.to_error()
    assert (error.code, error.status, error.detail) == (
        "CARD_DECLINED",
        402,
        "Your card has insufficient funds — try another",
    )


async def test_release_frees_the_key(database) -> None:
    store = SqlIdempotencyStore(database)
    await store.claim(SCOPE, "fp-a")
    await store.release(SCOPE)
    assert await rows(database) == 0
    assert await states(store, SCOPE, "fp-b") == "claimed"


async def test_release_keeps_a_completed_outcome(database) -> None:
    store = SqlIdempotencyStore(database)
    await store.claim(SCOPE, "fp-a")
    await store.complete(SCOPE, StoredOutcome({"ok": True}, None))
    await store.release(SCOPE)
    assert await states(store, SCOPE, "fp-a") == "replay"


async def test_scopes_are_independent(database) -> None:
    store = SqlIdempotencyStore(database)
    await store.claim(SCOPE, "fp-a")
    await store.complete(SCOPE, StoredOutcome({"who": "alice"}, None))
    for other in (
        IdempotencyScope("other-tenant", "alice", "key-1"),
        IdempotencyScope("acme", "bob", "key-1"),
        IdempotencyScope("acme", "alice", "key-2"),
    ):
        assert await states(store, other, "fp-b") == "claimed"
        await store.complete(other, StoredOutcome({"who": other.actor_id}, None))
    replay = await store.claim(SCOPE, "fp-a")
    assert replay.stored == StoredOutcome({"who": "alice"}, None)
    await store.release(IdempotencyScope("acme", "bob", "key-1"))
    assert await rows(database) == 4


async def test_an_expired_completed_row_is_given_up(database) -> None:
    store = SqlIdempotencyStore(database, ttl=timedelta(0))
    await store.claim(SCOPE, "fp-a")
    await store.complete(SCOPE, StoredOutcome({"ok": True}, None))
    await asyncio.sleep(0.002)
    assert await states(store, SCOPE, "fp-a") == "busy"
    assert await rows(database) == 0
    assert await states(store, SCOPE, "fp-b") == "claimed"


async def test_a_fresh_completed_row_is_kept(database) -> None:
    store = SqlIdempotencyStore(database, stale_after=timedelta(0))
    await store.claim(SCOPE, "fp-a")
    await store.complete(SCOPE, StoredOutcome({"ok": True}, None))
    await asyncio.sleep(0.002)
    assert await states(store, SCOPE, "fp-a") == "replay"


async def test_a_stale_running_row_is_given_up(database) -> None:
    store = SqlIdempotencyStore(database, stale_after=timedelta(0))
    await store.claim(SCOPE, "fp-a")
    await asyncio.sleep(0.002)
    assert await states(store, SCOPE, "fp-a") == "busy"
    assert await rows(database) == 0
    assert await states(store, SCOPE, "fp-a") == "claimed"


async def test_a_running_row_is_not_stale_yet(database) -> None:
    store = SqlIdempotencyStore(database, ttl=timedelta(0))
    await store.claim(SCOPE, "fp-a")
    await asyncio.sleep(0.002)
    assert await states(store, SCOPE, "fp-a") == "busy"
    assert await rows(database) == 1


async def test_concurrent_claims_yield_exactly_one_claimed(database) -> None:
    store = SqlIdempotencyStore(database)
    claims = await asyncio.gather(*(store.claim(SCOPE, "fp-a") for _ in range(10)))
    counts = Counter(c.state for c in claims)
    assert counts == {"claimed": 1, "busy": 9}
    assert await rows(database) == 1


async def test_the_ttl_counts_from_completion(database) -> None:
    store = SqlIdempotencyStore(database, ttl=timedelta(seconds=0.5))
    await store.claim(SCOPE, "fp-a")
    await asyncio.sleep(0.6)  # a command that ran longer than the ttl
    await store.complete(SCOPE, StoredOutcome({"ok": True}, None))
    assert await states(store, SCOPE, "fp-a") == "replay"
