"""Throughput benchmarks: our full pipeline against baselines without it.

``python -m bench`` starts our server and the baseline app as subprocesses on 127.0.0.1,
drives them with ``wrk`` in interleaved rounds and prints requests/second, server CPU time
per request and their ratios per scenario: REST against plain Starlette endpoints, GraphQL
against a bare strawberry app, MCP against a tool on the SDK's own server.
"""

#: The identity every baseline answers with (ours answers with the benchmark key's).
BENCH_ACTOR = "bench"
