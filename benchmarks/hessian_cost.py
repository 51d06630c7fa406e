"""Time of the `hessian` analysis (lth.analyses.hessian) for one network, per level and dtype.

    .venv/bin/python benchmarks/hessian_cost.py [--hidden 100] [--levels 0 4 8 12] [--dtypes float64 float32]
                                               [--threads 1] [--examples 1000]

Builds the default experiment's model (mlp1d, config/config.yaml's width), masks of the layer-wise IMP
counts of each level (fc 20 %, output 10 % per round; random which weights: the cost depends only on
the count), and times `hessian.spectrum` with the analysis's default settings on MNIST-1D's first
training examples (generated offline into a temporary folder). Prints a markdown table: level, weights
remaining, parameters in the Hessian, seconds. Always exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--levels", type=int, nargs="+", default=[0, 4, 8, 12])
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--examples", type=int, default=1000)
    args = p.parse_args(argv)

    import torch

    from lth.analyses import hessian
    from lth.core import parts
    from lth.data.fetch import fetch
    from lth.data.splits import load_splits
    from lth.models import build_model
    from lth.pruning import masks

    torch.set_num_threads(args.threads)
    defaults = {k: v["default"] for k, v in parts.ANALYSES["hessian"].config_keys()["hessian"]["properties"].items()}
    with tempfile.TemporaryDirectory() as root:
        fetch("mnist1d", Path(root))
        splits = load_splits("mnist1d", Path(root), val_size=500)
    x, y = hessian.subset(splits, args.examples, 0)
    print(f"| dtype | level | weights remaining | parameters | seconds ({args.threads} thread(s)) |")
    print("| --- | --- | --- | --- | --- |")
    for dtype in args.dtypes:
        for level in args.levels:
            model = build_model("mlp1d", (40,), 10, seed=0, hidden=args.hidden)
            kinds = masks.layer_kinds(model)
            g = torch.Generator().manual_seed(level)
            mask = {}
            for name, kind in kinds.items():
                t = dict(model.named_parameters())[name]
                n = t.numel()
                for _ in range(level):
                    n -= round((0.1 if kind == "output" else 0.2) * n)
                keep = torch.zeros(t.numel(), dtype=torch.bool)
                keep[torch.randperm(t.numel(), generator=g)[:n]] = True
                mask[name] = keep.reshape(t.shape)
            masks.apply_mask(model, mask)
            row = hessian.spectrum(model, mask, x, y, "classification", {**defaults, "dtype": dtype})
            print(f"| {dtype} | {level} | {masks.density(mask):.3f} | {row['parameters']} | {row['seconds']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
