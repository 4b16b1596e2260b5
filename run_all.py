#!/usr/bin/env python
"""Entry point: ``python run_all.py --grid table4`` (see ``--help`` and the README)."""
import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
