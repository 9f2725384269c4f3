"""The table of contents: every operation this server offers, and what implements it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from audit.query import AuditQuery
from handlers.audit.events import AuditEventHandlers
from handlers.billing.capture_payment import CapturePaymentHandler
from handlers.billing.invoices import InvoiceHandlers
from handlers.billing.invoices_store import InvoiceStore
from handlers.billing.stripe_gateway import StripeGateway
from handlers.keys.keys import KeyHandlers
from handlers.policy.rules import PolicyHandlers
from handlers.system.ping import ping
from policy.api_keys import ApiKeyIdentity, ApiKeyStore
from policy.enforcer import CasbinAuthorizer
from policy.store import PolicyStore
from registry.contract import RateLimit
from registry.registry import Registry, install_op, install_resource
from specops.settings import Settings
from specs import audit, billing, keys, policy, system
from specs.billing.errors import INVOICE_NOT_FOUND
from storage.database import Database


def build_registry(
    db: Database,
    settings: Settings,
    *,
    key_identity: ApiKeyIdentity | None = None,
    authorizer: CasbinAuthorizer | None = None,
) -> Registry:
    """Every operation, installed. ``key_identity`` is the API key resolver the pipeline
    uses, so that keys.revokeKey takes effect in this process at once; ``authorizer`` its
    authorizer, so that policy.grant and policy.revoke do too."""
    registry = Registry()

    install_op(registry, system.Ping, ping)

    invoices = InvoiceHandlers(InvoiceStore(db))
    stripe = StripeGateway(
        settings.stripe.secret_key,
        api_base=settings.stripe.api_base,
        timeout_seconds=settings.stripe.timeout_seconds,
        max_network_retries=settings.stripe.max_network_retries,
    )
    install_resource(registry, "invoice", invoices.load_invoice, not_found=INVOICE_NOT_FOUND)
    install_op(registry, billing.CreateInvoice, invoices.create_invoice)
    install_op(registry, billing.GetInvoice, invoices.get_invoice)
    install_op(registry, billing.ListInvoices, invoices.list_invoices)
    install_op(registry, billing.CapturePayment, CapturePaymentHandler(invoices.store, stripe))

    key_identity = key_identity or ApiKeyIdentity(
        ApiKeyStore(db), cache_seconds=settings.identity_cache_seconds
    )
    api_keys = KeyHandlers(key_identity, registry)
    install_op(registry, keys.CreateKey, api_keys.create_key)
    install_op(registry, keys.ListKeysV1, api_keys.list_keys_v1)
    install_op(registry, keys.ListKeys, api_keys.list_keys)
    install_op(registry, keys.RevokeKey, api_keys.revoke_key)

    policy_store = authorizer.store if authorizer and authorizer.store else PolicyStore(db)
    authorizer = authorizer or CasbinAuthorizer(
        policy_store, refresh_seconds=settings.policy_refresh_seconds
    )
    policy_rules = PolicyHandlers(policy_store, authorizer)
    install_op(registry, policy.Grant, policy_rules.grant)
    install_op(registry, policy.Revoke, policy_rules.revoke)
    install_op(registry, policy.ListRules, policy_rules.list_rules)

    audit_events = AuditEventHandlers(
        AuditQuery(db), platform_tenant=settings.audit.platform_tenant
    )
    install_op(registry, audit.ListEvents, audit_events.list_events)
    install_op(registry, audit.GetEvent, audit_events.get_event)

    for installer in settings.extra_operations.split(","):
        if installer.strip():
            load_installer(installer.strip())(registry, db, settings)
    override_rate_limits(registry, settings.rate_limits)

    registry.check()
    return registry


def override_rate_limits(registry: Registry, overrides: Mapping[str, int | None]) -> None:
    """SPECOPS_RATE_LIMITS: each key's calls a minute, counted per what its contract
    declares (per actor when it declares no limit); None lifts the limit."""
    for key, rpm in overrides.items():
        op = registry.resolve(key)
        if op is None:
            raise ValueError(f"SPECOPS_RATE_LIMITS names {key!r}, which is not installed")
        declared = op.contract.policy.rate_limit
        per = declared.per if declared is not None else "actor"
        registry.override_rate_limit(key, None if rpm is None else RateLimit(rpm, per))


def load_installer(path: str) -> Callable[[Registry, Database, Settings], None]:
    """Import ``module:function`` named by SPECOPS_EXTRA_OPERATIONS."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"extra operations installer {path!r} must look like 'module:function'")
    installer = getattr(importlib.import_module(module_name), attribute)
    if not callable(installer):
        raise ValueError(f"{path} is not callable")
    return installer  # type: ignore[no-any-return]
