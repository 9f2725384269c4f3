"""The error catalogue: one set of stable codes, rendered by every transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One field-level problem with an input: where, what kind, and a readable message."""

    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """A code with its HTTP status, a title, and whether a retry may succeed.

    The catalogue entries below are ErrorSpecs, and so are the domain errors a contract
    declares (``INVOICE_NOT_FOUND``...). Calling one builds the exception to raise.
    """

    code: str
    status: int
    title: str
    retryable: bool = False

    def __call__(
        self,
        detail: str | None = None,
        *,
        issues: tuple[Issue, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> OperationError:
        return OperationError(self, detail or self.title, issues, dict(headers or {}))


class OperationError(Exception):
    """An invocation ended with a catalogued or declared error."""

    def __init__(
        self,
        spec: ErrorSpec,
        detail: str,
        issues: tuple[Issue, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{spec.code}: {detail}")
        self.spec = spec
        self.detail = detail
        self.issues = issues
        self.headers = headers or {}

    @property
    def code(self) -> str:
        return self.spec.code

    @property
    def status(self) -> int:
        return self.spec.status


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The stable codes of DESIGN.md section 5."""

    MALFORMED_REQUEST: ErrorSpec = ErrorSpec("MALFORMED_REQUEST", 400, "Malformed request")
    UNSUPPORTED_MEDIA_TYPE: ErrorSpec = ErrorSpec(
        "MALFORMED_REQUEST", 415, "Unsupported media type"
    )
    PAYLOAD_TOO_LARGE: ErrorSpec = ErrorSpec("MALFORMED_REQUEST", 413, "Request body too large")
    INVALID_INPUT: ErrorSpec = ErrorSpec("INVALID_INPUT", 422, "Input does not match the contract")
    UNAUTHENTICATED: ErrorSpec = ErrorSpec("UNAUTHENTICATED", 401, "Authentication required")
    FORBIDDEN: ErrorSpec = ErrorSpec("FORBIDDEN", 403, "Not allowed by policy")
    OP_NOT_FOUND: ErrorSpec = ErrorSpec("OP_NOT_FOUND", 404, "Unknown operation or version")
    METHOD_NOT_ALLOWED: ErrorSpec = ErrorSpec("MALFORMED_REQUEST", 405, "Method not allowed")
    IDEMPOTENCY_MISMATCH: ErrorSpec = ErrorSpec(
        "IDEMPOTENCY_CONFLICT", 422, "Idempotency key reused with a different request"
    )
    IDEMPOTENCY_BUSY: ErrorSpec = ErrorSpec(
        "IDEMPOTENCY_CONFLICT", 409, "A request with this idempotency key is still running", True
    )
    RATE_LIMITED: ErrorSpec = ErrorSpec("RATE_LIMITED", 429, "Too many requests", True)
    UPSTREAM_UNAVAILABLE: ErrorSpec = ErrorSpec(
        "UPSTREAM_UNAVAILABLE", 503, "An upstream service is unavailable", True
    )
    TIMEOUT: ErrorSpec = ErrorSpec("TIMEOUT", 504, "The operation did not finish in time", True)
    INTERNAL: ErrorSpec = ErrorSpec("INTERNAL", 500, "Internal error")
    #: Never an answer: the audit outcome of a command whose process stopped mid-flight.
    INTERRUPTED: ErrorSpec = ErrorSpec("INTERRUPTED", 500, "The command was interrupted")


CATALOGUE = Catalogue()


#: Catalogue codes a handler may raise without declaring them: refusals that need stored
#: data (``ctx.allowed``, a cursor to decode) and upstream trouble.
PASS_THROUGH_CODES = frozenset(
    {"FORBIDDEN", "INVALID_INPUT", "UPSTREAM_UNAVAILABLE", "RATE_LIMITED", "TIMEOUT"}
)


@dataclass(frozen=True, slots=True)
class Problem:
    """An error as every transport shows it (RFC 9457 fields plus ours)."""

    code: str
    status: int
    title: str
    detail: str
    retryable: bool
    issues: tuple[Issue, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: OperationError) -> Problem:
        spec = error.spec
        return cls(
            spec.code,
            spec.status,
            spec.title,
            error.detail,
            spec.retryable,
            error.issues,
            error.headers,
        )

    def to_error(self) -> OperationError:
        """The exception that produces this problem again (for replays)."""
        spec = ErrorSpec(self.code, self.status, self.title, self.retryable)
        return OperationError(spec, self.detail, self.issues, dict(self.headers))

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://specops.dev/problems/{self.code.lower().replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            "retryable": self.retryable,
        }
        if self.issues:
            body["issues"] = [issue.as_dict() for issue in self.issues]
        body.update({k: v for k, v in extra.items() if v is not None})
        return body
