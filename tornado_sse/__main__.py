"""``python -m tornado_sse``: the same command line as run.py and tornado-sse."""

from tornado_sse.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m tornado_sse"))
