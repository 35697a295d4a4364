"""Helpers for testing tornado_sse and code that consumes its feed.

Like ``tornado.testing``, these ship with the package so that the test
suite and the benchmarks (which must not import each other) share one
SSE client, one way to run a server process, and one disposable
PostgreSQL, instead of copies that drift apart.
"""
