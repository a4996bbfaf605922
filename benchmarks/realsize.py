"""Memory and time of the float reference and fxsim on real-size TTFS networks.

    python benchmarks/realsize.py [--samples 1000] [--vgg-samples 200] [--vgg-width 64] [--seed 0]

Three networks, each converted (zeta 0.5), quantized for the ``loihi2`` profile (K = 16) and
mapped onto its cores (``check.map_layers``):

* MLP ``784-340-10`` and CNN ``1x28x28-c8k5p2-m2-c16k5-a2-64-10`` on a random 1x28x28 npz fixture;
* a VGG-style net (6 padded 3x3 convs, BatchNorm after every ReLU, two max-pools and an average
  pool; :data:`snncompile.train.ann.VGG_CIFAR` at ``--vgg-width`` 64) on a CIFAR-10 fixture
  written in the python pickle batch format (random images).

Weights are lightly trained (1 epoch on the fixture, so the BatchNorms hold real statistics).
For each net and target it prints seconds per 1,000 samples (scaled linearly from the samples
run), the peak resident-memory growth during the run (sampled every 5 ms; the batches are
bounded, so beyond them only the kept results grow with the sample count) and the ratio
fxsim / reference measured in the same run.  fxsim's first call on a graph builds and caches
each layer's linear map and fan-out (independent of the sample count): it is timed with a
1-sample run first and printed separately ("fx setup s"); the N-sample run that follows gives
the per-sample cost.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import tempfile
import threading
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(fn):
    """(seconds, peak RSS growth in MB, result) of fn()."""
    gc.collect()
    base = rss_mb()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
    peak[0] = max(peak[0], rss_mb())
    return dt, peak[0] - base, out


def write_cifar10(folder: str, n_train: int, n_test: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    per = -(-n_train // 5)
    for name, n in [(f"data_batch_{i}", per) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)], b"batch_label": b"fixture"}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, f, protocol=2)


def vgg_spec(width: int) -> str:
    w1, w2, w3 = width, 2 * width, 4 * width
    return (f"3x32x32-c{w1}k3p1-bn-c{w1}k3p1-bn-m2-c{w2}k3p1-bn-c{w2}k3p1-bn-m2-c{w3}k3p1-bn-c{w3}k3p1-bn-a2-"
            f"{2 * w3}-10")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1000, help="test samples for the MLP and the CNN")
    ap.add_argument("--vgg-samples", type=int, default=200, help="test samples for the VGG")
    ap.add_argument("--vgg-width", type=int, default=64, help="channels of the first VGG block (64: VGG_CIFAR)")
    ap.add_argument("--train-samples", type=int, default=500)
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--nets", default="mlp,cnn,vgg")
    ap.add_argument("--no-fxsim", action="store_true", help="time the reference only (fxsim's setup is slow on "
                    "wide convs: it builds each layer's full fan-out matrix)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from snncompile.check import map_layers
    from snncompile.data import as_model_input, load_dataset
    from snncompile.errors import ProfileViolation
    from snncompile.profile import load_profile
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.targets import run_target
    from snncompile.train.ann import build_ann, canonical_model, train_ann
    from snncompile.ttfs.convert import ann_logits, convert
    from snncompile.ttfs.graph import parse_ttfs

    torch.manual_seed(args.seed)
    prof = load_profile(args.profile)
    tmp = tempfile.mkdtemp(prefix="realsize-")
    rng = np.random.default_rng(args.seed)
    mn = os.path.join(tmp, "mnist.npz")
    n_tr, n_te = args.train_samples, max(args.samples, 1)
    np.savez(mn, x_train=rng.integers(0, 256, (n_tr, 1, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, n_tr),
             x_test=rng.integers(0, 256, (n_te, 1, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, n_te))
    write_cifar10(os.path.join(tmp, "cifar"), n_tr, max(args.vgg_samples, 1), args.seed)
    nets = {"mlp": ("784-340-10", f"npz:{mn}", args.samples),
            "cnn": ("1x28x28-c8k5p2-m2-c16k5-a2-64-10", f"npz:{mn}", args.samples),
            "vgg": (vgg_spec(args.vgg_width), f"cifar10:{os.path.join(tmp, 'cifar')}", args.vgg_samples)}
    rows = []
    for key in args.nets.split(","):
        spec, dname, n = nets[key]
        data = load_dataset(dname)
        model = build_ann(spec, seed=args.seed)
        xtr = as_model_input(data.x_train, model.input_shape)
        train_ann(model, xtr, data.y_train, epochs=1, seed=args.seed, progress=False)
        model = canonical_model(model)
        x = np.ascontiguousarray(as_model_input(data.x_test, model.input_shape)[:n])
        graph = convert(model, xtr[:200])
        qgraph, _ = quantize_ttfs(graph, prof, args.steps, xtr[:200])
        qnet = parse_ttfs(qgraph)
        try:
            mapping = map_layers(qnet.spiking + [qnet.readout], prof)
            cores = f"{mapping.get('cores_used')}/{mapping.get('cores_available')} cores"
        except ProfileViolation as e:
            cores = f"does not fit: {e}"
        neurons = sum(layer.neurons for layer in qnet.layers)
        t_ref, m_ref, r_ref = measure(lambda g=graph, xx=x: run_target("reference", g, xx))
        if args.no_fxsim:
            t_fx, m_fx, r_fx, setup = float("nan"), float("nan"), r_ref, float("nan")
        else:
            # the first call on a graph builds (and caches) each layer's linear map and fan-out: time it
            # on one sample, then the N-sample run gives the per-sample cost
            t_fx1, _, _ = measure(lambda g=qgraph, xx=x[:1]: run_target("fxsim", g, xx, profile=prof))
            t_fx, m_fx, r_fx = measure(lambda g=qgraph, xx=x: run_target("fxsim", g, xx, profile=prof))
            setup = max(0.0, t_fx1 - t_fx / n)
        agree = float(np.mean(r_ref.decisions == ann_logits(model, x).argmax(1)))
        agree_fx = float(np.mean(r_fx.decisions == r_ref.decisions))
        rows.append((key, spec, neurons, n, t_ref, m_ref, t_fx, m_fx, agree, agree_fx, cores, setup))
        print(f"{key}: {spec}: {neurons:,} neurons; {cores}", flush=True)
    print(f"\nper 1,000 samples (profile {args.profile}, K={args.steps}, torch threads {torch.get_num_threads()})")
    head = (f"{'net':<5}{'neurons':>10}{'N run':>7}{'ref s/1k':>10}{'ref MB':>9}{'fxsim s/1k':>12}{'fxsim MB':>10}"
            f"{'fx/ref time':>13}{'ref=ANN':>9}{'fx=ref':>8}{'fx setup s':>12}")
    print(head)
    for key, _spec, neurons, n, t_ref, m_ref, t_fx, m_fx, agree, agree_fx, _cores, setup in rows:
        print(f"{key:<5}{neurons:>10,}{n:>7}{1000 * t_ref / n:>10.2f}{m_ref:>9.0f}{1000 * t_fx / n:>12.2f}"
              f"{m_fx:>10.0f}{t_fx / t_ref:>12.2f}x{agree:>9.3f}{agree_fx:>8.3f}{setup:>12.1f}")


if __name__ == "__main__":
    main()
