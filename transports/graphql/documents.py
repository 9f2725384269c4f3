"""Documents ready to execute: parsed, their operation picked and validated once per text.

``DocumentCache`` keeps, per (document text, operation name), what the fast path needs
to execute a document at once: the ``DocumentNode`` (parsed with the endpoint's token
limit), the name of the operation to run (picked as strawberry picks it) and its type,
validated with the endpoint's rules (limits included), prepared on a worker thread. A
document that does not parse,
does not validate, names no operation, subscribes, or introspects is cached as ``None``:
the request is then the strawberry view's, which answers and audits it as before, and so
is a document longer than ``MAX_CACHED_TEXT`` (never cached). Nothing about a request
other than its document is kept.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import anyio.to_thread
from graphql import DocumentNode, OperationDefinitionNode, OperationType, parse

from transports.graphql.validation import DocumentValidator
from transports.graphql.visibility import introspection_keys

#: Operations the fast path executes (a subscription is refused by the view).
FAST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
#: Longest document text (with its operation name) kept: the cache holds at most
#: ``maxsize`` times this; longer documents are left to the view.
MAX_CACHED_TEXT = 32 * 1024


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A valid document, and the operation of it that a request runs."""

    document: DocumentNode
    #: The name passed to execution: the request's, else the first operation's (or None).
    operation_name: str | None
    operation_type: OperationType


def pick_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation strawberry runs: the one named ``operation_name``, else the first."""
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is None:
            return definition
        if definition.name is not None and definition.name.value == operation_name:
            return definition
    return None


class DocumentCache:
    """Prepared documents per (text, operation name), least recently used evicted first."""

    def __init__(self, validator: DocumentValidator, *, max_tokens: int, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("DocumentCache needs room for at least one document")
        self.validator = validator
        self.schema = validator.schema
        self.max_tokens = max_tokens
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[str, str | None], PreparedDocument | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``(text, operation name)`` is cached (prepared or left to the view)."""
        return key in self._entries

    async def get(self, query: str, operation_name: str | None) -> PreparedDocument | None:
        """The prepared document, or None when the view must answer the request."""
        if len(query) + len(operation_name or "") > MAX_CACHED_TEXT:
            return None
        key = (query, operation_name)
        try:
            prepared = self._entries[key]
        except KeyError:
            prepared = await anyio.to_thread.run_sync(self.prepare, query, operation_name)
            self._entries[key] = prepared
            if len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
            return prepared
        self._entries.move_to_end(key)
        return prepared

    def prepare(self, query: str, operation_name: str | None) -> PreparedDocument | None:
        """Parse, pick the operation and validate, as the view would; None unless all
        pass and the operation is a query or mutation without introspection."""
        try:
            document = parse(query, max_tokens=self.max_tokens)
            operation = pick_operation(document, operation_name)
            if operation is None or operation.operation not in FAST_OPERATIONS:
                return None
            if introspection_keys(document):
                return None
            if self.validator.validate(document):
                return None
        except Exception:  # whatever fails here, the view reports
            return None
        name = operation_name
        if name is None and operation.name is not None:
            name = operation.name.value
        return PreparedDocument(document, name, operation.operation)
