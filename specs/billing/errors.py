"""Domain errors the billing contracts declare."""

from registry.errors import ErrorSpec

INVOICE_NOT_FOUND = ErrorSpec("INVOICE_NOT_FOUND", 404, "Invoice not found")
INVOICE_ALREADY_PAID = ErrorSpec("INVOICE_ALREADY_PAID", 409, "Invoice is already paid")
PAYMENT_IN_PROGRESS = ErrorSpec(
    "PAYMENT_IN_PROGRESS", 409, "A payment for this invoice is in progress", retryable=True
)
AMOUNT_MISMATCH = ErrorSpec("AMOUNT_MISMATCH", 422, "Amount or currency does not match the invoice")
CARD_DECLINED = ErrorSpec("CARD_DECLINED", 402, "The card was declined")
PAYMENT_METHOD_INVALID = ErrorSpec(
    "PAYMENT_METHOD_INVALID", 422, "The payment method cannot be used"
)
