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


class PaymentDeclined(Exception):
    """The card or bank refused the charge."""


class PaymentMethodUnusable(Exception):
    """The payment method does not exist or cannot be charged."""


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
        """Create and confirm a PaymentIntent; the same key returns the same intent."""
        client = self.client()
        try:
            method = await client.v1.payment_methods.retrieve_async(payment_method_id)
            params: stripe.params.PaymentIntentCreateParams = {
                "amount": amount_minor,
                "currency": currency,
                "payment_method": method.id,
                "confirm": True,
                "metadata": metadata,
                "expand": ["latest_charge"],
            }
            if method.customer:
                customer = method.customer
                params["customer"] = customer if isinstance(customer, str) else customer.id
            intent = await client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as exc:
            raise PaymentDeclined(exc.user_message or "The card was declined") from None
        except stripe.InvalidRequestError as exc:
            log.info("stripe_invalid_request", code=exc.code, status=exc.http_status)
            raise PaymentMethodUnusable(exc.user_message or "Payment method unusable") from None
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            log.warning("stripe_unreachable", error=type(exc).__name__)
            raise CATALOGUE.UPSTREAM_UNAVAILABLE("Stripe could not be reached") from None
        except stripe.StripeError as exc:
            log.error("stripe_error", error=type(exc).__name__, status=exc.http_status)
            raise CATALOGUE.UPSTREAM_UNAVAILABLE("Stripe refused the request") from None
        charge = intent.latest_charge
        receipt_url = None
        if charge is not None and not isinstance(charge, str):
            receipt_url = getattr(charge, "receipt_url", None)
        return ChargeResult(intent.id, intent.status, receipt_url)
