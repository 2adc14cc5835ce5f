"""The zoo's exported models measured on another CPU with ONNX Runtime alone (Python), as ML.NET would run them:
default session options (every graph optimization), 1 intra-op and 1 inter-op thread.

Reads what `bench ... zoo-export DIR` wrote (per model directory: entry.json, fp32.onnx, int8.onnx, the held-out rows and the
exporting CPU's outputs) and prints, per model:
- int8 vs fp32 on this CPU (worst output: relative error, mean cosine);
- realized vs simulated on this CPU: this CPU's int8 outputs against the simulated model's outputs from the export;
- int8 here vs int8 on the exporting CPU (the same model: what the CPU kind alone changes);
- fp32 and int8 milliseconds per row (median of alternated rounds of at least 200 ms) and the speed-up.

A model whose float file is too large to travel is timed against a float model rebuilt from its int8 model
(float_from_int8); "derive" does that for every model, to check the rebuilt model's time against the real one's.
To make a large model travel (64 MiB per call): delete its fp32.onnx and derived.onnx (zoo-export's C# rebuild, for
timing here) and compress its int8.onnx with xz; the exported fp32 outputs then stand for the float model's.

Usage: python3 bench/device/zoo_check.py DIR [rounds] [json-out] [derive]
"""
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def cpu_kind():
    flags = set()
    name = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
    vnni = "AVX512-VNNI" if "avx512_vnni" in flags else "AVX-VNNI" if "avx_vnni" in flags else "no VNNI"
    extra = " AMX-INT8" if "amx_int8" in flags else ""
    return f"{name}, {'AVX2' if 'avx2' in flags else 'no AVX2'}, {vnni}{extra}"


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def relative(a, b):
    e = s = 0.0
    for x, y in zip(a, b):
        m = np.isfinite(x) & np.isfinite(y)
        d = x[m].astype(np.float64) - y[m].astype(np.float64)
        e += float(d @ d)
        s += float(x[m].astype(np.float64) @ x[m].astype(np.float64))
    return (0.0 if e == 0 else float("inf")) if s == 0 else (e / s) ** 0.5


def cosine(a, b):
    values = []
    for x, y in zip(a, b):
        x = x.astype(np.float64).ravel()
        y = y.astype(np.float64).ravel()
        n = np.linalg.norm(x) * np.linalg.norm(y)
        values.append(1.0 if n == 0 else float(x @ y / n))
    return sum(values) / len(values)


def float_from_int8(path):
    """A float model of the int8 model's own graph, as ZooExport.FloatFromInt8 builds it (whose error against the float
    model the export records, for comparison): each weight's DequantizeLinear becomes its float values, and each
    activation's DequantizeLinear after a QuantizeLinear becomes an Identity of the float tensor, or a Relu where the
    uint8 zero point is 0 (the range held a Relu that the realizer dropped). Its time stands for the float model's
    where that model is too large to travel (its weights hold the int8 rounding, which changes no kernel's time)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(open_model(path))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    nodes, added = [], []
    for n in graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in producers and producers[n.input[0]].op_type == "QuantizeLinear":
            zero = numpy_helper.to_array(initializers[n.input[2]]) if len(n.input) > 2 and n.input[2] in initializers else None
            clamps = zero is not None and zero.dtype == np.uint8 and not zero.any()
            nodes.append(helper.make_node("Relu" if clamps else "Identity", [producers[n.input[0]].input[0]], [n.output[0]], name=n.name + "_float"))
        elif n.op_type == "DequantizeLinear" and n.input[0] in initializers:
            x = numpy_helper.to_array(initializers[n.input[0]]).astype(np.float64)
            scale = numpy_helper.to_array(initializers[n.input[1]]).astype(np.float64)
            if scale.size > 1:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1) % x.ndim
                shape = [1] * x.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
            added.append(numpy_helper.from_array((x * scale).astype(np.float32), n.output[0]))  # zero points are 0
        else:
            nodes.append(copy(n))
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if n.op_type != "QuantizeLinear" or any(o in used for o in n.output)]
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    kept = [copy(i) for i in graph.initializer if i.name in used] + [i for i in added if i.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    left = sorted({n.op_type for n in nodes if "Quantize" in n.op_type or "Integer" in n.op_type or n.op_type.startswith("QLinear")})
    return model.SerializeToString(), left


def copy(message):
    result = type(message)()
    result.CopyFrom(message)
    return result


def open_model(path):
    """The model's bytes, from PATH or from PATH.xz (large models travel compressed)."""
    if os.path.exists(path):
        return open(path, "rb").read()
    import lzma
    return lzma.open(path + ".xz").read()


def main():
    root = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    json_out = sys.argv[3] if len(sys.argv) > 3 else None
    derive = "derive" in sys.argv[4:]
    entries = [json.load(open(os.path.join(root, d, "entry.json"))) for d in sorted(os.listdir(root))
               if os.path.isfile(os.path.join(root, d, "entry.json"))]
    kind = cpu_kind()
    print(f"CPU here: {kind}; onnxruntime {ort.__version__} (Python), 1 thread, {rounds} alternated rounds")
    print(f"exported on: {', '.join(sorted(set(e['cpu'] for e in entries)))}")
    print()
    print("| model | rows | int8 vs fp32 here (worst output: relative error / mean cosine) | realized vs simulated here | int8 here vs int8 there | NaN "
          "| fp32 ms | derived float ms (its error vs fp32) | int8 ms | speed-up | speed-up there |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for entry in entries:
        d = os.path.join(root, entry["directory"])
        rows = entry["rows"]
        feeds = [{} for _ in range(rows)]
        for k, spec in enumerate(entry["inputs"]):
            data = np.fromfile(os.path.join(d, f"input{k}.bin"), dtype=np.int64 if spec["type"] == "int64" else np.float32)
            data = data.reshape([rows] + spec["shape"])
            for r in range(rows):
                feeds[r][spec["name"]] = np.asarray(data[r])
        outputs = entry["outputs"]

        def load(kind_, k):
            data = np.fromfile(os.path.join(d, f"{kind_}_output{k}.bin"), dtype=np.float32)
            return list(data.reshape(rows, -1))

        # A model whose float file did not travel (too large): the exported float outputs stand for it.
        has_float = os.path.exists(os.path.join(d, "fp32.onnx"))
        try:
            fp32 = session(os.path.join(d, "fp32.onnx")) if has_float else None
            int8 = session(open_model(os.path.join(d, "int8.onnx")))
            derived, left = (None, [])
            if derive or not has_float:
                data, left = float_from_int8(os.path.join(d, "int8.onnx"))
                derived = session(data)
        except Exception as e:  # a model this ONNX Runtime refuses: named, not fatal
            print(f"| {entry['name']} | refused: {type(e).__name__}: {str(e)[:300]} |", flush=True)
            continue

        def run(s):
            return [[np.asarray(v, dtype=np.float32).ravel() for v in s.run(outputs, feed)] for feed in feeds]

        def worst(a, b):
            return max(relative([r[k] for r in a], [r[k] for r in b]) for k in range(len(outputs)))

        q_here = run(int8)
        f_here = run(fp32) if has_float else [[load("fp32", k)[r] for k in range(len(outputs))] for r in range(rows)]
        w = max(range(len(outputs)), key=lambda k: relative([r[k] for r in f_here], [r[k] for r in q_here]))
        error = relative([r[w] for r in f_here], [r[w] for r in q_here])
        cos = cosine([r[w] for r in f_here], [r[w] for r in q_here])
        agreement = max(relative(load("simulated", k), [r[k] for r in q_here]) for k in range(len(outputs)))
        cpu_change = max(relative(load("int8", k), [r[k] for r in q_here]) for k in range(len(outputs)))
        derived_error = worst(f_here, run(derived)) if derived is not None else float("nan")
        nan = int(sum((~np.isfinite(v)).sum() for r in q_here for v in r) - sum((~np.isfinite(v)).sum() for r in f_here for v in r))

        def timed(s):
            start = time.perf_counter()
            count = 0
            while True:
                for feed in feeds:
                    s.run(outputs, feed)
                count += len(feeds)
                elapsed = time.perf_counter() - start
                if elapsed >= 0.2:
                    return elapsed * 1000 / count

        times = {"fp32": [], "derived": [], "int8": []}
        for _ in range(rounds):
            if fp32 is not None:
                times["fp32"].append(timed(fp32))
            if derived is not None:
                times["derived"].append(timed(derived))
            times["int8"].append(timed(int8))
        median = {k: (sorted(v)[len(v) // 2] if v else float("nan")) for k, v in times.items()}
        baseline = median["fp32"] if fp32 is not None else median["derived"]
        there = entry["here"]
        note = "" if has_float else " (float: exported outputs; time: derived float)"
        leftover = f" (left in it: {', '.join(left)})" if left else ""
        print(f"| {entry['name']}{note} | {rows} | {error:.4f} / {cos:.4f} ({outputs[w][:40]}) | {agreement:.4f} | {cpu_change:.4f} | {nan} | "
              f"{median['fp32']:.3f} | {median['derived']:.3f} ({derived_error:.4f}; export: {there.get('derivedVsFp32', float('nan')):.4f}){leftover} | {median['int8']:.3f} | {baseline / median['int8']:.2f}x | "
              f"{there['fp32Ms'] / there['int8Ms']:.2f}x |", flush=True)
        results.append(dict(name=entry["name"], rows=rows, int8_vs_fp32=error, cosine=cos, worst_output=outputs[w],
                            realized_vs_simulated=agreement, int8_here_vs_there=cpu_change, nan=nan,
                            fp32_ms=median["fp32"], derived_ms=median["derived"], derived_vs_fp32=derived_error,
                            int8_ms=median["int8"], there=there))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(dict(cpu=kind, onnxruntime=ort.__version__, exported_on=sorted(set(e["cpu"] for e in entries)), models=results), f, indent=1)


if __name__ == "__main__":
    main()
