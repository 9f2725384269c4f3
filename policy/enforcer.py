"""Authorization decisions through pycasbin over the policy in the database.

The rules live in the ``policy_rules`` table (``policy/policy.csv`` seeds an empty
database once, see ``policy.store``). They are held in memory, in one Casbin enforcer per
tenant with the lines that apply to it, and decisions are cached by (roles, tenant,
resource, action), each with the line that decided it. Every ``refresh_seconds`` at most,
a decision first compares the stored policy version with the loaded one and reloads when
another process changed the policy; a change made through this process reloads at once
(``reload``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import casbin
import structlog
from casbin.util import key_match

from policy.rules import PolicyLine, applies_to, read_policy_file, unique
from policy.store import PolicyStore
from registry.actor import Actor
from registry.ports import Decision

POLICY_DIR = Path(__file__).parent
MODEL_PATH = POLICY_DIR / "model.conf"
POLICY_PATH = POLICY_DIR / "policy.csv"

DecisionKey = tuple[frozenset[str], str, str, str]

#: A tenant id no line names, standing for "any other tenant" when linting wildcards.
SOME_TENANT = "\x00any-tenant"
MAX_CACHED_DECISIONS = 100_000
MAX_TENANT_ENFORCERS = 1_000
NO_ROLES = Decision(False)

log = structlog.get_logger("specops.policy")


class CasbinAuthorizer:
    """Grants ``action`` on ``resource`` when one of the actor's roles is allowed in its
    tenant and none is explicitly denied.

    With a ``store``, the policy is the database's: loaded (and seeded from ``seed_path``
    if the database never was) on first use, and reloaded when its version changes.
    Without one, it is the ``lines`` given, fixed (tests, offline checks).
    """

    def __init__(
        self,
        store: PolicyStore | None = None,
        *,
        seed_path: Path | None = POLICY_PATH,
        model_path: Path = MODEL_PATH,
        refresh_seconds: float = 1.0,
        lines: Iterable[PolicyLine] = (),
    ) -> None:
        self.store = store
        self.seed_path = seed_path
        self.refresh_seconds = max(refresh_seconds, 0.0)
        self.model_text = model_path.read_text()
        #: Per tenant, an enforcer holding the lines that apply to it (see _enforcer_for).
        self._enforcers: dict[str, casbin.Enforcer] = {}
        #: The loaded lines, in order; and their version (None: not loaded yet).
        self.lines: tuple[PolicyLine, ...] = ()
        self.version: int | None = None
        self._cache: dict[DecisionKey, Decision] = {}
        self._lock = asyncio.Lock()
        self._next_check = 0.0
        self._checked_at = -math.inf
        if store is None:
            self._apply(unique(lines), 0)

    @classmethod
    def from_file(cls, path: Path = POLICY_PATH, model_path: Path = MODEL_PATH) -> CasbinAuthorizer:
        """A fixed policy read from a policy file."""
        return cls(model_path=model_path, lines=read_policy_file(path))

    # -- decisions ----------------------------------------------------------------------

    async def allowed(self, actor: Actor, resource: str, action: str) -> bool:
        return (await self.decide(actor, resource, action)).allowed

    async def decide(self, actor: Actor, resource: str, action: str) -> Decision:
        """The decision for ``actor`` with the line that made it."""
        if actor.tenant_id is None or not actor.roles:
            return NO_ROLES
        if self.store is not None and (
            time.monotonic() >= self._next_check or self.version is None
        ):
            await self._refresh()
        key = (actor.roles, actor.tenant_id, resource, action)
        decision = self._cache.get(key)
        if decision is None:
            decision = self.evaluate(actor.roles, actor.tenant_id, resource, action)
            if len(self._cache) >= MAX_CACHED_DECISIONS:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def evaluate(self, roles: Iterable[str], tenant: str, resource: str, action: str) -> Decision:
        """The uncached decision: a deny line for any role refuses; otherwise an allow line
        for any role grants; otherwise nothing does."""
        enforcer = self._enforcer_for(tenant)
        granted: Decision | None = None
        for role in sorted(roles):
            allowed, explain = enforcer.enforce_ex(role, tenant, resource, action)
            if allowed:
                if granted is None:
                    granted = Decision(True, _line(explain), role)
            elif explain and explain[-1].strip() == "deny":
                return Decision(False, _line(explain), role)
        return granted or Decision(False)

    # -- loading ------------------------------------------------------------------------

    async def reload(self) -> None:
        """Load the stored policy now (seeding a never-seeded database first)."""
        async with self._lock:
            self._start_check()
            await self._load()

    async def _refresh(self) -> None:
        """Reload if the stored version moved.

        The next check is scheduled when one starts, so that decisions arriving meanwhile
        go on with the loaded policy instead of waiting; with ``refresh_seconds`` 0 they
        wait, and take the running check's result only if it started after they arrived.
        """
        arrived = time.monotonic()
        async with self._lock:
            if self._checked_at >= arrived or (
                self.version is not None and arrived < self._next_check
            ):
                return
            self._start_check()
            try:
                if self.version is None:
                    await self._load()
                    return
                assert self.store is not None
                if await self.store.version() != self.version:
                    await self._load()
            except Exception:
                if self.version is None:
                    raise  # nothing to decide with
                log.warning("policy_refresh_failed", exc_info=True)

    def _start_check(self) -> None:
        self._checked_at = time.monotonic()
        self._next_check = self._checked_at + self.refresh_seconds

    async def _load(self) -> None:
        if self.store is None:
            return
        if self.version is None and self.seed_path is not None:
            seeded = await self.store.seed(read_policy_file(self.seed_path))
            if seeded:
                log.info("policy_seeded", source=str(self.seed_path))
        snapshot = await self.store.snapshot()
        if snapshot.version != self.version:
            self._apply([s.line for s in snapshot.lines], snapshot.version)

    def _apply(self, lines: Sequence[PolicyLine], version: int) -> None:
        """Make ``lines`` the policy and forget every enforcer and cached decision (no
        await in here: no decision sees a half-loaded policy)."""
        self.lines = tuple(lines)
        self.version = version
        self._enforcers.clear()
        self._cache.clear()

    def _enforcer_for(self, tenant: str) -> casbin.Enforcer:
        """An enforcer holding only the lines that apply to ``tenant``: the global ones and
        its own. Lines of other tenants can match none of its requests, so decisions are
        those over every line, at a cost that does not grow with the number of tenants
        that hold lines of their own. The lines are held in their text's order: where
        several grant a request, the one named as deciding is then the same whatever
        order they were added in."""
        enforcer = self._enforcers.get(tenant)
        if enforcer is not None:
            return enforcer
        enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=self.model_text))
        enforcer.add_named_domain_matching_func("g", key_match)
        lines = sorted((line for line in self.lines if applies_to(line, tenant)), key=str)
        permissions = [list(line.values) for line in lines if line.ptype == "p"]
        groupings = [list(line.values) for line in lines if line.ptype == "g"]
        enforcer.clear_policy()
        if permissions:
            enforcer.add_policies(permissions)
        if groupings:
            enforcer.add_grouping_policies(groupings)
        enforcer.build_role_links()
        if len(self._enforcers) >= MAX_TENANT_ENFORCERS:
            self._enforcers.clear()
        self._enforcers[tenant] = enforcer
        return enforcer

    # -- lint ---------------------------------------------------------------------------

    def satisfiable(self, resource: str, action: str, *, with_roles: Iterable[str] = ()) -> bool:
        """Whether some role, in some tenant, is granted ``action`` on ``resource`` by the
        loaded lines (``with_roles``: roles the caller holds anyway, such as ``admin`` for
        an admin-only contract, whose denies count too).

        It is enough to try the subject of each matching allow line (a role inheriting it
        would inherit its denies too) in each tenant its tenant pattern stands for: the
        tenants named by lines that it matches, and one no line names.
        """
        extra = frozenset(with_roles)
        named = {line.tenant for line in self.lines if "*" not in line.tenant}
        for line in self.lines:
            if line.ptype != "p" or line.effect != "allow":
                continue
            assert line.resource is not None and line.action is not None
            if not (key_match(resource, line.resource) and key_match(action, line.action)):
                continue
            pattern = line.tenant
            tenants = {pattern} if "*" not in pattern else {pattern.replace("*", SOME_TENANT)}
            if "*" in pattern:
                tenants.update(t for t in named if key_match(t, pattern))
            for tenant in sorted(tenants):
                if self.evaluate(extra | {line.role}, tenant, resource, action).allowed:
                    return True
        return False


def _line(explain: Sequence[str]) -> str:
    return ", ".join(("p", *(part.strip() for part in explain)))
