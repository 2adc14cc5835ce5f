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
  Int8EmitterTests)
# .NET's background GC and W^X double mapping crash under QEMU user mode; both are switched off here.
export DOTNET_EnableWriteXorExecute=0 DOTNET_gcConcurrent=0
for class in "${classes[@]}"; do
  for try in 1 2 3; do # QEMU user mode still crashes .NET now and then: a crash is retried, a failure is not
    if qemu-x86_64 -cpu max "$(command -v dotnet | xargs readlink -f)" "$(dirname "$tests")/InProcessTestRunner.dll" "$tests" "$class" > "/tmp/avx2-$class.log" 2>&1 \
       || grep -q ' failed$' "/tmp/avx2-$class.log"; then break; fi
  done
  echo "$class: $(tail -1 "/tmp/avx2-$class.log")"
done
