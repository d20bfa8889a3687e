#!/usr/bin/env bash
# Photos/s of `polychrome colorize` on the 300 BSDS500 validation photos (481x321) with 1, then 2, then
# again 1 local worker process(es) (torchrun --standalone, gloo), each pinned to one thread
# (OMP_NUM_THREADS=1, --threads 1), bundled `default` model, fp32, into fresh temporary folders.
# The second 1-process run brackets the 2-process one, since the machine may be shared.
#
#   docs/issue-16/throughput.sh [PYTHON] [PHOTOS]     (defaults: .venv/bin/python, ../shared/data/val/bsds500)
#
# Prints, per run, the summary line of rank 0 (photos/s over the colourising, model load excluded) and
# the whole command's wall time (start-up, planning and model load included).
set -euo pipefail
PY="${1:-.venv/bin/python}"
PHOTOS="${2:-../shared/data/val/bsds500}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
CORES="$(nproc --all)"
export OMP_NUM_THREADS=1
echo "# $(date -u +%FT%TZ)  $CORES cores  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $("$PY" -c 'import torch; print("torch", torch.__version__)')  photos: $(ls "$PHOTOS" | wc -l) in $PHOTOS"
run() {  # $1 = number of worker processes, $2 = label
    local out="$TMP/out-$2"
    local t0 t1
    t0=$(date +%s.%N)
    "$PY" -m torch.distributed.run --standalone --nproc_per_node "$1" -m polychrome colorize "$PHOTOS" \
        -o "$out" --model default --threads 1 --manifest "$TMP/$2.jsonl" 2>"$TMP/$2.err" | tail -1 | sed "s|$TMP/||g"
    t1=$(date +%s.%N)
    echo "  $1 process(es): command wall time $(echo "$t1 - $t0" | bc) s, $(find "$out" -type f | wc -l) files written, load average now $(cut -d' ' -f1 /proc/loadavg)"
}
run 1 one-a
run 2 two
run 1 one-b
