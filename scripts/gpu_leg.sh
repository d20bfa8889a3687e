#!/usr/bin/env bash
# One timed training leg on a lent GPU machine, run there from the repository root as ONE command:
#     bash scripts/gpu_leg.sh [KEY=VALUE ...]        # the KEY=VALUE pairs override configs/effnet-cic-gpu.toml
# after `bash scripts/gpu_prepare.sh` here packed gpu-pack/train and fetched .whl/ (both carried along).
# It installs the carried wheels, trains configs/effnet-cic-gpu.toml into /tmp/gpu-run, exports last.pt's EMA
# weights (fp16) and leaves in $OUT (default ./gpu-out), at most two folders deep:
#     train.log  summary.json  W/model.safetensors  W/config.json  tb/events.out.tfevents.*  (if under 15 MiB)
# Tested on CPU with:  bash scripts/gpu_leg.sh device=cpu batch_size=8 workers=1 max_minutes=1 ema_decay=0.99
# Environment (for tests and reruns): PYTHON (python3), OUT, GPU_RUN (/tmp/gpu-run), GPU_SITE (/tmp/site),
# GPU_WHEELS (.whl), GPU_CONFIG (configs/effnet-cic-gpu.toml), TRAIN_TIMEOUT (seconds, 510: Ctrl+C-like stop
# that still saves last.pt, so the export and summary fit in a 10-minute call).
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
PY="${PYTHON:-python3}"
OUT="${OUT:-./gpu-out}"
RUN="${GPU_RUN:-/tmp/gpu-run}"
SITE="${GPU_SITE:-/tmp/site}"
WHEELS="${GPU_WHEELS:-.whl}"
CONFIG="${GPU_CONFIG:-configs/effnet-cic-gpu.toml}"
TRAIN_TIMEOUT="${TRAIN_TIMEOUT:-510}"
mkdir -p "$OUT"

if compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "== installing $(ls "$WHEELS"/*.whl | wc -l) carried wheels into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/*.whl || { echo "error: the carried wheels did not install" >&2; exit 3; }
fi
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

{
    echo "== $(date -u +%FT%TZ) on ${HOSTNAME:-this machine}"
    if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L; else echo "nvidia-smi: not here (no NVIDIA GPU)"; fi
    "$PY" - <<'PYEOF'
import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "|", torch.get_num_threads(), "threads")
import importlib
for m in ("kornia", "png", "typer", "rich", "numpy", "PIL", "safetensors", "tensorboard", "skimage", "torchmetrics",
          "tifffile", "yaml"):
    try:
        mod = importlib.import_module(m)
        print(f"  {m} {getattr(mod, '__version__', '?')}  {getattr(mod, '__file__', '')}")
    except Exception as e:  # noqa: BLE001
        print(f"  {m} MISSING ({e})")
PYEOF
    if [ -f gpu-pack/train/MANIFEST.json ]; then
        "$PY" -c "import json; m = json.load(open('gpu-pack/train/MANIFEST.json')); print('pack:', m['count'], 'photos,', m['bytes'], 'bytes, seed', m['seed'], 'size', m['size'])"
    fi
} 2>&1 | tee "$OUT/train.log"

echo "== training: $PY -m polychrome train $CONFIG out_dir=$RUN $*" | tee -a "$OUT/train.log"
timeout --signal=INT --kill-after=60 "$TRAIN_TIMEOUT" \
    "$PY" -m polychrome train --no-progress --overwrite "$CONFIG" "out_dir=$RUN" "$@" 2>&1 | tee -a "$OUT/train.log"
TRAIN_RC=${PIPESTATUS[0]}
echo "== training exit code $TRAIN_RC" | tee -a "$OUT/train.log"

EXPORT_RC=1
if [ -f "$RUN/last.pt" ]; then
    rm -rf "$OUT/W"
    "$PY" -m polychrome export "$RUN/last.pt" -o "$OUT/W" --half 2>&1 | tee -a "$OUT/train.log"
    EXPORT_RC=${PIPESTATUS[0]}
    # What comes back: at most 16 MiB a file (model.safetensors is about 10.5 MB in fp16).
    for f in "$OUT"/W/*; do
        if [ "$(stat -c %s "$f")" -gt $((16 * 1024 * 1024)) ]; then
            echo "error: $f is over 16 MiB and will not come back" | tee -a "$OUT/train.log"
            EXPORT_RC=4
        fi
    done
else
    echo "error: $RUN/last.pt was not written; nothing to export" | tee -a "$OUT/train.log"
fi

EVENTS=$(ls -t "$RUN"/tb/events.out.tfevents.* 2>/dev/null | head -n 1)
if [ -n "$EVENTS" ] && [ "$(stat -c %s "$EVENTS")" -le $((15 * 1024 * 1024)) ]; then
    mkdir -p "$OUT/tb" && cp "$EVENTS" "$OUT/tb/"
fi

"$PY" scripts/gpu_summary.py --run "$RUN" --weights "$OUT/W" --out "$OUT/summary.json" \
    --train-rc "$TRAIN_RC" --export-rc "$EXPORT_RC" --wall "$(( $(date +%s) - START ))" 2>&1 | tee -a "$OUT/train.log"
ls -l "$OUT" "$OUT/W" 2>/dev/null
[ "$TRAIN_RC" -eq 0 ] && [ "$EXPORT_RC" -eq 0 ]
