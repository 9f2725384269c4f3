"""GraphQL errors in the catalogue's shape: ``errors[].extensions`` carries the problem
fields of DESIGN.md section 5 (type, title, status, code, detail, issues, operation,
requestId), whichever stage refused.

Three kinds of error reach a response:

- a pipeline outcome (a field's invocation failed): the resolver raises it with the
  problem document as its extensions, operation and request id included;
- a refusal before execution (syntax, validation, limits, variables that do not fit
  their types): no operation ran, so nothing is audited; the code says which;
- anything else (a bug): masked as ``INTERNAL`` and logged with its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import strawberry
import structlog
from graphql import GraphQLError, GraphQLSyntaxError, VariableDefinitionNode
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from registry.errors import CATALOGUE, ErrorSpec, Issue, Problem
from registry.invocation import Outcome

log = structlog.get_logger("specops.graphql")

INVALID_DOCUMENT = ErrorSpec("MALFORMED_REQUEST", 400, "Invalid GraphQL request")
QUERY_TOO_COMPLEX = ErrorSpec("MALFORMED_REQUEST", 400, "Query exceeds the server's limits")
INTROSPECTION_DISABLED = ErrorSpec("FORBIDDEN", 403, "Introspection is disabled")
MASKED_MESSAGE = CATALOGUE.INTERNAL.title

_NAMED_FIELD = re.compile(
    r"^Field '(?:[^'.]+\.)?([^'.]+)' (?:is not defined|of required type)"  # graphql-core 3.2
    r"|(?:unknown|required) field '([^']+)'"  # 3.3
)
_AT_PATH = re.compile(r"has invalid value at (\S+):")


def problem_extensions(
    spec: ErrorSpec,
    detail: str,
    *,
    issues: Sequence[Issue] = (),
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The problem fields of an error no invocation produced."""
    problem = Problem.of(spec(detail, issues=tuple(issues)))
    return problem.as_dict(requestId=request_id, **extra)


def outcome_error(outcome: Outcome) -> GraphQLError:
    """The error a resolver raises for a failed invocation: the problem document as
    extensions, its detail as the message."""
    body = outcome.problem_body()
    return GraphQLError(str(body["detail"]), extensions=body)


def tag(error: GraphQLError, spec: ErrorSpec, **extra: Any) -> GraphQLError:
    """``error`` with the problem fields of ``spec`` (the request id is added later)."""
    error.extensions = problem_extensions(spec, error.message, **extra)
    return error


def input_issue(message: str, path: Sequence[str | int] = ()) -> Issue:
    """An issue for an input GraphQL itself refused (before the contract saw it), named
    and coded as the pipeline would (``amount``, ``missing``, ``extra_forbidden``)."""
    parts = [str(p) for p in path]
    named = _NAMED_FIELD.search(message)
    if named:
        parts.append(named.group(1) or named.group(2))
    if "was not provided" in message or "required" in message:
        code = "missing"
    elif "is not defined by type" in message or "unknown field" in message:
        code = "extra_forbidden"
    else:
        code = "invalid_type"
    return Issue(".".join(parts), code, message)


def _variable_issue(error: GraphQLError) -> Issue:
    """``Variable '$i' has invalid value at .items[0].amount: ...``: the path inside the
    variable, as the pipeline names fields (``items.0.amount``)."""
    found = _AT_PATH.search(error.message)
    path = re.sub(r"\[(\d+)\]", r".\1", found.group(1)).strip(".") if found else ""
    return input_issue(error.message, path.split(".") if path else ())


def is_unexpected(error: GraphQLError) -> bool:
    """An error no stage meant: a resolver or serialization failure, not a refusal."""
    if error.extensions and "code" in error.extensions:
        return False
    if isinstance(error, GraphQLSyntaxError) or isinstance(
        error.original_error, GraphQLSyntaxError
    ):
        return False
    if any(isinstance(n, VariableDefinitionNode) for n in error.nodes or ()):
        return False
    if isinstance(error.original_error, RecursionError):
        return False
    return error.path is not None or error.original_error is not None


def shape(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """A copy of ``error`` whose extensions are the problem fields (cached validation
    errors are shared between requests, so they are never changed in place)."""
    extensions = error.extensions or {}
    if "code" in extensions:
        if "requestId" in extensions or request_id is None:
            return error
        extensions = {**extensions, "requestId": request_id}
        message = error.message
    elif is_unexpected(error):
        extensions = problem_extensions(CATALOGUE.INTERNAL, MASKED_MESSAGE, request_id=request_id)
        message = MASKED_MESSAGE
    elif any(isinstance(n, VariableDefinitionNode) for n in error.nodes or ()):
        extensions = problem_extensions(
            CATALOGUE.INVALID_INPUT,
            error.message,
            issues=(_variable_issue(error),),
            request_id=request_id,
        )
        message = error.message
    elif isinstance(error.original_error, RecursionError):
        message = "The query nests too deeply"
        extensions = problem_extensions(QUERY_TOO_COMPLEX, message, request_id=request_id)
    elif "Parsing aborted" in error.message:  # the parser's token or nesting limit
        message = error.message
        extensions = problem_extensions(QUERY_TOO_COMPLEX, message, request_id=request_id)
    else:
        extensions = problem_extensions(INVALID_DOCUMENT, error.message, request_id=request_id)
        message = error.message
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def log_unexpected(errors: Iterable[GraphQLError], request_id: str | None) -> None:
    for error in errors:
        if is_unexpected(error):
            log.error(
                "graphql_field_failure",
                request_id=request_id,
                path=error.path,
                error=error.message,
                exc_info=error.original_error,
            )


class QuietExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, whose errors suggest no names: a variable's
    coercion error would otherwise ask "Did you mean" about fields the caller may not
    see."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)


class ProblemSchema(strawberry.Schema):
    """A strawberry schema whose results carry problem-shaped errors, whichever stage
    produced them (parsing, validation, a resolver), and which logs only unexpected
    errors (refusals are the audit log's business, not the error log's); its execution
    suggests no names (``QuietExecutionContext``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("execution_context_class", QuietExecutionContext)
        super().__init__(*args, **kwargs)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        result = await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        if result.errors:
            request_id = getattr(context_value, "request_id", None)
            result.errors = [shape(error, request_id) for error in result.errors]
        return result

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context = getattr(execution_context, "context", None)
        log_unexpected(errors, getattr(context, "request_id", None))
