"""Grid definitions, axis filters/extensions, and one-line argument errors (exit 2)."""
import pytest

from bench.grid import Row, grid_rows, select
from bench.paper import TABLE4


def test_table3_is_three_losses_on_two_datasets():
    rows = grid_rows("table3")
    assert [(r.dataset, r.loss) for r in rows] == [
        ("lus", "mse"), ("lus", "cl"), ("lus", "wcl"), ("adni", "mse"), ("adni", "cl"), ("adni", "wcl")]
    assert {r.backbone for r in rows} == {"tsm_r18"} and {r.sim for r in rows} == {"cos"}


def test_table4_is_the_papers_nine_rows_in_order():
    rows = grid_rows("table4")
    assert [(r.backbone, r.loss, r.sim) for r in rows] == [(b, l, s) for b, l, s, _, _ in TABLE4]
    assert len(rows) == 9 and {r.dataset for r in rows} == {"lus"}


def test_full_grid_has_mse_once_per_backbone():
    rows = grid_rows("full")
    assert len(rows) == 6 * (1 + 2 * 2)
    assert len(set(rows)) == len(rows)


def test_select_filters_and_extends():
    rows = grid_rows("table4")
    only_tsm = select(rows, "backbone", ["tsm_r18"])
    assert only_tsm == [Row("lus", "tsm_r18", "cl", "cos"), Row("lus", "tsm_r18", "wcl", "l2")]
    mine = select(rows, "backbone", ["mine"])  # a backbone the grid lacks gets the grid's loss/sim rows
    assert {(r.loss, r.sim) for r in mine} == {("cl", "cos"), ("mse", "cos"), ("wcl", "cos"), ("wcl", "l2")}
    assert all(r.backbone == "mine" for r in mine)
    assert select(grid_rows("table3"), "dataset", ["adni"]) == [r for r in grid_rows("table3") if r.dataset == "adni"]


@pytest.mark.parametrize("argv, needle", [
    (["--grid", "table9"], "unknown grid 'table9'; valid: table3, table4, full, beyond"),
    (["--preset", "huge"], "unknown preset 'huge'; valid: paper, quick, smoke"),
    (["--datasets", "ct"], "dataset 'ct' has no default source (the paper's are lus, adni); give one: --data ct=SOURCE:ARG"),
    (["--losses", "mse,triplet"], "unknown loss 'triplet'; valid: mse, cl, wcl"),
    (["--sims", "dot"], "unknown similarity 'dot'; valid: cos, l2"),
    (["--backbones", "resnet999"], "unknown backbone 'resnet999'; valid: "),
    (["--data", "lus=nosuch:/x"], "unknown data source 'nosuch'; valid: "),
    (["--data", "lus"], "--data must look like NAME=VALUE"),
    (["--seeds", "many"], "argument --seeds: invalid int value"),
])
def test_bad_arguments_one_line_exit_2(argv, needle, usage_error):
    usage_error(argv, needle)


def test_cells_run_seed_by_seed_in_table_order(tmp_path):
    from bench import sweep
    plan = sweep.plan(sweep.SweepOptions(grid="table3", preset="smoke", seeds=2, references=False,
                                         out=tmp_path, cache_dir=tmp_path / "cache"), decode=False)
    rows = grid_rows("table3")
    assert [(s.seed, s.row) for s in plan.specs] == [(0, r) for r in rows] + [(1, r) for r in rows]
    assert len({s.run_id for s in plan.specs}) == len(plan.specs)


def test_only_the_planned_datasets_are_loaded_and_decoded(tmp_path):
    from bench import sweep
    from bench.data.splits import cohorts
    plan = sweep.plan(sweep.SweepOptions(grid="table3", preset="smoke", seeds=1, datasets=["lus"],
                                         out=tmp_path, cache_dir=tmp_path / "cache"))
    assert list(plan.datasets) == ["lus"] and {c.row.dataset for c in plan.specs} == {"lus"}
    decoded = sorted(p.name for p in (tmp_path / "cache").glob("*.clips"))
    assert len(decoded) == len(cohorts(plan.datasets["lus"])) == 2  # the cohort and its held-out cohort
    assert all(name.startswith(plan.datasets["lus"].name) for name in decoded), decoded


def test_a_cell_is_read_back_from_its_record_and_knows_if_it_is_stale():
    from dataclasses import replace
    from pathlib import Path

    from bench.cell import Cell, record_is_stale
    from bench.presets import get_preset
    from bench.records import RunRecord
    from bench.runner import RunContext

    ctx = RunContext(out_dir=Path("x"), preset=get_preset("smoke"), device="cpu", data_keys={"lus": "k"})
    cell = ctx.cell("table3", Row("lus", "tsm_r18", "cl"), 3)
    rec = RunRecord(cell.run_id, "table3", "lus", "tsm_r18", "cl", "cos", 3, "smoke", cell.fingerprint(),
                    cell.code_version(), "finished", cell.settings(), cell.numerics.to_dict(), "cpu", "c", "t",
                    metrics={})
    assert Cell.from_record(rec) == cell and Cell.from_record(rec).run_id == cell.run_id
    assert not record_is_stale(rec)
    assert record_is_stale(replace(rec, code_version="0123456789ab"))
    assert record_is_stale(replace(rec, settings={**rec.settings, "preset": {"name": "smoke", "gone": 1}}))


def test_fingerprint_covers_data_content_weights_and_numerics(tmp_path):
    import os
    from pathlib import Path

    from bench.presets import get_preset
    from bench.runner import RunContext

    row = Row("lus", "tsm_r18", "cl")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"0" * 10)

    def fp(**kw):
        ctx = RunContext(out_dir=Path("x"), preset=get_preset("smoke"), device="cpu",
                         data_keys={"lus": "synthetic-lus-v1-aaa"}, **kw)
        return ctx.cell("table3", row, 0).fingerprint()

    base = fp()
    assert fp(amp=False) == base  # bf16 autocast does nothing on a CPU
    assert fp(compile=True) != base
    assert fp(on_bad_input="skip") != base
    changed = RunContext(out_dir=Path("x"), preset=get_preset("smoke"), device="cpu",
                         data_keys={"lus": "synthetic-lus-v2-bbb"})
    assert changed.cell("table3", row, 0).fingerprint() != base  # same row and seed, other content
    with_weights = fp(pretrained={"tsm_r18": str(weights)})
    assert with_weights != base
    os.utime(weights, ns=(1, 1))  # the same path, another file
    assert fp(pretrained={"tsm_r18": str(weights)}) != with_weights


def test_a_presets_default_seed_count_is_not_part_of_a_cell():
    """It decides which cells run, not what one computes: raising it keeps the finished cells."""
    from dataclasses import replace
    from pathlib import Path

    from bench.presets import get_preset
    from bench.runner import RunContext

    def cell(preset):
        ctx = RunContext(out_dir=Path("x"), preset=preset, device="cpu", data_keys={"lus": "k"})
        return ctx.cell("table3", Row("lus", "tsm_r18", "cl"), 3)
    smoke = get_preset("smoke")
    assert cell(replace(smoke, seeds=9)).run_id == cell(smoke).run_id
    assert cell(replace(smoke, epochs=3)).run_id != cell(smoke).run_id
