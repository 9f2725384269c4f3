"""Authorization decisions through a pycasbin enforcer, with a decision cache."""

from __future__ import annotations

from pathlib import Path

import casbin
from casbin.util import key_match

from policy.actor import Actor

POLICY_DIR = Path(__file__).parent
MODEL_PATH = POLICY_DIR / "model.conf"
POLICY_PATH = POLICY_DIR / "policy.csv"

DecisionKey = tuple[frozenset[str], str, str, str]


class CasbinAuthorizer:
    """Grants ``action`` on ``resource`` when one of the actor's roles is allowed in its
    tenant and none is explicitly denied.

    Decisions depend only on (roles, tenant, resource, action), so they are cached; any
    change to the policy goes through ``reload`` or the enforcer methods here, which clear
    the cache.
    """

    def __init__(self, model_path: Path = MODEL_PATH, policy_path: Path = POLICY_PATH) -> None:
        self.enforcer = casbin.Enforcer(str(model_path), str(policy_path))
        self.enforcer.add_named_domain_matching_func("g", key_match)
        self.enforcer.build_role_links()
        self._cache: dict[DecisionKey, bool] = {}

    def reload(self) -> None:
        self.enforcer.load_policy()
        self.enforcer.build_role_links()
        self._cache.clear()

    def decide(self, roles: frozenset[str], tenant: str, resource: str, action: str) -> bool:
        """The uncached decision."""
        allowed = False
        for role in sorted(roles):
            granted, explain = self.enforcer.enforce_ex(role, tenant, resource, action)
            if granted:
                allowed = True
            elif explain and explain[-1].strip() == "deny":
                return False
        return allowed

    async def allowed(self, actor: Actor, resource: str, action: str) -> bool:
        if actor.tenant_id is None or not actor.roles:
            return False
        key = (actor.roles, actor.tenant_id, resource, action)
        decision = self._cache.get(key)
        if decision is None:
            decision = self.decide(actor.roles, actor.tenant_id, resource, action)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = decision
        return decision
