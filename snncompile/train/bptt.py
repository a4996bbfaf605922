r"""Surrogate-gradient BPTT for LIF chains, optionally through a profile's integer dynamics.

The network is the one eRBP trains and exports (:mod:`snncompile.train.erbp`): discrete time,
dt = 1 step, states reset per sample, T = T_in + L steps (L weight layers), every Affine delays
by one step (q_l(t) = W_l s_{l-1}(t - 1), bias 0), and

* hidden / spiking output layers: NIR ``LIF`` with r = tau, v_leak = v_reset = 0,
  v_threshold = 1:  v(t) = v(t-1) (1 - 1/tau) + q(t);  s(t) = [v(t) > 1];  v(t) = 0 where s(t).
  With ``tau_syn`` > 0: NIR ``CubaLIF`` (tau_mem = r = tau, w_in = tau_syn) with a synaptic current,
  i(t) = i(t-1) (1 - 1/tau_syn) + q(t);  v(t) = v(t-1) (1 - 1/tau) + i(t)  (on Loihi: u decays by
  du = round(4096 / tau_syn) - 1 and keeps its state; the integer forward below runs
  u = wrap(trunc0(u (4096 - du - 1) / 4096) + (a << 6)), straight-through like the rest).
* readout: ``loss="count"`` and ``"first-spike"``: the spike counts of the output LIF layer
  (argmax, ties to the lowest index); ``loss="readout"``: a non-spiking NIR ``LI`` output with
  r = tau_out, v(t) = v(t-1) (1 - 1/tau_out) + q(t), scores = the mean of v over the T steps.

Gradient (BPTT over the unrolled T steps, autograd).  The spike s = H(v - theta) has the
derivative of a *fast sigmoid* (SuperSpike, Zenke & Ganguli 2018) in its backward pass:

    ds/dv = 1 / (theta (1 + beta |v / theta - 1|)^2),   beta = ``surrogate_beta``

and the reset is not differentiated (v (1 - stop_grad(s))), as usual.  Losses: ``count``:
cross-entropy of ``logit_scale * counts``; ``readout``: cross-entropy of ``logit_scale * mean v``;
``first-spike``: cross-entropy of ``-logit_scale * t_first`` with the differentiable
t_first_k = sum_t prod_{t' <= t} (1 - s_k(t')) (steps before the first output spike), plus the
count loss (the deployed decision is the spike count, so the count term keeps it aligned).
``spike_reg`` adds spike_reg * (hidden spikes per neuron per sample) to the loss.

Training through a profile (``profile`` given: fake quantization, "QAT").  The forward pass runs
the deployed integer arithmetic of :func:`snncompile.neurons.lif.loihi_step` in float64 (exact on
integers below 2**53): every ``requant_every`` epochs (and once at the end) the current float
network is written to NIR and quantized by :func:`snncompile.quantize.lif.quantize_lif` itself,
with the calibration compile uses (the first ``calib_samples`` training samples, encoded with the
same code and seed), which fixes per population v_lsb (lambda), theta, du, dv and per connection
the weight exponent e and unit = lambda 2**(6 + e).  Between refreshes each mini-batch rounds the
*current* float weights with the quantizer's rule m = clip(round(W / (unit step)) step, lo, hi) and
runs, per step and population (integer units):

    a = floor(m s 2**e)  (or << e);  u = wrap(a << 6);  v = sat(trunc0(v (4096 - dv) / 4096) + u);
    s = v > theta;  v[s] = 0

Every rounding (weights, shift, decay truncation, wrap, saturation) is straight-through: its
forward value is the integer one, its gradient that of the unrounded expression (W / unit,
acc 2**e, v (1 - dv/4096)).  The final evaluation (``accuracy["deployed"]``) quantizes the final
weights exactly as ``snncompile compile --target fxsim`` does and runs this integer forward pass;
tests check it equals fxsim's (:func:`snncompile.lif.fixed.simulate_fixed`) spike counts bit for
bit.  Reproduction by ``compile`` needs the same calibration: ``--calib-samples`` (default 200)
and ``--seed`` as given here, the same dataset order, and the recorded encoding.

Measured (``python benchmarks/lif_training.py``, seed 0, LI readout loss, 20 regular steps, batch
64, Adam; 2 CPU cores shared with other jobs; deployed = loihi2 8-bit fxsim): Yin-Yang 4-120-3,
60 epochs float: test 98.5 %, deployed 97.8 % (agreement 99.1 %), 3.5 spikes per neuron, 318 s;
40 epochs through the loihi2 dynamics: 97.4 % float, 97.4 % deployed (agreement 98.6 %), 582 s.
MNIST-5k 784-200-10, 15 epochs float: 93.6 %, deployed 93.8 %; 10 epochs through loihi2: 92.7 %,
deployed 93.1 % (same-size ReLU ANN, Adam, 15 epochs: 92.5 %).

Determinism: torch's global RNG is forked and seeded; data order from a seeded generator.

Longer than 400 lines: the float and integer forward passes, the training loop and the NIR writer
share one set of state and delay conventions (this docstring); split, each would need the others'.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import nir
import numpy as np
import torch
from tqdm.auto import tqdm

from ..encode import KINDS, encode
from ..errors import InvalidModel
from ..ir import set_meta

FORMAT = "snncompile-lif"
LOSSES = ("count", "readout", "first-spike")
CALIB_SAMPLES = 200     # as compile's DEFAULT_CALIB_SAMPLES (passes/lif.py)
HEADROOM_BITS = 1       # as compile's default --headroom-bits


@dataclass(frozen=True)
class BpttHyper:
    """BPTT hyper-parameters (time constants in steps)."""

    steps: int = 20              # T_in: input encoding steps (the run lasts T_in + L steps)
    encoding: str = "regular"
    tau: float = 20.0            # LIF membrane time constant
    tau_syn: float = 0.0         # > 1: hidden/spiking layers are CubaLIF with this synaptic time constant; 0: LIF
    tau_out: float = 20.0        # LI readout time constant (loss="readout")
    loss: str = "readout"        # measured best on Yin-Yang (20 epochs: readout 96.5 %, count 93.6 % val)
    lr: float = 2e-3             # Adam learning rate (first epoch)
    lr_final: float = 0.1        # lr of the last epoch / lr of the first (geometric)
    surrogate_beta: float = 5.0  # fast-sigmoid steepness
    logit_scale: float = 0.0     # 0: per loss default (count/first-spike: 10/T_in per spike; readout: 1)
    spike_reg: float = 0.0
    init_scale: float = 2.0      # W uniform in [-a, a], a = init_scale / sqrt(fan_in)
    requant_every: int = 1       # profile: refresh lambda / exponents every this many epochs

    def check(self) -> BpttHyper:
        def bad(name, why):
            raise InvalidModel(f"BPTT hyper-parameter {name}={getattr(self, name)!r}: {why}")

        if int(self.steps) != self.steps or self.steps < 1:
            bad("steps", "needs an integer >= 1")
        if self.encoding not in KINDS:
            bad("encoding", f"must be one of {', '.join(KINDS)}")
        if self.loss not in LOSSES:
            bad("loss", f"must be one of {', '.join(LOSSES)}")
        for name in ("tau", "tau_out"):
            if not getattr(self, name) > 1.0:
                bad(name, "must be > 1 step")
        if self.tau_syn != 0 and not self.tau_syn > 1.0:
            bad("tau_syn", "must be 0 (LIF, no synaptic state) or > 1 step (CubaLIF)")
        for name in ("lr", "surrogate_beta", "init_scale"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if not 0 < self.lr_final <= 1:
            bad("lr_final", "must be in (0, 1]")
        if self.spike_reg < 0 or self.logit_scale < 0:
            bad("spike_reg" if self.spike_reg < 0 else "logit_scale", "must be >= 0")
        if int(self.requant_every) != self.requant_every or self.requant_every < 1:
            bad("requant_every", "needs an integer >= 1")
        return self

    @property
    def scale(self) -> float:
        if self.logit_scale:
            return float(self.logit_scale)
        return 1.0 if self.loss == "readout" else 10.0 / self.steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class BpttResult:
    """A trained LIF chain: ``weights`` float64 (out, in) per layer (what the NIR graph holds),
    ``history`` per epoch, ``accuracy`` (train/val/test float; with a profile also
    ``deployed_*``: the integer forward pass = fxsim), ``quant``: the last quantization table."""

    sizes: tuple
    weights: list
    hyper: BpttHyper
    seed: int
    epochs: int
    batch_size: int
    history: dict
    accuracy: dict
    train_time_s: float
    profile: str | None = None
    method: str = "bptt"
    extra: dict = field(default_factory=dict)

    @property
    def run_steps(self) -> int:
        return int(self.hyper.steps) + len(self.weights)

    def describe(self) -> dict:
        return {**self.hyper.to_dict(), "method": self.method, "sizes": list(self.sizes), "seed": self.seed,
                "epochs": self.epochs, "batch_size": self.batch_size, "profile": self.profile,
                "surrogate": "fast sigmoid 1/(theta (1 + beta |v/theta - 1|)^2)",
                "train_time_s": round(self.train_time_s, 3)}


class SpikeFn(torch.autograd.Function):
    """H(x) forward (x = v / theta - 1, strict: x > 0), fast-sigmoid derivative beta-scaled backward."""

    @staticmethod
    def forward(ctx, x, beta: float):
        ctx.save_for_backward(x)
        ctx.beta = beta
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1.0 + ctx.beta * x.abs()) ** 2, None


def _ste(value, exact):
    """Forward ``exact``, gradient of ``value``."""
    return value + (exact - value).detach()


# --------------------------------------------------------------------------------------------
# quantization parameters (from the quantizer itself)


@dataclass
class QParams:
    """Per layer: unit (float per mantissa LSB), step/lo/hi (grid), exp, du, dv, theta, v_lsb,
    spiking; plus the integer constants."""

    layers: list
    state_bits: int
    act_shift: int
    decay_bits: int
    table: list
    qgraph: object


def quant_params(weights, hp: BpttHyper, profile, calib_spikes, input_shape, dataset_name: str) -> QParams:
    """Quantize the float chain exactly as compile does and return the parameters the fake-quant
    forward pass needs."""
    from ..arith import weight_grid
    from ..frontends.nir import read_spiking_graph
    from ..ir import get_meta
    from ..quantize.lif import quantize_lif

    graph = chain_to_nir(weights, hp, input_shape, dataset_name, {}, "bptt", 0)
    net = read_spiking_graph(graph, 1.0)
    qgraph, table = quantize_lif(net, profile, calib_spikes, HEADROOM_BITS)
    meta = get_meta(qgraph)
    step, lo, hi = weight_grid(int(meta["weight_bits"]), int(meta["full_weight_bits"]), meta["sign_mode"])
    layers = []
    for i in range(len(weights)):
        pop = f"lif{i + 1}"
        pm = get_meta(qgraph.nodes[pop])
        src = "input" if i == 0 else f"lif{i}"
        cm = get_meta(qgraph.nodes[f"{pop}_from_{src}"])
        layers.append({"unit": float(cm["scale"]), "exp": int(cm["weight_exp"]), "step": step, "lo": lo, "hi": hi,
                       "du": int(pm["du"]), "dv": int(pm["dv"]), "theta": int(pm["vth_mant"]) << int(meta["vth_shift"]),
                       "v_lsb": float(pm["v_lsb"]), "spiking": bool(pm["spiking"])})
        if np.any(np.asarray(qgraph.nodes[pop].v_leak) != 0):
            raise InvalidModel(f"population {pop}: the quantized bias is not zero (BPTT chains have no biases)")
    return QParams(layers, int(meta["state_bits"]), int(meta["act_shift"]), int(meta["decay_bits"]), table, qgraph)


# --------------------------------------------------------------------------------------------
# forward passes


def forward(weights, sb, hp: BpttHyper, qp: QParams | None = None, record_hidden: bool = True):
    """Run the chain on ``sb`` (T_in, B, n_in) spikes.  ``weights``: torch (out, in) tensors (may
    require grad).  Float mode (``qp`` None): the NIR float dynamics; quantized: the integer
    dynamics with straight-through gradients (module docstring).  Returns dict with ``counts``
    (B, n) per layer, ``scores`` (the deployed readout), ``t_first`` (output, differentiable) and
    ``vmean`` (LI readout)."""
    dtype = weights[0].dtype
    t_in, b = sb.shape[0], sb.shape[1]
    L = len(weights)
    T = t_in + L
    li_out = hp.loss == "readout"
    sizes = [w.shape[0] for w in weights]
    v = [torch.zeros(b, n, dtype=dtype) for n in sizes]
    cur = [torch.zeros(b, n, dtype=dtype) for n in sizes]  # CubaLIF synaptic currents (tau_syn > 0)
    cuba = [bool(hp.tau_syn) and not (li_out and i == L - 1) for i in range(L)]
    prev = [torch.zeros(b, n, dtype=dtype) for n in sizes]
    counts = [torch.zeros(b, n, dtype=dtype) for n in sizes]
    alive = torch.ones(b, sizes[-1], dtype=dtype)
    t_first = torch.zeros(b, sizes[-1], dtype=dtype)
    vsum = torch.zeros(b, sizes[-1], dtype=dtype)
    zero_in = torch.zeros(b, sb.shape[2], dtype=dtype)
    if qp is None:
        decays = [1.0 - 1.0 / hp.tau] * L
        if li_out:
            decays[-1] = 1.0 - 1.0 / hp.tau_out
        wq = [w.T for w in weights]
    else:
        wq, decays = [], []
        for w, lay in zip(weights, qp.layers):
            real = w.T / lay["unit"]
            m = torch.clamp(torch.round(real / lay["step"]) * lay["step"], lay["lo"], lay["hi"])
            wq.append(_ste(real, m.detach()))
            decays.append(1.0 - lay["dv"] / float(1 << qp.decay_bits))
        big = float(1 << (qp.state_bits - 1))
        vmax = big - 1
    for t in range(1, T + 1):
        src = [sb[t - 2] if 2 <= t <= t_in + 1 else zero_in] + prev[:-1]
        new = []
        for i in range(L):
            spiking = not (li_out and i == L - 1)
            if qp is None:
                q = src[i] @ wq[i]
                if cuba[i]:
                    cur[i] = cur[i] * (1.0 - 1.0 / hp.tau_syn) + q
                    q = cur[i]
                v[i] = v[i] * decays[i] + q
                theta = 1.0
            else:
                lay = qp.layers[i]
                acc = src[i] @ wq[i]
                scaled = acc * (2.0 ** lay["exp"])
                a = _ste(scaled, torch.floor(scaled.detach()) if lay["exp"] < 0 else scaled.detach())
                uf = a * float(1 << qp.act_shift)
                if cuba[i]:  # u = wrap(trunc0(u (4096 - (du + 1)) / 4096) + a << act_shift)
                    keep = float((1 << qp.decay_bits) - (lay["du"] + 1))
                    ux = cur[i].detach() * keep
                    uf = _ste(cur[i] * (keep / float(1 << qp.decay_bits)), torch.trunc(ux / float(1 << qp.decay_bits))) + uf
                elif lay["du"] != (1 << qp.decay_bits) - 1:
                    raise InvalidModel(f"population lif{i + 1}: du={lay['du']} but the chain has no synaptic "
                                       "state (tau_syn = 0)")
                ud = uf.detach()
                w1 = torch.where(ud > big, ud - 2 * big, ud)
                u = _ste(uf, torch.where(w1 <= -big, ud + 2 * big, w1))
                cur[i] = u
                dec = v[i] * decays[i]
                dd = v[i].detach() * float((1 << qp.decay_bits) - lay["dv"])
                dec = _ste(dec, torch.trunc(dd / float(1 << qp.decay_bits)))
                pre = dec + u
                v[i] = _ste(pre, torch.clamp(pre.detach(), -vmax, vmax))
                theta = float(lay["theta"])
            if spiking:
                s = SpikeFn.apply(v[i] / theta - 1.0, hp.surrogate_beta)
                v[i] = v[i] * (1.0 - s.detach())
                counts[i] = counts[i] + s
                new.append(s)
            else:
                vsum = vsum + v[i]
                new.append(torch.zeros_like(v[i]))
        if not li_out:
            alive = alive * (1.0 - new[-1])
            t_first = t_first + alive
        prev = new
    out = {"counts": counts, "t_first": t_first, "T": T}
    if li_out:
        vm = vsum * qp.layers[-1]["v_lsb"] / T if qp is not None else vsum / T
        out["vmean"] = vm
        out["scores"] = vm
    else:
        out["scores"] = counts[-1]
    return out


def loss_of(out, y, hp: BpttHyper, n_hidden_neurons: int):
    ce = torch.nn.functional.cross_entropy
    k = hp.scale
    if hp.loss == "readout":
        loss = ce(k * out["vmean"], y)
    elif hp.loss == "count":
        loss = ce(k * out["counts"][-1], y)
    else:
        loss = ce(-k * out["t_first"], y) + ce(k * out["counts"][-1], y)
    if hp.spike_reg and n_hidden_neurons:
        hid = sum(c.sum(1) for c in out["counts"][:-1]) / n_hidden_neurons
        loss = loss + hp.spike_reg * hid.mean()
    return loss


def evaluate_chain(weights, x_spikes, hp: BpttHyper, qp: QParams | None = None, batch_size: int = 500):
    """(scores (N, n_out) float64, counts per layer (N, n) int64) of the deployed forward pass in
    float64: float dynamics, or the integer ones with ``qp``."""
    ws = [torch.as_tensor(np.asarray(w, dtype=np.float64)) for w in weights]
    x = np.asarray(x_spikes)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    scores, counts = [], [[] for _ in ws]
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            sb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size].transpose(1, 0, 2))).double()
            out = forward(ws, sb, hp, qp)
            scores.append(out["scores"].numpy())
            for i, c in enumerate(out["counts"]):
                counts[i].append(c.round().long().numpy())
    return np.concatenate(scores), [np.concatenate(c) for c in counts]


def decisions(scores) -> np.ndarray:
    """argmax; ties go to the lowest index (as every target)."""
    return np.asarray(scores).argmax(axis=1)


# --------------------------------------------------------------------------------------------
# training


def _sizes_of(arch, n_in: int) -> tuple:
    if isinstance(arch, str):
        try:
            sizes = tuple(int(t) for t in arch.split("-"))
        except ValueError:
            raise InvalidModel(f"arch {arch!r}: BPTT trains fully connected chains like 4-120-3") from None
    else:
        sizes = tuple(int(t) for t in arch)
    if len(sizes) < 2 or min(sizes) < 1:
        raise InvalidModel(f"arch {arch!r}: needs at least an input and an output size, all >= 1")
    if sizes[0] != n_in:
        raise InvalidModel(f"arch {arch!r} takes {sizes[0]} inputs, the data have {n_in} features")
    return sizes


def _check_xy(x, y, what: str):
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise InvalidModel(f"{what}: expected a non-empty batch (N, features), got shape {x.shape}")
    x = x.reshape(len(x), -1)
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise InvalidModel(f"{what}: {len(x)} samples need integer labels of shape ({len(x)},), got {y.shape} {y.dtype}")
    return x, y.astype(np.int64)


def load_profile_arg(profile):
    if profile is None:
        return None
    from ..profile import HwProfile, load_profile

    return profile if isinstance(profile, HwProfile) else load_profile(profile)


def train_bptt(x_train, y_train, *, arch, epochs: int, batch_size: int = 64, seed: int = 0, profile=None,
               x_val=None, y_val=None, dataset_name: str = "", input_shape=None, progress: bool = True,
               calib_samples: int = CALIB_SAMPLES, **hyper) -> BpttResult:
    """Train an LIF chain by surrogate-gradient BPTT (module docstring).  ``x_train`` must be the
    dataset's training split in its own order when ``profile`` is given (the first
    ``calib_samples`` calibrate the quantizer, as in compile).  ``hyper``: :class:`BpttHyper` fields."""
    known = {f.name for f in dataclasses.fields(BpttHyper)}
    unknown = sorted(set(hyper) - known)
    if unknown:
        raise InvalidModel(f"unknown BPTT hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hp = BpttHyper(**hyper).check()
    if int(epochs) != epochs or epochs < 0 or int(batch_size) != batch_size or batch_size < 1:
        raise InvalidModel(f"BPTT needs epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    x, y = _check_xy(x_train, y_train, "training data")
    sizes = _sizes_of(arch, x.shape[1])
    if y.min() < 0 or y.max() >= sizes[-1]:
        raise InvalidModel(f"training data: labels span {y.min()}..{y.max()}, the network has {sizes[-1]} outputs")
    if x_val is not None:
        x_val, y_val = _check_xy(x_val, y_val, "validation data")
    prof = load_profile_arg(profile)
    input_shape = tuple(input_shape or (x.shape[1],))
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weights, history, qp = _train(x, y, x_val, y_val, sizes, hp, int(epochs), int(batch_size), int(seed),
                                      prof, input_shape, dataset_name, calib_samples, progress)
    train_time = time.perf_counter() - t0
    res = BpttResult(sizes, weights, hp, int(seed), int(epochs), int(batch_size), history, {}, train_time,
                     prof.name if prof is not None else None)
    xs = encode(x, hp.steps, hp.encoding, seed)
    res.accuracy["train"] = float((decisions(evaluate_chain(weights, xs, hp)[0]) == y).mean())
    if qp is not None:
        res.extra["quant"] = qp
        res.accuracy["deployed_train"] = float((decisions(evaluate_chain(weights, xs, hp, qp)[0]) == y).mean())
    if x_val is not None:
        xv = encode(x_val, hp.steps, hp.encoding, seed)
        res.accuracy["val"] = float((decisions(evaluate_chain(weights, xv, hp)[0]) == y_val).mean())
        if qp is not None:
            res.accuracy["deployed_val"] = float((decisions(evaluate_chain(weights, xv, hp, qp)[0]) == y_val).mean())
    return res


def _train(x, y, x_val, y_val, sizes, hp, epochs, batch_size, seed, prof, input_shape, dataset_name,
           calib_samples, progress):
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(seed % (1 << 64)).generate_state(1)[0]))
    # init: a spike through one weight moves v by about init_scale / sqrt(fan_in) thresholds
    ws = [((torch.rand(b, a, generator=g, dtype=torch.float64) * 2 - 1) * hp.init_scale / math.sqrt(a))
          .requires_grad_() for a, b in zip(sizes[:-1], sizes[1:])]
    dtype = torch.float64 if prof is not None else torch.float32
    spikes = torch.from_numpy(encode(x, hp.steps, hp.encoding, seed))
    labels = torch.from_numpy(y)
    calib = encode(x[:calib_samples], hp.steps, hp.encoding, seed) if prof is not None else None
    opt = torch.optim.Adam(ws, lr=hp.lr)
    n_hidden = sum(sizes[1:-1])
    history = {"epoch": [], "loss": [], "train_acc": [], "val_acc": [], "deployed_val_acc": [],
               "hidden_rate": [], "lr": [], "time_s": []}
    qp = None
    t0 = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc="BPTT", unit="epoch", disable=not progress, mininterval=0.5)
    xv = encode(x_val, hp.steps, hp.encoding, seed) if x_val is not None else None

    def export():
        return [w.detach().double().numpy().copy() for w in ws]

    for epoch in bar:
        lr = hp.lr * hp.lr_final ** ((epoch - 1) / max(epochs - 1, 1))
        for group in opt.param_groups:
            group["lr"] = lr
        if prof is not None and (epoch - 1) % hp.requant_every == 0:
            qp = quant_params(export(), hp, prof, calib, input_shape, dataset_name)
        perm = torch.randperm(len(y), generator=g)
        tot_loss, correct, hid = 0.0, 0, 0.0
        for start in range(0, len(y), batch_size):
            idx = perm[start:start + batch_size]
            sb = spikes[idx].permute(1, 0, 2).to(dtype).contiguous()
            out = forward([w.to(dtype) for w in ws], sb, hp, qp)
            loss = loss_of(out, labels[idx], hp, n_hidden)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot_loss += float(loss.detach()) * len(idx)
            correct += int((out["scores"].detach().argmax(1) == labels[idx]).sum())
            if n_hidden:
                hid += float(sum(c.detach().sum() for c in out["counts"][:-1])) / n_hidden
        history["epoch"].append(epoch)
        history["loss"].append(tot_loss / len(y))
        history["train_acc"].append(correct / len(y))
        history["hidden_rate"].append(hid / len(y))
        history["lr"].append(lr)
        val = dval = None
        if xv is not None:
            w64 = export()
            val = float((decisions(evaluate_chain(w64, xv, hp)[0]) == y_val).mean())
            if qp is not None:
                dval = float((decisions(evaluate_chain(w64, xv, hp, qp)[0]) == y_val).mean())
        history["val_acc"].append(val)
        history["deployed_val_acc"].append(dval)
        history["time_s"].append(round(time.perf_counter() - t0, 3))
        post = {"loss": f"{history['loss'][-1]:.3f}", "acc": f"{history['train_acc'][-1]:.3f}"}
        if val is not None:
            post["val"] = f"{val:.3f}"
        if dval is not None:
            post["dval"] = f"{dval:.3f}"
        bar.set_postfix(post)
    weights = export()
    if prof is not None:  # the deployed quantization of the final weights (what compile computes)
        qp = quant_params(weights, hp, prof, calib, input_shape, dataset_name)
    return weights, history, qp


# --------------------------------------------------------------------------------------------
# NIR


def chain_to_nir(weights, hp: BpttHyper, input_shape, dataset_name: str, accuracy: dict, trained_by: str,
                 seed: int, describe: dict | None = None) -> nir.NIRGraph:
    """``input -> fc1 -> lif1 -> ... -> fcL -> lifL (or LI) -> output``, metadata as
    :func:`snncompile.train.erbp.erbp_to_nir` (format, dt = 1, encoding, readout, run_steps)."""
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    shape = tuple(int(d) for d in np.atleast_1d(np.asarray(input_shape)))
    n_in = ws[0].shape[1]
    if math.prod(shape) != n_in:
        raise InvalidModel(f"input shape {shape} has {math.prod(shape)} features, layer fc1 takes {n_in}")
    li_out = hp.loss == "readout"
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    names = ["input"]
    for i, w in enumerate(ws, start=1):
        n = w.shape[0]
        nodes[f"fc{i}"] = nir.Affine(weight=w.copy(), bias=np.zeros(n, dtype=np.float64))
        if li_out and i == len(ws):
            nodes[f"lif{i}"] = nir.LI(tau=np.full(n, float(hp.tau_out)), r=np.full(n, float(hp.tau_out)),
                                      v_leak=np.zeros(n))
        elif hp.tau_syn:  # i = i (1 - 1/tau_syn) + q;  v = v (1 - 1/tau) + i
            nodes[f"lif{i}"] = nir.CubaLIF(tau_syn=np.full(n, float(hp.tau_syn)), tau_mem=np.full(n, float(hp.tau)),
                                           r=np.full(n, float(hp.tau)), w_in=np.full(n, float(hp.tau_syn)),
                                           v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
        else:
            nodes[f"lif{i}"] = nir.LIF(tau=np.full(n, float(hp.tau)), r=np.full(n, float(hp.tau)),
                                       v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
        names += [f"fc{i}", f"lif{i}"]
    nodes["output"] = nir.Output(output_type={"output": np.array([ws[-1].shape[0]])})
    names.append("output")
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata={}, type_check=True)
    set_meta(graph, {
        "format": FORMAT, "version": 1, "dt": 1.0,
        "encoding": {"type": hp.encoding, "steps": int(hp.steps), "seed": int(seed)},
        "readout": ({"type": "mean_v", "decision": "argmax, ties to the lowest index"} if li_out else
                    {"type": "count", "decision": "argmax, ties to the lowest index"}),
        "run_steps": int(hp.steps) + len(ws), "delay_per_connection": 1, "data_shape": list(shape),
        "trained_by": trained_by, trained_by: describe or hp.to_dict(), "dataset": dataset_name,
        "accuracy": dict(accuracy),
    })
    return graph


def bptt_to_nir(result: BpttResult, input_shape, dataset_name: str) -> nir.NIRGraph:
    return chain_to_nir(result.weights, result.hyper, input_shape, dataset_name, result.accuracy, result.method,
                        result.seed, result.describe())


__all__ = ["BpttHyper", "BpttResult", "LOSSES", "QParams", "SpikeFn", "bptt_to_nir", "chain_to_nir", "decisions",
           "evaluate_chain", "forward", "loss_of", "quant_params", "train_bptt"]
