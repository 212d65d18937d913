"""Bundle a trained model into the vocalsep package (int8 weights, as ONNX) and register it.

    python recipes/mir1k/package.py exp/mir1k_default/chimera/phase1/best.pt --name mir1k-chimera [--default]
                                    [--replace OLD_NAME] [--no-postfilter head|clusters]

``--no-postfilter head`` records in the model file that masks from its mask head skip the
Wiener-style post-filter by default (the choice made on validation for that model). The weights are
stored in int8 (one scale per row) and exported (``vocalsep.export``) to
vocalsep/pretrained/<name>.onnx, the one file both runtimes read (ONNX Runtime directly, torch by
rebuilding the network from its weights), with its entry (file, sha256, description, licence,
training summary) in vocalsep/pretrained/registry.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--default", action="store_true", help="make it the default model")
    ap.add_argument("--description", default="3x256 sequence-BN BLSTM deep clustering trained on MIR-1K (abjones, amy)")
    ap.add_argument("--replace", metavar="NAME", help="remove this bundled model (file and registry entry)")
    ap.add_argument("--license", default="research use only (trained on MIR-1K)")
    ap.add_argument("--no-postfilter", metavar="MASK_FROM", action="append", choices=["head", "clusters"], default=[],
                    help="record that masks from this source (head, clusters) skip the post-filter by default")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    import tempfile

    from vocalsep.checkpoint import file_sha256, load_model, read_checkpoint, save_model
    from vocalsep.export import export_onnx

    reg_path = ROOT / "vocalsep" / "pretrained" / "registry.json"
    bundle = load_model(args.model)
    if args.no_postfilter:
        bundle.separation["postfilter"] = {source: False for source in args.no_postfilter}
    dest = ROOT / "vocalsep" / "pretrained" / f"{args.name}.onnx"
    with tempfile.TemporaryDirectory() as d:
        stored = Path(d) / "int8.pt"
        save_model(stored, bundle, storage="int8")
        export_onnx(load_model(stored), dest, licence=args.license, stored=read_checkpoint(stored)["state_dict"])
    reg = json.loads(reg_path.read_text())
    reg["models"][args.name] = {"file": dest.name, "sha256": file_sha256(dest), "description": args.description,
                                "license": args.license, "training": bundle.training}
    if args.replace and args.replace != args.name and args.replace in reg["models"]:
        old = reg["models"].pop(args.replace)
        (ROOT / "vocalsep" / "pretrained" / old["file"]).unlink(missing_ok=True)
        if reg.get("default") == args.replace:
            reg["default"] = args.name
    if args.default or not reg.get("default"):
        reg["default"] = args.name
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    print(f"{dest} ({dest.stat().st_size / 1e6:.1f} MB) registered as {args.name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
