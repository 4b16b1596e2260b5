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
# CPU torch next to a CUDA build of torchvision cannot import torchvision (its kernel
# registration asks for the CUDA ops: "operator torchvision::nms does not exist"), and the
# only torchvision 0.28.0 wheel is a CUDA build. The start-up hook that fixes it
# (.ci/tv_cpu_compat.py, see its header) lives here, outside the package, and is
# installed only when that combination is present.
.venv/bin/python - <<'PY'
import importlib.util, pathlib, shutil, sysconfig
from importlib import metadata
torch_v = metadata.version("torch")
# the wheel's metadata says 0.28.0; its version.py says which build it is (0.28.0+cu130)
tv_spec = importlib.util.find_spec("torchvision")
tv_v = (pathlib.Path(tv_spec.submodule_search_locations[0]) / "version.py").read_text().splitlines()[0]
site = pathlib.Path(sysconfig.get_paths()["purelib"])
if "+cpu" in torch_v and "+cu" in tv_v:
    shutil.copy(".ci/tv_cpu_compat.py", site / "tv_cpu_compat.py")
    (site / "tv_cpu_compat.pth").write_text("import tv_cpu_compat\n")
    print(f"installed torchvision CPU start-up fix (torch {torch_v}, torchvision {tv_v})")
PY
.venv/bin/python -c "import torch, torchvision, timm; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| timm', timm.__version__)"
