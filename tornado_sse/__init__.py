"""tornado_sse: PostgreSQL changes as Server-Sent Events and long-poll.

Layers, each in its own module: ``sse`` (wire format), ``events`` (one row,
encoded once), ``hub`` (fan-out, no I/O), ``listener`` (LISTEN + cursor
reads), ``stream`` (one SSE response), ``handlers`` (thin HTTP shells),
``settings`` (one validated object), ``server`` (start-up and shutdown).
"""

#: The one version: setup.py reads it as text, ``--version`` prints it.
__version__ = "0.1.0"
