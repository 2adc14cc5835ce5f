#!/usr/bin/env bash
# Fetches the full Fashion-MNIST (MIT) from Debian's dataset-fashion-mnist package into data/fashion-mnist/full.
# Works without root: the package is downloaded and unpacked, not installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/data/fashion-mnist/full"
mkdir -p "$out"
if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  cp /usr/share/datasets/fashion-mnist/*.gz "$out/"
else
  work="$(mktemp -d)"
  (cd "$work" && { apt-get download dataset-fashion-mnist 2>/dev/null || { apt-get update -qq && apt-get download dataset-fashion-mnist; }; } && dpkg-deb -x dataset-fashion-mnist_*.deb pkg)
  cp "$work"/pkg/usr/share/datasets/fashion-mnist/*.gz "$out/"
  rm -rf "$work"
fi
ls -l "$out"
