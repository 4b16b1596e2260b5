"""The README's Architecture section is the code's: every module of bench/ sits in one of its
layers, and no module imports from a layer above its own."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("ground", "science", "the cell", "the sweep", "outputs", "front ends")


def readme_layers() -> dict[str, int]:
    """``{"losses.py": 1, "data/": 1, ...}`` from the layer picture in the README."""
    picture = (ROOT / "README.md").read_text().split("## Architecture", 1)[1].split("```")[1]
    where, layer = {}, None
    for line in picture.splitlines():
        for i, name in enumerate(LAYERS):
            if line.startswith(name):
                layer, line = i, line[len(name):]
        for module in re.findall(r"[\w/]+\.py|\b\w+/", line):
            where[module.removeprefix("bench/")] = layer
    return where


def bench_imports(path: Path) -> set[str]:
    """The bench modules (``losses.py``, ``data/``) a file imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else
                 [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "bench" and len(parts) > 1:
                out.add("data/" if parts[1] == "data" else f"{parts[1]}.py")
            elif parts[0] == "backbones":
                out.add("backbones/")
    return out


def test_every_module_has_a_layer_and_imports_nothing_above_it():
    where = readme_layers()
    modules = {p.name: p for p in (ROOT / "bench").glob("*.py") if p.name != "__init__.py"}
    assert not sorted(set(modules) - set(where)), "modules missing from the README's layer picture"
    files = [(name, p) for name, p in modules.items()] + [("data/", p) for p in (ROOT / "bench" / "data").glob("*.py")]
    files += [("backbones/", p) for p in (ROOT / "backbones").glob("*.py")]
    upward = [f"{p.relative_to(ROOT)} -> {target}" for name, p in files for target in bench_imports(p)
              if target in where and where[target] > where[name]]
    assert not upward, upward
