"""The Stripe client the billing handlers use: charges through PaymentIntents.

Configuration comes only from the environment (``STRIPE_SECRET_KEY``, ``STRIPE_API_BASE``)
through the settings object; the key is held as a ``SecretStr`` and never logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import stripe
import structlog
from pydantic import SecretStr
from stripe._base_address import BaseAddresses

from registry.errors import CATALOGUE

log = structlog.get_logger("specops.stripe")


class NotCharged(Exception):
    """Stripe charged nothing: it refused the request, or was never asked."""


class PaymentDeclined(NotCharged):
    """The card or bank refused the charge."""


class PaymentMethodUnusable(NotCharged):
    """The payment method does not exist or cannot be charged."""


class StripeUnreachable(NotCharged):
    """Stripe could not be asked for the payment method, so no charge was requested."""


class ChargeOutcomeUnknown(Exception):
    """The PaymentIntent was requested and no answer came (a timeout, a dropped connection,
    a 5xx, a conflict with a request still running): Stripe may have charged."""


@dataclass(frozen=True, slots=True)
class ChargeResult:
    transaction_id: str
    status: str
    receipt_url: str | None


class StripeGateway:
    """Creates and confirms PaymentIntents with the official SDK (async, over httpx)."""

    def __init__(
        self,
        secret_key: SecretStr | None,
        *,
        api_base: str | None = None,
        timeout_seconds: float = 20.0,
        max_network_retries: int = 2,
    ) -> None:
        self._client: stripe.StripeClient | None = None
        if secret_key is not None and secret_key.get_secret_value():
            addresses: BaseAddresses = {"api": api_base} if api_base else {}
            self._client = stripe.StripeClient(
                secret_key.get_secret_value(),
                base_addresses=addresses,
                http_client=stripe.HTTPXClient(timeout=timeout_seconds),
                max_network_retries=max_network_retries,
            )

    @property
    def configured(self) -> bool:
        return self._client is not None

    def client(self) -> stripe.StripeClient:
        if self._client is None:
            raise CATALOGUE.UPSTREAM_UNAVAILABLE(
                "Stripe is not configured: set the STRIPE_SECRET_KEY environment variable"
            )
        return self._client

    async def charge(
        self,
        *,
        amount_minor: int,
        currency: str,
        payment_method_id: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> ChargeResult:
        """Create and confirm a PaymentIntent; the same key returns the same intent.

        Raises a ``NotCharged`` when Stripe definitely charged nothing, and
        ``ChargeOutcomeUnknown`` when the PaymentIntent request got no answer."""
        client = self.client()
        try:
            method = await client.v1.payment_methods.retrieve_async(payment_method_id)
        except stripe.InvalidRequestError as exc:
            log.info("stripe_invalid_request", code=exc.code, status=exc.http_status)
            raise PaymentMethodUnusable(exc.user_message or "Payment method unusable") from None
        except stripe.StripeError as exc:
            log.warning("stripe_unreachable", error=type(exc).__name__, status=exc.http_status)
            raise StripeUnreachable("Stripe could not be reached") from None
        # The method as the caller named it, not as retrieved: Stripe resolves a test
        # token (pm_card_visa) to a new PaymentMethod each time, and a request sent again
        # must carry the very same parameters for its idempotency key.
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": amount_minor,
            "currency": currency,
            "payment_method": payment_method_id,
            "confirm": True,
            "metadata": metadata,
            "expand": ["latest_charge"],
        }
        if method.customer:
            customer = method.customer
            params["customer"] = customer if isinstance(customer, str) else customer.id
        try:
            intent = await client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as exc:
            raise PaymentDeclined(exc.user_message or "The card was declined") from None
        except stripe.IdempotencyError as exc:
            # The key is held by a request still running, or was used with other
            # parameters: either way an earlier request with it may have charged.
            log.error("stripe_idempotency_error", status=exc.http_status)
            raise ChargeOutcomeUnknown("Stripe refused the request's idempotency key") from None
        except stripe.InvalidRequestError as exc:
            log.info("stripe_invalid_request", code=exc.code, status=exc.http_status)
            raise PaymentMethodUnusable(exc.user_message or "Payment method unusable") from None
        except Exception as exc:
            status = exc.http_status if isinstance(exc, stripe.StripeError) else None
            log.warning("stripe_outcome_unknown", error=type(exc).__name__, status=status)
            raise ChargeOutcomeUnknown("Stripe did not answer the payment request") from None
        charge = intent.latest_charge
        receipt_url = None
        if charge is not None and not isinstance(charge, str):
            receipt_url = getattr(charge, "receipt_url", None)
        return ChargeResult(intent.id, intent.status, receipt_url)
