"""REST throughput benchmarks: our full pipeline against a plain Starlette endpoint.

``python -m bench`` starts both servers as subprocesses on 127.0.0.1, drives them with
``wrk`` in interleaved rounds and prints requests/second and their ratio per scenario.
"""
