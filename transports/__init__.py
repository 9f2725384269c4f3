"""One module per transport, plus the ASGI app that mounts them."""

from specops.native import refuse_stale

refuse_stale(__path__)  # compiled modules (make install) older than their sources
