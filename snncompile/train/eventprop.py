r"""EventProp (Wunderlich & Pehle 2021) for feed-forward current-based LIF networks, continuous time,
exact spike times, first-spike-time loss.

Model (time in units of tau_syn; tau_mem = 2 tau_syn, the case with a closed-form spike time,
Göltz et al. 2021).  Neuron k of a layer receives the spikes t_i of the previous layer (input: a
latency code, below; every layer also gets one *bias spike* at t = 0 with a trained weight, as in
Göltz et al.) and a constant bias b_k on its membrane switched on at t0 = -dt, and fires when its
potential first crosses theta = 1 upwards:

    tau_syn dI/dt = -I + tau_syn sum_i w_ki delta(t - t_i),   tau_mem dV/dt = -V + I + b [t > t0]
    => V_k(t) = sum_{t_i < t} w_ki kappa(t - t_i) + b_k beta(t - t0),
       kappa(s) = exp(-s / tau_mem) - exp(-s / tau_syn),   beta(s) = 1 - exp(-s / tau_mem)

(the NIR ``CubaLIF`` with the bias as ``v_leak``; :mod:`.eventprop_deploy` writes it).  Each neuron
fires **at most once** (time-to-first-spike coding; the adjoint has one jump per neuron).  With
x = exp(-t / tau_mem) and the inputs sorted, on the interval after the first m inputs

    V = b + a x - q x^2,  a = sum w e^{t_i / tau_mem} - b c,  q = sum w e^{2 t_i / tau_mem},
    c = e^{t0 / tau_mem},

so the first upward crossing (dV/dt > 0, i.e. dV/dx < 0) is the root x* = (a + sqrt(D)) / (2 q),
D = a^2 + 4 q (b - theta) (computed as 2 (theta - b) / (a - sqrt(D)) when a < 0), t = -tau_mem ln x*,
on the earliest interval (the first starts at t0) where it is real, positive and inside the
interval: exact, no time grid.

Input code: x in [0, 1] spikes at t = dt round((1 - x)(steps - 1)) (x = 0 never), dt = t_in /
(steps - 1): the deployed latency encoder's grid (:func:`snncompile.encode.encode`).  The bias
onset t0 = -dt is the deployed one (the membrane bias acts from step 1, which shows V at t = 0).

Gradient: EventProp's adjoint, in the form it takes for single-spike neurons.  Between events the
adjoint decays freely and only its values at spike times enter; its jump at the spike of k is
(dL/dt_k) / Vdot_k, Vdot_k = sum_i w_ki kappa'(t_k - t_i) + b_k beta'(t_k - t0), and

    dL/dw_ki = -(dL/dt_k) kappa(t_k - t_i) / Vdot_k,   dL/db_k = -(dL/dt_k) beta(t_k - t0) / Vdot_k,
    dL/dt_i += (dL/dt_k) w_ki kappa'(t_k - t_i) / Vdot_k       (i causal: t_i < t_k),

propagated layer by layer backwards (:class:`SpikeTimes`.backward, no autograd through the closed
form).  |Vdot| is floored at ``vdot_min`` (a grazing crossing has an unbounded gradient; tests
check the gradient against finite differences away from that case).

Loss (as in the EventProp paper's Yin-Yang task): cross-entropy of softmax(-t_out / tau0) plus
alpha (exp(t_label / tau1) - 1) plus ``late`` mean(max(0, t_label - t_end)^2), t_end = (steps +
layers - 1) dt the last time the deployed run shows (a later output spike is not seen on the
chip); a silent output counts as t = t_silent (no gradient).  A silent neuron has no gradient:
after each Adam step, *weight bumping* (Göltz et al. 2021) adds ``bump`` times the share of the
batch on which an output neuron was silent to all its input weights, and ``bump`` to those of
hidden neurons silent on the whole batch (bumping only silent *label* outputs let the outputs go
silent: 78 % on validation).  The decision is the earliest output spike (ties: lowest index; all
silent: class 0).  Weights: (out, in + 2) per layer: inputs, bias-spike weight, membrane bias b.

The deployed graph fires a neuron at the first step whose grid time (n - 1) dt shows V > theta,
i.e. at ceil(t / dt) dt, and its spike reaches the next layer then (:mod:`.eventprop_deploy`):
the *grid model* (:func:`on_grid` after every layer, output ties to the lowest index) is what the
NIR reference runs, sample for sample up to a few neurons whose V blips above theta between grid
points.  The best validation epoch is chosen on the grid model (``val_acc``).  Training through it
(``time_grid``, straight-through gradient) helped seed 1 but cost seed 0 1.2 points on validation
(80 epochs: 96.9 / 96.9 % against 98.1 / 96.5 % continuous), so the float training is continuous
and the fine-tuning on the chip's grid (:func:`.eventprop_deploy.finetune_on_grid`) uses it.
Seeds land in different optima (the best validation epoch on the grid model, 80 epochs, 81
steps: 98.1 / 96.5 / 97.3 % for seeds 0 / 1 / 2, and with 114 steps 97.8 / 97.6 / 95.0 %), so
``train_eventprop`` trains ``RESTARTS`` random starts and keeps the best on validation (after
fine-tuning on the loihi2 grid with split connections, validation, seeds 0 / 1 / 2: 97.8 / 97.8 /
97.5 %; with tau0 = 0.1 98.2 / 97.5 / 97.7 %, and unsplit 2 starts 97.5 / 96.4 / 96.7 %, 4 starts
97.5 / 97.3 / 96.4 %; :mod:`.eventprop_deploy`).
Tried on validation and not kept: 114 or 121 steps (finer time grid; 121: 98.2 / 97.5 / 96.1 %,
and after fine-tuning fxsim up to 1.3 points below the reference: the 12-bit decays round worse),
a softmax margin of 2 dt on the label's time (97.5 / 97.3 / 96.2 %), lr_final 0.01 (seed 1: 96.2 %);
on seed 2's starts 2 and 2002 (80 epochs, validation on the grid model, best epoch / mean of the
last 10; default 97.3 / 96.6 % and 97.6 / 96.6 %): batch 32 96.8 / 95.8 % (start 2), lr 1e-3
95.5 / 95.2 % and 95.4 / 94.7 %, lr 6e-3 88.1 / 86.3 % and 96.9 / 96.1 %, vdot_min 0.01 97.8 /
96.4 % and 97.3 / 96.4 %; 160 epochs: the continuous model gains a little (last epoch, start 2:
97.0 -> 97.2 %) but 3.4 % of the label spikes fall after the deployed run's end (grid model 94.6 %),
and with late = 10 they stay inside at 96.1 / 97.0 % (last epoch) - no better than 80 epochs; the
mean weights of epochs 60-80 (stochastic weight averaging), starts 2 / 2002 / 1 / 0: 96.1 / 96.4 /
95.8 / 97.4 % against 97.3 / 97.6 / 96.5 / 98.1 % for the best epoch.
Defaults picked on the Yin-Yang validation split (4-120-3, 50 epochs, best epoch): tau0 0.2 ->
0.1: 96.5 -> 96.8 %, then (80 epochs, starts 2 / 2002 / 1 / 0, grid model, mean over the starts
of the last 10 epochs' accuracy) 0.1 -> 0.05 -> 0.025: 96.46 -> 96.88 -> 97.05 % (of the best
epoch: 97.38 -> 97.68 -> 97.73 %; the sharper softmax trains margins of about one dt, the
deployed grid's resolution; continuous train accuracy, last 10 epochs, starts 2 / 2002 / 1:
97.1 -> 98.0 %); late 0 -> 1 keeps the first output spike inside the deployed run (seed 1:
92.4 -> 93.9 % counted in the window); 41 -> 81 steps halves dt (reference agreement 95.8 ->
98.4 %, 30 epochs).  Deployment: :mod:`.eventprop_deploy` (exact Euler parameters, single-spike
inhibition, a "clock" neuron for the bias spike) writes the graph ``snncompile compile`` runs.

Longer than 400 lines: the exact forward pass, its adjoint, the grid model and the trainer that
uses all three belong together.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InvalidModel

TAU_SYN = 1.0
TAU_MEM = 2.0
RESTARTS = 4      # train_eventprop: random starts, the best on validation kept (module docstring)


@dataclass(frozen=True)
class EventPropHyper:
    t_in: float = 2.0          # input window (units of tau_syn): x in [0, 1] spikes at ~ t_in (1 - x)
    steps: int = 81            # deployment grid: latency-code steps (dt = t_in / (steps - 1))
    theta: float = 1.0
    tau0: float = 0.025        # loss: softmax temperature on first-spike times (= dt at 81 steps)
    tau1: float = 6.4          # regularizer time constant
    alpha: float = 0.0         # regularizer weight
    t_silent: float = 10.0     # time used for a silent output in the loss
    lr: float = 3e-3
    lr_final: float = 0.1
    init_mean: float = 0.5     # W ~ 4 N(init_mean, init_std^2) / sqrt(fan_in + 1) (bias spike included); b = 0
    init_std: float = 2.0
    vdot_min: float = 0.05      # floor on |dV/dt| at a spike in the gradient (grazing crossings)
    late: float = 1.0           # loss: weight of the penalty on label spikes after the deployed run's end
    bump: float = 5e-3          # weight bumping: output neurons + bump * (share of the batch they are silent on),
    #                             hidden neurons silent on the whole batch + bump, on all their input weights
    time_grid: bool = False     # training: spike times rounded up to the deployment grid in the forward pass
    split: bool = True          # deployment: the trained connections get a residual connection on Loihi
    #                             (quantize/lif.py precision split; eventprop_deploy)

    def check(self) -> EventPropHyper:
        for name in ("t_in", "theta", "tau0", "tau1", "t_silent", "lr", "vdot_min", "init_std"):
            if not getattr(self, name) > 0:
                raise InvalidModel(f"EventProp hyper-parameter {name}={getattr(self, name)!r}: must be > 0")
        if int(self.steps) != self.steps or self.steps < 2:
            raise InvalidModel(f"EventProp hyper-parameter steps={self.steps!r}: needs an integer >= 2")
        if not 0 < self.lr_final <= 1:
            raise InvalidModel(f"EventProp hyper-parameter lr_final={self.lr_final!r}: must be in (0, 1]")
        return self

    @property
    def dt(self) -> float:
        """The deployment time step (units of tau_syn)."""
        return self.t_in / (self.steps - 1)

    @property
    def t0(self) -> float:
        """Bias onset (module docstring)."""
        return -self.dt

    def t_end(self, layers: int) -> float:
        """The last time the deployed run (steps + layers steps) shows at the output."""
        return (self.steps + layers - 1) * self.dt

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class EventPropResult:
    sizes: tuple               # (n_in, hidden..., n_out)
    weights: list              # float64 (out, in + 2) per layer: inputs, bias spike weight, membrane bias b
    hyper: EventPropHyper
    seed: int
    epochs: int
    batch_size: int
    history: dict
    accuracy: dict
    train_time_s: float
    profile: str | None = None
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {**self.hyper.to_dict(), "method": "eventprop", "sizes": list(self.sizes), "seed": self.seed,
                "epochs": self.epochs, "batch_size": self.batch_size, "profile": self.profile,
                "tau_syn": TAU_SYN, "tau_mem": TAU_MEM, "bias_onset": self.hyper.t0,
                "train_time_s": round(self.train_time_s, 3)}


def kappa(s):
    return torch.exp(-s / TAU_MEM) - torch.exp(-s / TAU_SYN)


def kappa_dot(s):
    return -torch.exp(-s / TAU_MEM) / TAU_MEM + torch.exp(-s / TAU_SYN) / TAU_SYN


def spike_times_forward(t_in, w, theta: float, b=None, t0: float = 0.0):
    """Exact first spike times (B, n_out) of neurons with weights ``w`` (n_out, n_in) and bias
    biases ``b`` (n_out,) switched on at ``t0`` (<= every input time) given input times ``t_in``
    (B, n_in) (inf: no spike); inf where a neuron never fires."""
    nb, n_in = t_in.shape
    n_out = w.shape[0]
    b = torch.zeros(n_out, dtype=w.dtype) if b is None else b
    order = torch.argsort(t_in, dim=1)
    ts = torch.gather(t_in, 1, order)                                   # (B, n_in) sorted
    finite = torch.isfinite(ts)
    tsf = torch.where(finite, ts, torch.zeros_like(ts))
    ws = w[:, order].permute(1, 0, 2) * finite[:, None, :]              # (B, n_out, n_in)
    e1 = torch.exp(tsf / TAU_MEM)[:, None, :]
    zero = torch.zeros((nb, n_out, 1), dtype=w.dtype)
    big_a = torch.cat([zero, torch.cumsum(ws * e1, dim=2)], dim=2)      # interval m: the first m inputs
    big_b = torch.cat([zero, torch.cumsum(ws * e1 * e1, dim=2)], dim=2)
    c = math.exp(t0 / TAU_MEM)
    bb = b[None, :, None]
    a = big_a - bb * c
    q = big_b
    c0 = bb - theta
    disc = a * a + 4 * q * c0
    sq = torch.sqrt(torch.clamp(disc, min=0))
    pos = a >= 0
    num = torch.where(pos, a + sq, -2 * c0)
    den = torch.where(pos, 2 * q, a - sq)
    ok = (disc >= 0) & (den != 0)
    xs = num / torch.where(ok, den, torch.ones_like(den))
    ok = ok & (xs > 0)
    t = -TAU_MEM * torch.log(torch.where(ok, xs, torch.ones_like(xs)))
    start = torch.cat([torch.full((nb, 1), float(t0), dtype=ts.dtype), ts], dim=1)[:, None, :]
    end = torch.cat([ts, torch.full((nb, 1), math.inf, dtype=ts.dtype)], dim=1)[:, None, :]
    ok = ok & torch.isfinite(start) & (t >= start) & (t < end)
    t = torch.where(ok, t, torch.full_like(t, math.inf))
    return t.min(dim=2).values


class SpikeTimes(torch.autograd.Function):
    """Forward: :func:`spike_times_forward`.  Backward: EventProp's jump conditions (module docstring)."""

    @staticmethod
    def forward(ctx, t_in, w, b, theta, vdot_min, t0):
        t_out = spike_times_forward(t_in, w, theta, b, t0)
        ctx.save_for_backward(t_in, w, b, t_out)
        ctx.vdot_min, ctx.t0 = vdot_min, t0
        return t_out

    @staticmethod
    def backward(ctx, grad_out):
        t_in, w, b, t_out = ctx.saved_tensors
        fired = torch.isfinite(t_out)                                      # (B, n_out)
        s = t_out[:, :, None] - t_in[:, None, :]                           # (B, n_out, n_in)
        causal = fired[:, :, None] & torch.isfinite(t_in)[:, None, :] & (s > 0)
        s = torch.where(causal, s, torch.ones_like(s))
        k = torch.where(causal, kappa(s), torch.zeros_like(s))
        kd = torch.where(causal, kappa_dot(s), torch.zeros_like(s))
        y = torch.exp(-torch.where(fired, t_out - ctx.t0, torch.zeros_like(t_out)) / TAU_MEM)
        beta = torch.where(fired, 1 - y, torch.zeros_like(y))
        beta_dot = torch.where(fired, y / TAU_MEM, torch.zeros_like(y))
        vdot = (w[None] * kd).sum(2) + b[None] * beta_dot                  # (B, n_out)
        vdot = torch.where(vdot.abs() < ctx.vdot_min, torch.full_like(vdot, ctx.vdot_min), vdot)
        g = torch.where(fired, grad_out, torch.zeros_like(grad_out)) / vdot   # jump of the adjoint
        grad_w = -(g[:, :, None] * k).sum(0)
        grad_b = -(g * beta).sum(0)
        grad_t = (g[:, :, None] * w[None] * kd).sum(1)
        return grad_t, grad_w, grad_b, None, None, None


def input_times(x, hp: EventPropHyper):
    """(N, n_in + 1) float64 times: the latency code on the deployment grid (module docstring),
    then the bias spike at 0."""
    x = np.clip(np.asarray(x, dtype=np.float64).reshape(len(x), -1), 0.0, 1.0)
    k = np.round((1.0 - x) * (hp.steps - 1))   # the encoder's step index (snncompile.encode.encode)
    t = np.where(x > 0, k * hp.dt, np.inf)
    return torch.as_tensor(np.concatenate([t, np.zeros((len(t), 1))], axis=1))


def on_grid(t, dt: float):
    """Spike times rounded up to the grid, ceil(t / dt) dt: the time of the step at which the
    deployed neuron fires (:mod:`.eventprop_deploy`), the gradient passed straight through; inf stays."""
    fin = torch.isfinite(t)
    tf = torch.where(fin, t, torch.zeros_like(t))
    return torch.where(fin, tf + (torch.ceil(tf / dt - 1e-9) * dt - tf).detach(), t)


def network_times(weights, t0, hp: EventPropHyper, grid: bool | None = None):
    """Spike times of every layer (list of (B, n) tensors; on the grid (:func:`on_grid`) with
    ``grid``, default ``hp.time_grid``); weights (out, in + 2): inputs, bias spike, membrane bias.
    ``t0``: :func:`input_times`."""
    out, t = [], t0
    grid = hp.time_grid if grid is None else grid
    for i, w in enumerate(weights):
        t = SpikeTimes.apply(t, w[:, :-1], w[:, -1], hp.theta, hp.vdot_min, hp.t0)
        if grid:
            t = on_grid(t, hp.dt)
        out.append(t)
        if i < len(weights) - 1:
            t = torch.cat([t, torch.zeros(len(t), 1, dtype=t.dtype)], dim=1)
    return out


def first_spike_loss(t_out, y, hp: EventPropHyper, layers: int = 2):
    t = torch.where(torch.isfinite(t_out), t_out, torch.full_like(t_out, hp.t_silent).detach())
    ce = torch.nn.functional.cross_entropy(-t / hp.tau0, y)
    tl = t.gather(1, y[:, None])[:, 0]
    loss = ce + hp.alpha * (torch.exp(tl / hp.tau1) - 1).mean()
    if hp.late:
        loss = loss + hp.late * (torch.clamp(tl - hp.t_end(layers), min=0) ** 2).mean()
    return loss


def decide_first(t_out) -> np.ndarray:
    """Earliest output spike wins (ties: lowest index; all silent: class 0)."""
    t = np.asarray(t_out, dtype=np.float64)
    t = np.where(np.isfinite(t), t, np.inf)
    return t.argmin(axis=1)


def _init(sizes, hp, g):
    ws = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        fan = a + 1
        w = (torch.randn(b, fan, generator=g, dtype=torch.float64) * hp.init_std + hp.init_mean) * 4.0 / math.sqrt(fan)
        ws.append(torch.cat([w, torch.zeros(b, 1, dtype=w.dtype)], dim=1).requires_grad_())
    return ws


def _fake_quant(quant_steps, quant_bounds=None):
    """The forward weights of :func:`train_eventprop` (identity without ``quant_steps``)."""
    if quant_steps is None:
        return lambda ws: ws
    steps = [torch.as_tensor(np.asarray(q, dtype=np.float64)) for q in quant_steps]
    bounds = [torch.full_like(q, math.inf) for q in steps] if quant_bounds is None else \
        [torch.as_tensor(np.asarray(b, dtype=np.float64)) for b in quant_bounds]

    def apply(ws):
        out = []
        for w, q, b in zip(ws, steps, bounds):
            safe = torch.where(q > 0, q, torch.ones_like(q))
            wc = torch.maximum(torch.minimum(w, b), -b)
            out.append(w + (torch.where(q > 0, torch.round(wc / safe) * safe, wc) - w).detach())
        return out

    return apply


def train_eventprop(x_train, y_train, *, arch, epochs: int, batch_size: int = 64, seed: int = 0, profile=None,
                    x_val=None, y_val=None, dataset_name: str = "", progress: bool = True, keep_best: bool = True,
                    init_weights=None, quant_steps=None, quant_bounds=None, restarts: int = RESTARTS,
                    **hyper) -> EventPropResult:
    """Train with EventProp (module docstring).  ``profile``: only recorded for the deployed
    evaluation (training is float, continuous time).  With validation data and ``keep_best``, the
    weights returned are those of the epoch with the best validation accuracy (``val_acc``: the grid
    model, as the deployed graph runs, output spikes after its end count as silent; the earliest
    epoch on ties;
    ``history["best_epoch"]``), else those of the last epoch.

    Fine-tuning for the chip: ``init_weights`` (a trained result's weights) replace the random
    start, and ``quant_steps`` (per layer, one step per weight column, 0: not quantized; from
    :func:`snncompile.train.eventprop_deploy.deployed_steps`) make the forward pass use the weights
    rounded to that grid, w + (round(w / step) step - w) with the gradient passed straight through
    to w; ``quant_bounds`` (same shapes, inf: none) clip the weights to +-bound before rounding
    (the gradient still passes straight through).  The weights returned are then the rounded ones.

    ``restarts`` (with validation data, ``keep_best`` and a random start): train from that many
    random starts, seeds ``seed + 1000 k``, and return the run with the best validation accuracy
    (``extra["restart_val"]``, ``extra["train_seed"]``; the time is the total)."""
    if int(restarts) != restarts or restarts < 1:
        raise InvalidModel(f"train_eventprop restarts={restarts!r}: needs an integer >= 1")
    if restarts > 1 and x_val is not None and keep_best and init_weights is None:
        runs = [train_eventprop(x_train, y_train, arch=arch, epochs=epochs, batch_size=batch_size,
                                seed=seed + 1000 * k, profile=profile, x_val=x_val, y_val=y_val,
                                dataset_name=dataset_name, progress=progress, restarts=1, **hyper)
                for k in range(int(restarts))]
        vals = [max(v for v in r.history["val_acc"]) for r in runs]
        best = runs[int(np.argmax(vals))]
        best.extra.update(restart_val=vals, train_seed=best.seed)
        best.seed, best.train_time_s = int(seed), sum(r.train_time_s for r in runs)
        return best
    known = {f.name for f in dataclasses.fields(EventPropHyper)}
    unknown = sorted(set(hyper) - known)
    if unknown:
        raise InvalidModel(f"unknown EventProp hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hp = EventPropHyper(**hyper).check()
    x = np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1)
    y = np.asarray(y_train).astype(np.int64)
    try:
        sizes = tuple(int(t) for t in arch.split("-")) if isinstance(arch, str) else tuple(arch)
    except ValueError:
        raise InvalidModel(f"arch {arch!r}: EventProp trains fully connected chains like 4-120-3") from None
    if len(sizes) < 2 or sizes[0] != x.shape[1]:
        raise InvalidModel(f"arch {arch!r}: the first size must equal the {x.shape[1]} input features")
    if x.min() < 0 or x.max() > 1:
        raise InvalidModel("EventProp inputs must lie in [0, 1] (latency code)")
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(seed % (1 << 64)).generate_state(1)[0]))
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ws = _init(sizes, hp, g) if init_weights is None else \
            [torch.tensor(np.asarray(w, dtype=np.float64)).requires_grad_() for w in init_weights]
        fq = _fake_quant(quant_steps, quant_bounds)
        opt = torch.optim.Adam(ws, lr=hp.lr)
        tin = input_times(x, hp)
        yt = torch.from_numpy(y)
        history = {"epoch": [], "loss": [], "train_acc": [], "val_acc": [], "silent_out": [], "time_s": []}
        best = None
        bar = tqdm(range(1, epochs + 1), desc="EventProp", unit="epoch", disable=not progress, mininterval=0.5)
        for epoch in bar:
            lr = hp.lr * hp.lr_final ** ((epoch - 1) / max(epochs - 1, 1))
            for group in opt.param_groups:
                group["lr"] = lr
            perm = torch.randperm(len(y), generator=g)
            tot, correct, silent = 0.0, 0, 0.0
            for s in range(0, len(y), batch_size):
                idx = perm[s:s + batch_size]
                times = network_times(fq(ws), tin[idx], hp)
                tout = times[-1]
                loss = first_spike_loss(tout, yt[idx], hp, len(ws))
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():  # weight bumping (Göltz et al. 2021): revive silent neurons
                    for li, (w, t_l) in enumerate(zip(ws, times)):
                        share = (~torch.isfinite(t_l.detach())).to(w.dtype).mean(0)   # silent share of the batch
                        if li < len(ws) - 1:
                            share = (share == 1).to(w.dtype)                         # hidden: dead neurons only
                        w += hp.bump * share[:, None]
                tot += float(loss.detach()) * len(idx)
                correct += int((torch.from_numpy(decide_first(tout.detach().numpy())) == yt[idx]).sum())
                silent += float((~torch.isfinite(tout.detach())).all(1).sum())
            history["epoch"].append(epoch)
            history["loss"].append(tot / len(y))
            history["train_acc"].append(correct / len(y))
            history["silent_out"].append(silent / len(y))
            val = None
            if x_val is not None:
                wv = [w.detach() for w in fq(ws)]
                val = float((predict_continuous(wv, x_val, hp, window=True, grid=True) == np.asarray(y_val)).mean())
                if keep_best and (best is None or val > best[0]):
                    best = (val, epoch, [w.numpy().copy() for w in wv])
            history["val_acc"].append(val)
            history["time_s"].append(round(time.perf_counter() - t0, 3))
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", acc=f"{history['train_acc'][-1]:.3f}",
                            val="-" if val is None else f"{val:.3f}")
    weights = [w.detach().numpy().copy() for w in fq(ws)]
    if best is not None:
        history["best_epoch"] = best[1]
        weights = best[2]
    res = EventPropResult(sizes, weights, hp, int(seed), int(epochs), int(batch_size), history, {},
                          time.perf_counter() - t0, None if profile is None else str(profile))
    res.accuracy["train"] = float((predict_continuous(weights, x, hp) == y).mean())
    if x_val is not None:
        res.accuracy["val"] = float((predict_continuous(weights, x_val, hp) == np.asarray(y_val)).mean())
    return res


def continuous_times(weights, x, hp: EventPropHyper, batch_size: int = 1000, grid: bool = False) -> list:
    """Spike times of every layer of the continuous model (with ``grid``: on the deployment grid,
    :func:`on_grid`), as (N, n) float64 arrays (inf: silent)."""
    ws = [torch.as_tensor(np.asarray(w, dtype=np.float64)) for w in weights]
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    parts = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            parts.append([t.numpy() for t in network_times(ws, input_times(x[s:s + batch_size], hp), hp, grid)])
    return [np.concatenate([p[i] for p in parts]) for i in range(len(ws))]


def predict_continuous(weights, x, hp: EventPropHyper, batch_size: int = 1000, spikes: bool = False,
                       window: bool = False, grid: bool = False):
    """Decisions of the continuous-time model (and, with ``spikes``, spikes per neuron per sample);
    with ``window``, output spikes after the deployed run's end (``hp.t_end``) count as silent; with
    ``grid``, every spike on the deployment grid (ties: lowest index), as the deployed graph runs."""
    times = continuous_times(weights, x, hp, batch_size, grid)
    t_out = np.where(times[-1] <= hp.t_end(len(times)), times[-1], np.inf) if window else times[-1]
    d = decide_first(t_out)
    if spikes:
        fired = sum(float(np.isfinite(t).sum()) for t in times)
        return d, fired / len(d) / sum(t.shape[1] for t in times)
    return d


__all__ = ["EventPropHyper", "EventPropResult", "SpikeTimes", "continuous_times", "decide_first",
           "first_spike_loss", "input_times", "kappa", "kappa_dot", "network_times", "predict_continuous",
           "spike_times_forward", "train_eventprop"]
