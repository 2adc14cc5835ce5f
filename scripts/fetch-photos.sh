#!/usr/bin/env bash
# Fetches natural photos for the zoo benchmark (bench ... zoo) from Debian's python3-skimage (scikit-image's sample
# data) into data/photos/full. Works without root: the package is downloaded and unpacked, not installed. Nothing of it
# is committed. The licences, as scikit-image's skimage/data/_fetchers.py states them:
#   astronaut.png  Eileen Collins (NASA): no known copyright restrictions, public domain
#   camera.png     Lav Varshney: CC0
#   chelsea.png    Stefan van der Walt: CC0
#   coffee.png     Rachel Michetti: CC0
#   rocket.jpg     SpaceX: public domain
#   brick.png      CC0Textures: CC0
#   coins.png      no known copyright restrictions
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/data/photos/full"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A fresh machine's package lists may be empty: update them once when the download finds nothing.
(cd "$work" && { apt-get download python3-skimage 2>/dev/null || { apt-get update -qq && apt-get download python3-skimage; }; } \
  && dpkg-deb -x python3-skimage_*.deb pkg)
data="$work/pkg/usr/lib/python3/dist-packages/skimage/data"
for f in astronaut.png camera.png chelsea.png coffee.png rocket.jpg brick.png coins.png; do cp "$data/$f" "$out/"; done
ls -l "$out"
