#!/usr/bin/env bash
# Runs test classes on the AVX2 kind of CPU (no AVX-512, no VNNI) on any x86-64 machine, by emulating one with QEMU user
# mode: ONNX Runtime then takes its saturating vpmaddubsw kernels. Accuracy only; emulated timings mean nothing.
# Usage: scripts/test-on-avx2.sh [TestClass ...]   (default: the tiny-model and agreement tests; ResNet18 takes hours)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-x86_64 >/dev/null || { apt-get update -qq && apt-get install -y -qq qemu-user >/dev/null; }
dotnet build test/MLNet.Quantization.Tests -c Release -v q >/dev/null
tests=test/MLNet.Quantization.Tests/bin/Release/net10.0/linux-x64/MLNet.Quantization.Tests.dll
# The runner lives beside the tests, so that AppContext.BaseDirectory is theirs (models and data are found from it).
dotnet build tools/InProcessTestRunner -c Release -o "$(dirname "$tests")" -v q >/dev/null
classes=("$@")
[ ${#classes[@]} -gt 0 ] || classes=(AgreementCheckTests ConcatOpTests ConvOpTests ElementwiseOpTests GemmOpTests MatMulOpTests
  PassThroughOpTests PoolingOpTests AnnotatorTests GraphPreparationTests WeightQuantizerTests QdqWriterTests
  QuantizingEstimatorBadInputTests BiasCorrectionTests CrossLayerEqualizationPassTests SmoothQuantPassTests QuantizationPipelineTests
  FloatRulesTests Float16ConversionTests DeploymentCheckTests ErrorMeasurementTests TunerTests TuningScoresTests SimulatedEmitterTests
  Int8EmitterTests TensorStatisticsTests OutputCosineTests OutputValuesTests RowReaderTests FloatLayerSearchTests ReaderClampsTests SharedGridsTests InputFeedTests ScalarOutputConversionTests
  ScaledStatisticsTests ChannelReducerTests HistogramTests CalibratorTests StatisticsCollectorTests)
# .NET's background GC, W^X double mapping and tiered compilation's re-JIT crash under QEMU user mode; all three are
# switched off here (with tiering on, half the runs of some Conv tests crashed).
export DOTNET_EnableWriteXorExecute=0 DOTNET_gcConcurrent=0 DOTNET_TieredCompilation=0
runner=("$(command -v dotnet | xargs readlink -f)" "$(dirname "$tests")/InProcessTestRunner.dll" "$tests")
# Runs the tests that match $2 (tries $3 times: QEMU user mode still crashes .NET now and then; a crash is retried, a
# failure is not) and leaves their log in $1; true when a result line was written.
run() {
  for ((try = 1; try <= $3; try++)); do
    if qemu-x86_64 -cpu max "${runner[@]}" "$2" > "$1" 2>&1 || grep -q ' failed$' "$1"; then break; fi
  done
  grep -q ' passed, [0-9]* failed$' "$1"
}
for class in "${classes[@]}"; do
  log="/tmp/avx2-$class.log"
  if run "$log" "$class" 3; then echo "$class: $(tail -1 "$log")"; continue; fi
  # The class kept crashing: each of its tests in a process of its own, so that a crash costs one test's retry.
  p=0 f=0
  for test in $(qemu-x86_64 -cpu max "${runner[@]}" --list "$class." 2>/dev/null); do
    if run "$log.one" "$test" 4; then
      p=$((p + $(tail -1 "$log.one" | cut -d' ' -f1))); f=$((f + $(tail -1 "$log.one" | cut -d' ' -f3)))
      grep '^FAIL' "$log.one" || true
    else echo "$test gave no result in 4 tries: $(tail -1 "$log.one")"; f=$((f + 1)); fi
  done
  [ $((p + f)) -gt 0 ] || f=1 # not even the list of its tests: a failure, not a skip
  echo "$class (one process per test): $p passed, $f failed"
done
