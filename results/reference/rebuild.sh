#!/usr/bin/env bash
# Rebuild one part of results/reference from a clean clone of one commit, so that every record
# of a part names one commit and one code version.
#
#   bash results/reference/rebuild.sh run COMMIT PART SEEDS   # compute (rerun to resume)
#   bash results/reference/rebuild.sh stage PART SEEDS         # keep finished records in the repo
#   bash results/reference/rebuild.sh install PART SEEDS       # when all are finished
#
# PART: table3, table4, shortcut or label_noise. `run` computes out of tree (in $REBUILD_DIR,
# default ../reference-rebuild: the clone, the clip cache, the sweep's output) with the
# reference's settings (quick preset, 2 cells at a time, 1 thread each; REBUILD_PRESET=smoke for a
# trial); a killed run resumes.
# Cells another part already holds at COMMIT (same run_id: Table 4's TSM CL, untrained, majority
# and oracle rows are Table 3's) are copied in, not computed again. A part that takes longer than
# one sitting: `stage` copies its finished records to results/rebuild/PART/ (commit them) and the
# next `run`, on any machine, starts from them. `install` replaces the part's records here and
# rebuilds its tables with this checkout's code (--tables-only: presentation only).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${REBUILD_DIR:-$repo/../reference-rebuild}
py=${PYTHON:-$repo/.venv/bin/python}
usage() { echo "usage: rebuild.sh run COMMIT PART SEEDS | stage PART SEEDS | install PART SEEDS" >&2; exit 2; }
sweep_args() {  # PART SEEDS: the sweep command's arguments, the same for run and install
  case $1 in
    table3|table4) echo "--grid $1" ;;
    shortcut) echo "sensitivity --knob shortcut --values 0,0.33,0.67,1" ;;
    label_noise) echo "sensitivity --knob label_noise --values 0,0.1,0.2,0.3" ;;
    *) echo "rebuild.sh: unknown part '$1'; valid: table3, table4, shortcut, label_noise" >&2; exit 2 ;;
  esac
  case $1 in shortcut|label_noise) echo "--datasets lus --losses mse,cl,wcl" ;; esac
  echo "--preset ${REBUILD_PRESET:-quick} --seeds $2"
}
runs_dir() { case $1 in table3|table4) echo "$1/runs" ;; *) echo "sensitivity/$1/runs" ;; esac; }

plan_ids() {  # PART SEEDS: the run_ids of the part's cells, from the clone's own planner (no clip decoded)
  # shellcheck disable=SC2046  # the arguments are a word list
  (cd "$work/clone" && "$py" - $(sweep_args "$1" "$2") <<'PY'
import sys
from bench import sweep
from bench.cli import parse
from bench.options import from_args
args = parse(sys.argv[1:])
if args.command == "sensitivity":
    plans = [p for _, p in sweep.plan_study(from_args(args), args.knob, sweep.parse_values(args.knob, args.values),
                                            decode=False)]
else:
    plans = [sweep.plan(from_args(args), decode=False)]
print("\n".join(cell.run_id for p in plans for cell in p.specs))
PY
  )
}
copy_records() {  # FROM_DIR TO_DIR IDS_FILE [COMMIT]: the records (and embeddings) of those cells
  mkdir -p "$2"
  while read -r id; do
    [ -e "$1/$id.json" ] && [ ! -e "$2/$id.json" ] || continue
    [ -z "${4:-}" ] || grep -q "\"git_commit\": \"$4\"" "$1/$id.json" || continue
    cp "$1/$id.json" "$2/"; [ ! -e "$1/$id.npz" ] || cp "$1/$id.npz" "$2/"
  done < "$3"
}
[ $# -ge 2 ] || usage
case $1 in
  run)
    [ $# -eq 4 ] || usage
    commit=$(git -C "$repo" rev-parse --verify "$2^{commit}") part=$3 seeds=$4
    args=$(sweep_args "$part" "$seeds")
    out=$work/out/$(runs_dir "$part")
    [ -d "$work/clone" ] || git clone -q "$repo" "$work/clone"
    git -C "$work/clone" fetch -q origin && git -C "$work/clone" checkout -q "$commit"
    [ -z "$(git -C "$work/clone" status --porcelain)" ] || { echo "rebuild.sh: $work/clone is not clean" >&2; exit 1; }
    plan_ids "$part" "$seeds" > "$work/$part.ids"
    for from in "$repo"/results/reference/*/runs "$repo"/results/reference/sensitivity/*/runs \
                "$repo/results/rebuild/$part/runs"; do   # finished cells of this commit, from any part
      [ ! -d "$from" ] || copy_records "$from" "$out" "$work/$part.ids" "$commit"
    done
    cd "$work/clone"
    # shellcheck disable=SC2086  # args is a word list
    OMP_NUM_THREADS=1 "$py" run_all.py $args --jobs 2 --out "$work/out" --cache-dir "$work/cache" ;;
  stage)
    [ $# -eq 3 ] || usage
    sweep_args "$2" "$3" >/dev/null   # an unknown part: its one line, exit 2
    plan_ids "$2" "$3" > "$work/$2.ids"
    while read -r id; do   # not those another part of the reference already holds
      cmp -s "$work/out/$(runs_dir "$2")/$id.json" "$(ls "$repo"/results/reference/{,sensitivity/}*/runs/"$id.json" \
        2>/dev/null | head -1)" || echo "$id"
    done < "$work/$2.ids" > "$work/$2.new"
    copy_records "$work/out/$(runs_dir "$2")" "$repo/results/rebuild/$2/runs" "$work/$2.new"
    echo "results/rebuild/$2/runs: $(find "$repo/results/rebuild/$2/runs" -name '*.json' | wc -l) records" ;;
  install)
    [ $# -eq 3 ] || usage
    args=$(sweep_args "$2" "$3")
    src=$work/out/$(runs_dir "$2") dst=$repo/results/reference/$(runs_dir "$2")
    plan_ids "$2" "$3" > "$work/$2.ids"
    while read -r id; do
      [ -e "$src/$id.json" ] || { echo "rebuild.sh: $src/$id.json is missing: run the part to its end" >&2; exit 1; }
    done < "$work/$2.ids"
    rm -rf "$dst" && copy_records "$src" "$dst" "$work/$2.ids"
    [ ! -e "$src/../config.toml" ] || cp "$src/../config.toml" "$dst/../"
    cd "$repo"
    # shellcheck disable=SC2086
    "$py" run_all.py $args --out results/reference --tables-only
    rm -rf "$repo/results/rebuild/$2" ;;
  *) usage ;;
esac
