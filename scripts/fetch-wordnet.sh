#!/usr/bin/env bash
# Fetches WordNet 3.0's data.noun (glosses of 82k noun synsets) from Debian's wordnet-base into data/wordnet/full.
# Works without root: the package is downloaded and unpacked, not installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/data/wordnet/full"
mkdir -p "$out"
if [ -f /usr/share/wordnet/data.noun ]; then
  cp /usr/share/wordnet/data.noun "$out/"
else
  work="$(mktemp -d)"
  (cd "$work" && { apt-get download wordnet-base 2>/dev/null || { apt-get update -qq && apt-get download wordnet-base; }; } && dpkg-deb -x wordnet-base_*.deb pkg)
  cp "$work"/pkg/usr/share/wordnet/data.noun "$out/"
  rm -rf "$work"
fi
ls -l "$out"
