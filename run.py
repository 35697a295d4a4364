"""tornado_sse's command line: ``python run.py --help`` lists commands and options."""

from tornado_sse.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
