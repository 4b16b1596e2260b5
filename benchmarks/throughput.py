#!/usr/bin/env python
"""Training throughput, FLOPs and MFU per backbone, fast path vs naive (== ``run_all.py bench``).

    python benchmarks/throughput.py                       # paper preset, all paper backbones
    python benchmarks/throughput.py --preset smoke --steps 3   # CPU-sized
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
