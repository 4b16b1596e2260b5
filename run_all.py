#!/usr/bin/env python
"""Entry point: ``python run_all.py --grid table4`` (see ``--help`` and the README)."""
import sys

if __name__ == "__main__":
    # Imported here, not above: a spawned worker re-imports this file before it can watch its
    # driver, so this file must cost it nothing (see bench/watchdog.py).
    from bench.cli import main
    sys.exit(main())
