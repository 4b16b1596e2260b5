#!/usr/bin/env bash
# One prepared check of a GPU: at most 8 minutes on one H100, every part under its own
# time budget (a part that fails or runs out of time is recorded and the next one runs).
#
#   bash benchmarks/gpu_check.sh                 # on the GPU: paper preset, results/benchmarks/
#   bash benchmarks/gpu_check.sh --cpu-smoke     # every part at smoke scale on the CPU
#                                                # (into results/gpu-check-smoke/, not kept)
#   bash benchmarks/gpu_check.sh --out DIR       # write somewhere else
#   bash benchmarks/gpu_check.sh --dry-run       # print the parts, budgets and commands only
# Python: $PYTHON, else .venv/bin/python, else python.
#
# Parts, in order (budgets on the GPU; --cpu-smoke has its own, larger relative to the work):
#   setup        10 s  device slug; the work folder <out>/<slug>-check/ is emptied
#   env          20 s  torch / CUDA / cuDNN / driver, GPU name and memory, measured bf16 and
#                      fp32 matmul peaks                              -> <slug>-env.json
#   data        100 s  decode the LUS clips of the preset (718 training, 1,520 held-out) into the
#                      clip cache with all cores, one BLAS thread each; every later part reads them
#   bench-eager  95 s  `run_all.py bench` per backbone (six; each <= 40 s): fast path vs naive
#   e2e          60 s  one real cell: table3 / LUS / TSM-R18 / MSE+CL, 3 epochs, on the device
#                      (with the reference cells the sweep adds beside it)
#   packing     130 s  the same cell, 1, 2 and 4 at once on one GPU (--gpus 1 --jobs-per-gpu N;
#                      40, 40 and 50 s)
#   bench-compile 30 s `run_all.py bench --compile` per backbone (each <= 60 s); last, since
#                      compiling is the slowest and least essential part, and it gets all the
#                      time the earlier parts left (30 s if each used its whole budget)
#   report       15 s  merged CSVs, MFU vs the datasheet and the measured peak, time to table
#                      (Table 4 x 3 seeds) for each packing, <slug>-summary.md
# Exit status: 0 when every part finished and the end-to-end cell's checks pass, else 1.
set -u

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

elapsed() { echo $(($(date +%s) - START)); }

# run_part NAME BUDGET CMD...: run CMD under min(BUDGET, time left before the report's
# share) and append its status to parts.csv; never stops the script.
run_part() {
  local name=$1 budget=$2 left t0 rc status ms
  shift 2
  left=$((DEADLINE - B_REPORT - $(date +%s)))
  [ "$budget" -gt "$left" ] && budget=$left
  if [ "$DRY" = 1 ]; then
    printf '%-26s %4ss  %s\n' "$name" "$budget" "$*"
    return 0
  fi
  if [ "$budget" -le 0 ]; then
    echo "$name,0,0,,skipped" >>"$WORK/parts.csv"
    printf '[%4ss] %-26s skipped: no time left\n' "$(elapsed)" "$name"
    return 0
  fi
  t0=$(date +%s%N)
  timeout -k 5 "$budget" "$@" >"$WORK/logs/${name//:/_}.log" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  echo "$name,$budget,$((ms / 1000)).$(printf %03d $((ms % 1000))),$rc,$status" >>"$WORK/parts.csv"
  printf '[%4ss] %-26s %-7s %6.1f s of %s (log: %s)\n' "$(elapsed)" "$name" "$status" \
    "$((ms / 1000)).$((ms % 1000 / 100))" "$budget" "$WORK/logs/${name//:/_}.log"
}

# run_each PART PART_BUDGET EACH_BUDGET BACKBONES CMD...: CMD once per backbone (appended as
# `--backbones B --out <work>/PART/B`), each within EACH_BUDGET and all within PART_BUDGET.
run_each() {
  local part=$1 part_budget=$2 each=$3 list=$4 end b budget
  shift 4
  end=$(($(date +%s) + part_budget))
  for b in $list; do
    budget=$((end - $(date +%s)))
    [ "$budget" -gt "$each" ] && budget=$each
    run_part "$part:$b" "$budget" "$@" --backbones "$b" --out "$WORK/$part/$b"
  done
}

main() {
  MODE=gpu OUT="" DRY=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --cpu-smoke) MODE=cpu ;;
      --out) [ $# -ge 2 ] || { echo "gpu_check.sh: --out needs a folder" >&2; exit 2; }; OUT=$2; shift ;;
      --out=*) OUT=${1#--out=} ;;
      --dry-run) DRY=1 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
  done

  REPO=$(cd "$(dirname "$0")/.." && pwd)
  PY=${PYTHON:-$REPO/.venv/bin/python}
  [ -x "$PY" ] || PY=python
  BACKBONES="tsm_r18 resnet2d_r18 swin vit videomae timesformer"
  CACHE=.cache/clips  # the CLI's default, which `run_all.py bench` reads too

  if [ "$MODE" = gpu ]; then
    OUT=${OUT:-results/benchmarks}
    PRESET=paper DEVICE=cuda STEPS=8 WARMUP=3 WORKERS=4 EPOCHS=3 SMOKE=""
    PACK="1 2 4" COMPILE_BACKBONES=$BACKBONES
    TOTAL=480 B_SETUP=10 B_ENV=20 B_DATA=100 B_EAGER=95 B_EAGER_EACH=40 B_E2E=60
    B_PACK=130 B_COMPILE=30 B_COMPILE_EACH=60 B_REPORT=15
    pack_flags() { echo "--gpus 1 --jobs-per-gpu $1"; }
    pack_budget() { case $1 in 1|2) echo 40 ;; *) echo 50 ;; esac; }
  else
    OUT=${OUT:-results/gpu-check-smoke}  # git ignores it: smoke figures are not results
    PRESET=smoke DEVICE=cpu STEPS=2 WARMUP=1 WORKERS=0 EPOCHS=2 SMOKE=--smoke
    PACK="1 2" COMPILE_BACKBONES=tsm_r18  # 2 cores: compiling all six would take minutes
    TOTAL=900 B_SETUP=60 B_ENV=60 B_DATA=60 B_EAGER=240 B_EAGER_EACH=60 B_E2E=90
    B_PACK=150 B_COMPILE=150 B_COMPILE_EACH=150 B_REPORT=60
    pack_flags() { echo "--jobs $1 --device cpu"; }  # the CPU's cells-at-once flag
    pack_budget() { echo 75; }
  fi
  PLANNED=$((B_SETUP + B_ENV + B_DATA + B_EAGER + B_E2E + B_PACK + B_COMPILE + B_REPORT))
  if [ "$PLANNED" -gt "$TOTAL" ]; then
    echo "gpu_check.sh: the parts' budgets add up to $PLANNED s, more than the $TOTAL s allowed" >&2
    exit 2
  fi
  OUT=$(realpath -m "$OUT")
  cd "$REPO" || exit 2

  START=$(date +%s)
  DEADLINE=$((START + TOTAL - 10))  # room for the setup step and a kill's grace

  SLUG="<slug>"
  [ "$DRY" = 1 ] || SLUG=$(timeout "$B_SETUP" "$PY" benchmarks/gpu_check.py slug --device "$DEVICE" 2>/dev/null | tail -n 1)
  SLUG=${SLUG:-unknown-device}
  WORK=$OUT/$SLUG-check
  if [ "$DRY" = 0 ]; then
    rm -rf "$WORK"  # a previous run's finished cells would be skipped, not timed
    mkdir -p "$WORK/logs"
    echo "part,budget_s,seconds,rc,status" >"$WORK/parts.csv"
    echo "gpu_check ($MODE, preset $PRESET, $SLUG): budget $TOTAL s, writing $OUT"
  else
    echo "plan ($MODE, preset $PRESET): parts' budgets add up to $PLANNED s of $TOTAL s"
  fi

  run_part env "$B_ENV" "$PY" benchmarks/gpu_check.py env --out "$OUT" --device "$DEVICE" $SMOKE
  run_part data "$B_DATA" "$PY" benchmarks/gpu_check.py warm-cache --preset "$PRESET" --cache-dir "$CACHE"
  run_each bench-eager "$B_EAGER" "$B_EAGER_EACH" "$BACKBONES" \
    "$PY" run_all.py bench --preset "$PRESET" --steps "$STEPS" --warmup "$WARMUP" --workers "$WORKERS" --device "$DEVICE"
  CELL=(--grid table3 --preset "$PRESET" --datasets lus --losses cl --epochs "$EPOCHS" --cache-dir "$CACHE")
  run_part e2e "$B_E2E" "$PY" run_all.py "${CELL[@]}" --seeds 1 --device "$DEVICE" --out "$WORK/e2e"
  PACK_END=$(($(date +%s) + B_PACK))
  for n in $PACK; do
    budget=$(pack_budget "$n")
    [ "$budget" -gt $((PACK_END - $(date +%s))) ] && budget=$((PACK_END - $(date +%s)))
    # shellcheck disable=SC2046  # pack_flags is several words on purpose
    run_part "packing:$n" "$budget" "$PY" run_all.py "${CELL[@]}" --seeds "$n" $(pack_flags "$n") --out "$WORK/pack-$n"
  done
  COMPILE_BUDGET=$B_COMPILE
  [ "$DRY" = 1 ] || COMPILE_BUDGET=$((DEADLINE - B_REPORT - $(date +%s)))  # all that is left
  run_each bench-compile "$COMPILE_BUDGET" "$B_COMPILE_EACH" "$COMPILE_BACKBONES" \
    "$PY" run_all.py bench --preset "$PRESET" --steps "$STEPS" --warmup "$WARMUP" --workers "$WORKERS" \
    --device "$DEVICE" --compile

  if [ "$DRY" = 1 ]; then
    printf '%-26s %4ss  %s\n' report "$B_REPORT" "$PY benchmarks/gpu_check.py report ..."
    exit 0
  fi
  budget=$((DEADLINE - $(date +%s)))
  [ "$budget" -lt "$B_REPORT" ] && budget=$B_REPORT
  timeout -k 5 "$budget" "$PY" benchmarks/gpu_check.py report --out "$OUT" --work "$WORK" --preset "$PRESET" \
    --device "$DEVICE" --epochs "$EPOCHS" --elapsed "$(elapsed)" --budget "$TOTAL" >"$WORK/logs/report.log" 2>&1
  rc=$?
  tail -n 40 "$WORK/logs/report.log"
  echo "gpu_check: $(elapsed) s in all (budget $TOTAL s); summary: $OUT/$SLUG-summary.md"
  exit $((rc == 0 ? 0 : 1))
}

# The whole script is read before anything runs, so editing it during a run is safe.
main "$@"
