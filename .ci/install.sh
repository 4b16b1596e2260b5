#!/usr/bin/env bash
# Create .venv and install learner-bench with everything its tests need.
# torch/torchvision are pinned by .ci/constraints.txt (2.13.0 is the local CPU wheel on our
# CPU machines; on a GPU machine the same pins resolve to the CUDA builds).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-test}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c .ci/constraints.txt -e ".[${EXTRAS}]"
# CPU torch + CUDA-built torchvision cannot import torchvision (ENVIRONMENT.md). The
# start-up hook that fixes it lives here, outside the package, and is installed only when
# that combination is present.
.venv/bin/python - <<'PY'
import pathlib, shutil, sysconfig
from importlib import metadata
torch_v, tv_v = metadata.version("torch"), metadata.version("torchvision")
site = pathlib.Path(sysconfig.get_paths()["purelib"])
if "+cpu" in torch_v and "+cu" in tv_v:
    shutil.copy(".ci/tv_cpu_compat.py", site / "tv_cpu_compat.py")
    (site / "tv_cpu_compat.pth").write_text("import tv_cpu_compat\n")
    print(f"installed torchvision CPU start-up fix (torch {torch_v}, torchvision {tv_v})")
PY
.venv/bin/python -c "import torch, torchvision, timm; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| timm', timm.__version__)"
