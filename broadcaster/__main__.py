"""`python -m broadcaster`: the same as the `hls-broadcaster` command (cli.py)."""

from .cli import main

raise SystemExit(main())
