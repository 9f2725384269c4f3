"""Contract types, the registry and the one invocation pipeline."""

from specops.native import refuse_stale

refuse_stale(__path__)  # compiled modules (make install) older than their sources
