#!/usr/bin/env python
"""Time to regenerate a grid (default: paper-preset Table 4, 3 seeds).

Estimates from a throughput CSV (``results/benchmarks/<device>.csv``, measured now if
absent) and, with ``--measure``, runs the grid and reports its wall time.

    python benchmarks/time_to_table.py [--grid table4] [--preset paper] [--seeds 3] [--measure]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import time_to_table_command  # noqa: E402

if __name__ == "__main__":
    sys.exit(time_to_table_command(sys.argv[1:]))
