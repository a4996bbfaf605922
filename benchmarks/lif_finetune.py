"""LIF fine-tuning (``snncompile finetune <lif model.nir>``): accuracy before and after, on Loihi 2
(4-bit weights) and on Xylo (xylo-audio2), every number from ``compile`` on the test split.

    python benchmarks/lif_finetune.py [--part loihi|xylo|all] [--xylo-epochs 20] [--hil-batches 10]

* loihi: a norse-built Yin-Yang LIF net 4-32-3 (as tests/test_lif_finetune.py builds it: norse's
  to_nir, 3 epochs of surrogate BPTT on the float NIR dynamics, 16 regular steps), compiled for
  loihi2 at 4-bit weights; then ``finetune --mode qat`` (2 epochs), then ``--mode hil --target
  fxsim`` (1 epoch), each compiled again.
* xylo: the eRBP Yin-Yang 4-120-3 net (``snncompile train --method erbp --dataset yinyang --arch
  4-120-3 --epochs 20 --seed 0 --no-preset``, or --model), the norse-built net and a BPTT 4-120-3 net
  (``train --method bptt --epochs 15 --seed 0``), compiled for xylo-audio2 (reference, fxsim with
  Xylo rules, XyloSim on --xylo-samples); then ``finetune --profile xylo-audio2 --mode qat``
  (--xylo-epochs; half of them for BPTT), then ``--mode hil --target xylosim`` on --hil-batches
  batches.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def norse_yinyang(path: Path, seed: int = 0) -> Path:
    from snncompile.data import load_dataset
    from snncompile.ir import write_nir
    from snncompile.train.lif_finetune_model import norse_example_graph

    data = load_dataset("yinyang")
    write_nir(norse_example_graph(data.x_train, data.y_train, seed), path)
    return path


def run_cli(args: list) -> str:
    from click.testing import CliRunner

    from snncompile.cli import main

    print("$ snncompile " + " ".join(args), flush=True)
    res = CliRunner().invoke(main, args)
    if res.exit_code != 0:
        raise SystemExit(f"failed: {res.output}{res.exception!r}")
    return res.output


def compiled(model: Path, out: Path, targets: list, extra: list) -> dict:
    import json

    run_cli(["compile", str(model), "--dataset", "yinyang", "--out", str(out), "--quiet"]
            + sum((["--target", t] for t in targets), []) + extra)
    rep = json.loads((out / "report.json").read_text())
    row = {"reference": rep["reference"]["accuracy"]}
    for t in targets:
        if t != "reference":
            row[t] = rep["targets"][t]["accuracy"]
            row[f"{t}_samples"] = rep["targets"][t]["samples"]
            if "bit_exact_with_fxsim" in rep["targets"][t]:
                row[f"{t}_bit_exact"] = rep["targets"][t]["bit_exact_with_fxsim"]
    row["spikes_per_neuron"] = rep["targets"][targets[-1]].get("spikes_per_neuron")
    return row


def show(name: str, row: dict) -> None:
    parts = [f"{k} {100 * v:.2f} %" if isinstance(v, float) and "spikes" not in k else f"{k} {v}"
             for k, v in row.items()]
    print(f"  {name:<34} " + ", ".join(parts), flush=True)


def part_loihi(tmp: Path, hil_epochs: int) -> None:
    model = norse_yinyang(tmp / "norse.nir")
    q = ["--profile", "loihi2", "--bits", "4"]
    rows = {"norse 4-32-3 (float 8-bit)": compiled(model, tmp / "c0", ["reference", "fxsim"], ["--profile", "loihi2"]),
            "norse 4-32-3, 4-bit": compiled(model, tmp / "c1", ["reference", "fxsim"], q)}
    t0 = time.perf_counter()
    print(run_cli(["finetune", str(model), "--dataset", "yinyang", *q, "--mode", "qat", "--epochs", "2", "--lr",
                   "1e-3", "--quiet", "-o", str(tmp / "qat.nir")]))
    print(f"  qat: {time.perf_counter() - t0:.1f} s")
    rows["after qat (4-bit)"] = compiled(tmp / "qat.nir", tmp / "c2", ["reference", "fxsim"], q)
    t0 = time.perf_counter()
    print(run_cli(["finetune", str(tmp / "qat.nir"), "--dataset", "yinyang", *q, "--mode", "hil", "--target",
                   "fxsim", "--epochs", str(hil_epochs), "--lr", "1e-5", "--quiet", "-o", str(tmp / "hil.nir")]))
    print(f"  hil: {time.perf_counter() - t0:.1f} s")
    rows["after qat, then hil fxsim (4-bit)"] = compiled(tmp / "hil.nir", tmp / "c3", ["reference", "fxsim"], q)
    print(run_cli(["finetune", str(model), "--dataset", "yinyang", *q, "--mode", "hil", "--target", "fxsim",
                   "--epochs", "2", "--lr", "1e-3", "--quiet", "-o", str(tmp / "hil_only.nir")]))
    rows["hil fxsim alone (4-bit)"] = compiled(tmp / "hil_only.nir", tmp / "c4", ["reference", "fxsim"], q)
    print("Loihi 2, test split (1000 samples):")
    for k, v in rows.items():
        show(k, v)


def part_xylo(tmp: Path, model: str | None, epochs: int, samples: int, hil_batches: int) -> None:
    if model is None:
        model = str(tmp / "erbp.nir")
        run_cli(["train", "--method", "erbp", "--dataset", "yinyang", "--arch", "4-120-3", "--epochs", "20", "--seed",
                 "0", "--no-preset", "-o", model])
    foreign = norse_yinyang(tmp / "norse.nir") if not (tmp / "norse.nir").exists() else tmp / "norse.nir"
    bptt = tmp / "bptt.nir"
    run_cli(["train", "--method", "bptt", "--dataset", "yinyang", "--arch", "4-120-3", "--epochs", "15", "--seed", "0",
             "-o", str(bptt)])
    xt = ["reference", "fxsim", "xylosim"]
    xo = ["--profile", "xylo-audio2", "--vendor-samples", str(samples)]
    for name, src, n_ep in (("eRBP 4-120-3", Path(model), epochs), ("norse 4-32-3", foreign, epochs),
                            ("BPTT 4-120-3", bptt, max(1, epochs // 2))):
        rows = {"before": compiled(src, tmp / f"x0_{src.stem}", xt, xo)}
        t0 = time.perf_counter()
        print(run_cli(["finetune", str(src), "--dataset", "yinyang", "--profile", "xylo-audio2", "--mode", "qat",
                       "--epochs", str(n_ep), "--lr", "1e-3", "--quiet", "-o", str(tmp / f"xq_{src.stem}.nir")]))
        print(f"  qat: {time.perf_counter() - t0:.1f} s")
        rows["after qat"] = compiled(tmp / f"xq_{src.stem}.nir", tmp / f"x1_{src.stem}", xt, xo)
        if hil_batches:
            t0 = time.perf_counter()
            print(run_cli(["finetune", str(tmp / f"xq_{src.stem}.nir"), "--dataset", "yinyang", "--profile",
                           "xylo-audio2", "--mode", "hil", "--target", "xylosim", "--epochs", "1", "--lr", "1e-5",
                           "--batch-size", str(5000 // hil_batches), "--quiet", "-o",
                           str(tmp / f"xh_{src.stem}.nir")]))
            print(f"  hil: {time.perf_counter() - t0:.1f} s")
            rows["after qat, then hil xylosim"] = compiled(tmp / f"xh_{src.stem}.nir", tmp / f"x2_{src.stem}", xt, xo)
        print(f"xylo-audio2, {name}, test split (reference and fxsim: 1000 samples):")
        for k, v in rows.items():
            show(k, v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["loihi", "xylo", "all"], default="all")
    ap.add_argument("--model", default=None, help="the eRBP Yin-Yang graph (default: train it, 20 epochs)")
    ap.add_argument("--xylo-epochs", type=int, default=20)
    ap.add_argument("--xylo-samples", type=int, default=1000, help="XyloSim samples (bit-exact check)")
    ap.add_argument("--hil-batches", type=int, default=10, help="xylosim hil: the training split in this many batches")
    ap.add_argument("--hil-epochs", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if args.part in ("loihi", "all"):
            part_loihi(tmp, args.hil_epochs)
        if args.part in ("xylo", "all"):
            part_xylo(tmp, args.model, args.xylo_epochs, args.xylo_samples, args.hil_batches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
