#!/usr/bin/env bash
# Prepare a GPU leg HERE (the machine with ../shared/data), then run scripts/gpu_leg.sh THERE in one call.
#     bash scripts/gpu_prepare.sh                  # SEED=1 bash scripts/gpu_prepare.sh: other photos
# 1. fetches into .whl/ the wheels of the base install that the GPU machine lacks (kornia, kornia_rs, pypng, at
#    constraints.txt's versions, for CPython 3.12 on x86-64 Linux);
# 2. packs a seeded subset of ../shared/data/train into gpu-pack/train (polychrome pack-data, short side SIZE px)
#    as large as the carry allows: 64 MiB in all, less the tracked files, untracked ones git does not ignore, the
#    wheels and a MARGIN_MIB margin (or BUDGET_MB MiB when given);
# 3. checks that everything that would travel is under 64 MiB, and prints the device call to make.
# gpu-pack/, .whl/ and gpu-out/ are git-ignored: never committed. Environment: PYTHON (.venv/bin/python where
# there is one, else python3), DATA (../shared/data/train), SEED (0), SIZE (128), QUALITY (85), BUDGET_MB,
# MARGIN_MIB (1.5).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DATA="${DATA:-../shared/data/train}"
SEED="${SEED:-0}"
SIZE="${SIZE:-128}"
QUALITY="${QUALITY:-85}"
MARGIN_MIB="${MARGIN_MIB:-1.5}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

# 1. The wheels, pinned as constraints.txt pins them (pure-Python ones match any platform).
pins=()
for name in kornia kornia_rs pypng; do
    pin=$(grep -i "^${name}==" constraints.txt) || { echo "error: constraints.txt pins no $name" >&2; exit 2; }
    pins+=("$pin")
done
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${pins[@]}"
# Only the pinned wheels travel: an older version left from another pin is removed.
for f in .whl/*; do
    keep=0
    for pin in "${pins[@]}"; do
        stem="$(echo "${pin%%==*}" | tr '-' '_')-${pin##*==}-"
        case "$(basename "$f" | tr '[:upper:]' '[:lower:]')" in "$(echo "$stem" | tr '[:upper:]' '[:lower:]')"*) keep=1 ;; esac
    done
    [ "$keep" -eq 1 ] || { echo "removing $f (not pinned)"; rm -f "$f"; }
done
ls -l .whl

# Sizes in bytes of what travels besides the pack (files only, as they are copied).
sizes() {
    "$PYTHON" - "$@" <<'PYEOF'
import os, subprocess, sys
def git_files(*args):
    out = subprocess.run(["git", "ls-files", "-z", *args], capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]
def tree(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs] if os.path.isdir(root) else []
def total(paths):
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p) and not os.path.islink(p))
parts = {"tracked": total(git_files()), "untracked, not ignored": total(git_files("--others", "--exclude-standard")),
         ".whl": total(tree(".whl")), "gpu-pack": total(tree("gpu-pack"))}
if sys.argv[1] == "budget":  # MiB left for the pack: 64 less everything else, less the margin
    left = 64 - (parts["tracked"] + parts["untracked, not ignored"] + parts[".whl"]) / 2**20 - float(sys.argv[2])
    print(f"{int(left * 10) / 10:.1f}")
else:
    for k, v in parts.items():
        print(f"  {k:24s} {v / 2**20:8.2f} MiB")
    all_ = sum(parts.values())
    print(f"  {'total':24s} {all_ / 2**20:8.2f} MiB of 64 ({(64 * 2**20 - all_) / 2**20:.2f} MiB spare)")
    sys.exit(0 if all_ <= (64 - 0.5) * 2**20 else 1)
PYEOF
}

# 2. The pack.
BUDGET="${BUDGET_MB:-$(sizes budget "$MARGIN_MIB")}"
echo "packing $DATA -> gpu-pack/train: seed $SEED, short side $SIZE px, WebP q$QUALITY, $BUDGET MiB"
mkdir -p gpu-pack
"$PYTHON" -m polychrome pack-data "$DATA" -o gpu-pack/train --size "$SIZE" --budget-mb "$BUDGET" \
    --seed "$SEED" --quality "$QUALITY" --overwrite

# 3. What travels.
echo "what travels to the GPU machine:"
if ! sizes check; then
    echo "error: over 64 MiB less a 0.5 MiB margin: pack less (BUDGET_MB=...) or commit less" >&2
    exit 1
fi
cat <<EOF

Ready. The device call (one command, from the repository root; about 7 minutes of a 10-minute call):
  run(command="bash scripts/gpu_leg.sh", carry=["gpu-pack", ".whl"], timeout_s=590)
Its files come back as train.log, summary.json, W/model.safetensors, W/config.json (and tb/, when small).
Check the weights here:  polychrome colorize --model <files_at>/W photo.jpg -o out/
EOF
