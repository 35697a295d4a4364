"""Where the SQL files are: inside the installed package, or in the checkout.

``sql/`` sits at the top of the checkout and ships in the wheel as the data
package ``tornado_sse.sql`` (setup.py maps one to the other), so the
migrations, the demo seed and the pgbench script are found the same way
installed, editable or in a source tree. A bare copy of the source (no
install, as bench/run.py makes) has no ``tornado_sse.sql`` to import and
reads the ``sql/`` folder beside the package instead.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # Python 3.10 keeps it in importlib.abc
    from importlib.abc import Traversable

__all__ = ["Traversable", "sql_dir", "sql_file", "sql_path"]

_SOURCE_TREE_SQL = Path(__file__).resolve().parent.parent / "sql"


def sql_dir() -> Traversable:
    """The folder of SQL files, as importlib.resources sees it."""
    try:
        return resources.files("tornado_sse.sql")
    except ModuleNotFoundError:
        return _SOURCE_TREE_SQL


def sql_file(name: str) -> Traversable:
    """One SQL file by name (``seed.sql``), readable with ``read_text``."""
    return sql_dir().joinpath(name)


def sql_path(name: str) -> AbstractContextManager[Path]:
    """A real file path for a program that opens the file itself (pgbench).

    Use as a context manager: a package served from a zip gets a temporary
    copy that lives as long as the ``with`` block.
    """
    return resources.as_file(sql_file(name))
