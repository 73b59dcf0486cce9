#!/usr/bin/env bash
# Bind audio on a dataset openbind never generated, with the stock CLI only:
#   data (make_dataset.py) -> train align (image+text) -> train bind audio -> eval zeroshot (audio, via text).
#
#   bash examples/bind_your_own/run.sh [OUT_DIR]        # default OUT_DIR: bind_your_own_out
#
# Re-running continues where it stopped (the data is kept, the runs use --resume). Set OPENBIND to the command
# to call (default: `openbind`, e.g. OPENBIND="python -m openbind.cli"), PYTHON for the generator,
# EXTRA_ALIGN / EXTRA_BIND for extra flags (e.g. EXTRA_BIND="--progress").
set -euo pipefail

OUT="${1:-bind_your_own_out}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python}"
read -r -a OPENBIND <<<"${OPENBIND:-openbind}"
DATA="$OUT/data"
mkdir -p "$OUT"
TIMES="$OUT/seconds.txt"
: >"$TIMES"

stage() {  # stage NAME COMMAND...: run it and record its wall-clock seconds
    local name="$1" start=$SECONDS
    shift
    echo "== $name: $*"
    "$@"
    echo "$name $((SECONDS - start))" | tee -a "$TIMES"
}

if [[ ! -f "$DATA/classes.txt" ]]; then
    stage data "$PYTHON" "$HERE/make_dataset.py" "$DATA" --seed 0
fi

# Stage 1: image and text towers from scratch on (image, caption) pairs: the quickstart's values (lr 2e-3,
# 35 epochs, no gradient clipping, every pair trained on, everything decoded once) with batch 32, so 600 pairs give as many steps
# (630) as the quickstart's 1,160 pairs at batch 64.
stage align "${OPENBIND[@]}" train align --train "$DATA/align.csv" --out "$OUT/runs/align" \
    --model imagebind_world --epochs 35 --batch-size 32 --lr 2e-3 --weight-decay 0.05 --warmup-epochs 2 \
    --grad-clip 0 --val-fraction 0 --preload --save-every 1000000000 --no-progress --resume ${EXTRA_ALIGN:-}

# Stage 2: the audio encoder against the frozen image tower, on (image, sound) pairs of other images.
# No sound is ever paired with text.
stage bind "${OPENBIND[@]}" train bind --modality audio --train "$DATA/bind_audio.csv" \
    --init "$OUT/runs/align" --out "$OUT/runs/audio" --epochs 40 --batch-size 50 --lr 2e-3 \
    --weight-decay 0.05 --warmup-epochs 2 --grad-clip 0 --val-fraction 0 --preload --save-every 1000000000 --no-progress \
    --resume ${EXTRA_BIND:-}

# Emergent zero-shot: held-out sounds against text prompts (the 80 CLIP templates); images for reference.
stage eval_audio "${OPENBIND[@]}" eval zeroshot --model "$OUT/runs/audio" --modality audio \
    --data "$DATA/test_audio.csv" --classes "$DATA/classes.txt" --json "$OUT/zeroshot_audio.json"
stage eval_image "${OPENBIND[@]}" eval zeroshot --model "$OUT/runs/audio" --modality image \
    --data "$DATA/test_image.csv" --classes "$DATA/classes.txt" --json "$OUT/zeroshot_image.json"

"$PYTHON" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def last(run):
    records = [json.loads(line) for line in (out / "runs" / run / "log.jsonl").read_text().splitlines() if line]
    return records[-1]
audio, image = (json.loads((out / f"zeroshot_{m}.json").read_text()) for m in ("audio", "image"))
seconds = dict(line.split() for line in (out / "seconds.txt").read_text().splitlines())
summary = {
    "align_final_batch_accuracy": last("align")["accuracy"],
    "bind_final_batch_accuracy": last("audio")["accuracy"],
    "audio_zero_shot_top1": audio["top1"], "audio_zero_shot_top5": audio["top5"],
    "image_zero_shot_top1": image["top1"], "chance": audio["chance"],
    "audio_top1_over_chance": audio["top1"] / audio["chance"], "seconds": {k: int(v) for k, v in seconds.items()},
}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
