r"""EventProp (Wunderlich & Pehle 2021) for feed-forward current-based LIF networks, continuous time,
exact spike times, first-spike-time loss.

Model (time in units of tau_syn; tau_mem = 2 tau_syn, the case with a closed-form spike time,
Göltz et al. 2021).  Neuron k of a layer receives the spikes t_i of the previous layer (input: a
latency code t_i = t_in (1 - x_i), x_i = 0 never spikes, plus one bias spike at t = 0 with a
trained weight) and fires when its potential first crosses theta = 1 upwards:

    tau_syn dI/dt = -I + tau_syn sum_i w_ki delta(t - t_i),   tau_mem dV/dt = -V + r I,  r = 1
    => V_k(t) = sum_{t_i < t} w_ki kappa(t - t_i),  kappa(s) = exp(-s / tau_mem) - exp(-s / tau_syn)

(the NIR ``CubaLIF`` with tau_syn = 1, tau_mem = 2, r = w_in = 1, v_threshold = 1).  Each neuron
fires **at most once** (time-to-first-spike coding; the adjoint then has one jump per neuron).
With the inputs sorted, on the interval after the first m inputs V = A x - B x^2 with
x = exp(-t / tau_mem), A = sum w e^{t_i / tau_mem}, B = sum w e^{2 t_i / tau_mem}, so the first
upward crossing is t = tau_mem ln(2B / (A + sqrt(A^2 - 4 B theta))) on the earliest interval where
it is real (B > 0) and lies inside the interval (exact, no time grid).

Gradient: EventProp's adjoint, in the form it takes for single-spike neurons.  Between events the
adjoint (lambda_V, lambda_I) decays freely and only its values at spike times enter; its jump at
the spike of k is (dL/dt_k) / Vdot_k, Vdot_k = sum_i w_ki kappa'(t_k - t_i), and the results are

    dL/dw_ki = -(dL/dt_k) kappa(t_k - t_i) / Vdot_k,
    dL/dt_i += (dL/dt_k) w_ki kappa'(t_k - t_i) / Vdot_k       (i causal: t_i < t_k),

propagated layer by layer backwards (:class:`SpikeTimes`.backward computes exactly these; no
autograd through the closed form).  |Vdot| is floored at ``vdot_min`` (a grazing crossing has an
unbounded gradient; tests check the gradient against finite differences away from that case).

Loss (as in the EventProp paper's Yin-Yang task): cross-entropy of softmax(-t_out / tau0) plus
alpha (exp(t_label / tau1) - 1); a silent output counts as t = t_silent (no gradient).  A silent
neuron has no spike time and so no gradient: after each Adam step, *weight bumping* (Göltz et al.
2021) adds ``bump`` times the share of the batch on which an output neuron was silent to all its
input weights, and ``bump`` to those of hidden neurons silent on the whole batch (without it,
measured on Yin-Yang at lr 5e-3, the outputs went silent after 13 epochs and accuracy fell to
chance).  Defaults (lr 3e-3, tau0 0.2, alpha 0, init N(0.5, 2^2)) were picked on the Yin-Yang
validation split (10 epochs: 90.0 %; lr 1e-3, tau0 0.5, init N(1.5, 1): 74 % after 15 epochs on
2,000 samples).

Deployment.  The graph written is NIR CubaLIF at dt = t_in / (steps - 1) with a latency code of
``steps`` steps (the bias spike is one more input that spikes at step 0: the graph's input has
n_in + 1 channels, the extra one fed by ``x = 1``).  Discrete-time Euler dynamics, one step of delay
per connection and Loihi's reset-to-0 (hidden neurons may fire again) differ from the trained
model: :func:`evaluate_eventprop` measures the float continuous model and, with a profile, the
deployed fxsim run decided by the earliest output spike (ties and silence: lowest index of the
earliest; all silent: class 0), and reports their agreement.

Measured (``python benchmarks/lif_training.py --methods eventprop``, Yin-Yang 4-120-3, seed 0,
30 epochs, batch 64, 2 shared CPU cores, 231-296 s): continuous model test 95.1 % with 0.68
spikes per neuron; deployed on loihi2 fxsim 82.9 % at 41 steps (agreement 83.2 %), 84.8 % at 81
steps, 84.3 % at 161 steps.  After 10 epochs (88.8 %): the float NIR reference (Euler, reset to 0)
gives 84.2 %, fxsim 83.9 %: the loss comes from the discrete LIF with reset (hidden neurons fire
again, which the single-spike model excludes), not from quantization or the time step.

Longer than 400 lines: the exact spike times, their adjoint, the training loop and the deployed
graph share one time convention (this docstring); split, each part would need the others'.
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

from ..errors import InvalidModel
from ..ir import set_meta

TAU_SYN = 1.0
TAU_MEM = 2.0
FORMAT = "snncompile-lif"


@dataclass(frozen=True)
class EventPropHyper:
    t_in: float = 2.0          # input window (units of tau_syn): x in [0, 1] spikes at t_in (1 - x)
    steps: int = 41            # deployment: latency-code steps (dt = t_in / (steps - 1))
    theta: float = 1.0
    tau0: float = 0.2          # loss: softmax temperature on first-spike times
    tau1: float = 6.4          # regularizer time constant
    alpha: float = 0.0         # regularizer weight (0: measured better here, see the benchmark)
    t_silent: float = 10.0     # time used for a silent output in the loss
    lr: float = 3e-3
    lr_final: float = 0.1
    init_mean: float = 0.5     # W ~ 4 N(init_mean, init_std^2) / sqrt(fan_in + 1)
    init_std: float = 2.0
    vdot_min: float = 0.05      # floor on |dV/dt| at a spike in the gradient (grazing crossings)
    bump: float = 5e-3          # weight bumping: output neurons + bump * (share of the batch they are silent on),
    #                             hidden neurons silent on the whole batch + bump, on all their input weights

    def check(self) -> EventPropHyper:
        for name in ("t_in", "theta", "tau0", "tau1", "t_silent", "lr", "vdot_min", "init_std"):
            if not getattr(self, name) > 0:
                raise InvalidModel(f"EventProp hyper-parameter {name}={getattr(self, name)!r}: must be > 0")
        if int(self.steps) != self.steps or self.steps < 2:
            raise InvalidModel(f"EventProp hyper-parameter steps={self.steps!r}: needs an integer >= 2")
        if not 0 < self.lr_final <= 1:
            raise InvalidModel(f"EventProp hyper-parameter lr_final={self.lr_final!r}: must be in (0, 1]")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class EventPropResult:
    sizes: tuple               # (n_in (without the bias input), hidden..., n_out)
    weights: list              # float64 (out, in + 1) per layer: the last column is the bias spike's weight
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
                "tau_syn": TAU_SYN, "tau_mem": TAU_MEM, "train_time_s": round(self.train_time_s, 3)}


def kappa(s):
    return torch.exp(-s / TAU_MEM) - torch.exp(-s / TAU_SYN)


def kappa_dot(s):
    return -torch.exp(-s / TAU_MEM) / TAU_MEM + torch.exp(-s / TAU_SYN) / TAU_SYN


def spike_times_forward(t_in, w, theta: float):
    """Exact first spike times (B, n_out) of neurons with weights ``w`` (n_out, n_in) given input
    times ``t_in`` (B, n_in) (inf: no spike); inf where a neuron never fires."""
    b, n_in = t_in.shape
    order = torch.argsort(t_in, dim=1)
    ts = torch.gather(t_in, 1, order)                                   # (B, n_in) sorted
    finite = torch.isfinite(ts)
    tsf = torch.where(finite, ts, torch.zeros_like(ts))
    ws = w[:, order].permute(1, 0, 2) * finite[:, None, :]              # (B, n_out, n_in)
    e1 = torch.exp(tsf / TAU_MEM)[:, None, :]
    a = torch.cumsum(ws * e1, dim=2)
    bq = torch.cumsum(ws * e1 * e1, dim=2)
    disc = a * a - 4 * bq * theta
    ok = (bq > 0) & (disc >= 0)
    safe_b = torch.where(ok, bq, torch.ones_like(bq))
    den = a + torch.sqrt(torch.clamp(disc, min=0))
    ok = ok & (den > 0)
    t = TAU_MEM * torch.log(2 * safe_b / torch.where(ok, den, torch.ones_like(den)))
    nxt = torch.cat([ts[:, 1:], torch.full((b, 1), math.inf, dtype=ts.dtype)], dim=1)[:, None, :]
    ok = ok & finite[:, None, :] & (t >= ts[:, None, :]) & (t < nxt)
    t = torch.where(ok, t, torch.full_like(t, math.inf))
    return t.min(dim=2).values


class SpikeTimes(torch.autograd.Function):
    """Forward: :func:`spike_times_forward`.  Backward: EventProp's jump conditions (module docstring)."""

    @staticmethod
    def forward(ctx, t_in, w, theta, vdot_min):
        t_out = spike_times_forward(t_in, w, theta)
        ctx.save_for_backward(t_in, w, t_out)
        ctx.vdot_min = vdot_min
        return t_out

    @staticmethod
    def backward(ctx, grad_out):
        t_in, w, t_out = ctx.saved_tensors
        fired = torch.isfinite(t_out)                                      # (B, n_out)
        s = t_out[:, :, None] - t_in[:, None, :]                           # (B, n_out, n_in)
        causal = fired[:, :, None] & torch.isfinite(t_in)[:, None, :] & (s > 0)
        s = torch.where(causal, s, torch.ones_like(s))
        k = torch.where(causal, kappa(s), torch.zeros_like(s))
        kd = torch.where(causal, kappa_dot(s), torch.zeros_like(s))
        vdot = (w[None] * kd).sum(2)                                       # (B, n_out)
        vdot = torch.where(vdot.abs() < ctx.vdot_min, torch.full_like(vdot, ctx.vdot_min), vdot)
        g = torch.where(fired, grad_out, torch.zeros_like(grad_out)) / vdot   # jump of the adjoint
        grad_w = -(g[:, :, None] * k).sum(0)
        grad_t = (g[:, :, None] * w[None] * kd).sum(1)
        return grad_t, grad_w, None, None


def input_times(x, hp: EventPropHyper):
    """(N, n_in + 1) float64 times: latency code of x in [0, 1] (x = 0: never) and the bias spike at 0."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    t = torch.where(x > 0, hp.t_in * (1.0 - x), torch.full_like(x, math.inf))
    return torch.cat([t, torch.zeros(len(x), 1, dtype=t.dtype)], dim=1)


def network_times(weights, t0, hp: EventPropHyper):
    """Spike times of every layer (list of (B, n) tensors); each hidden layer gets a bias spike at 0."""
    out, t = [], t0
    for i, w in enumerate(weights):
        t = SpikeTimes.apply(t, w, hp.theta, hp.vdot_min)
        out.append(t)
        if i < len(weights) - 1:
            t = torch.cat([t, torch.zeros(len(t), 1, dtype=t.dtype)], dim=1)
    return out


def first_spike_loss(t_out, y, hp: EventPropHyper):
    t = torch.where(torch.isfinite(t_out), t_out, torch.full_like(t_out, hp.t_silent).detach())
    ce = torch.nn.functional.cross_entropy(-t / hp.tau0, y)
    tl = t.gather(1, y[:, None])[:, 0]
    return ce + hp.alpha * (torch.exp(tl / hp.tau1) - 1).mean()


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
        ws.append(w.requires_grad_())
    return ws


def train_eventprop(x_train, y_train, *, arch, epochs: int, batch_size: int = 64, seed: int = 0, profile=None,
                    x_val=None, y_val=None, dataset_name: str = "", progress: bool = True, **hyper) -> EventPropResult:
    """Train with EventProp (module docstring).  ``profile``: only recorded for the deployed
    evaluation (training is float, continuous time)."""
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
        ws = _init(sizes, hp, g)
        opt = torch.optim.Adam(ws, lr=hp.lr)
        tin = input_times(x, hp)
        yt = torch.from_numpy(y)
        history = {"epoch": [], "loss": [], "train_acc": [], "val_acc": [], "silent_out": [], "time_s": []}
        bar = tqdm(range(1, epochs + 1), desc="EventProp", unit="epoch", disable=not progress, mininterval=0.5)
        for epoch in bar:
            lr = hp.lr * hp.lr_final ** ((epoch - 1) / max(epochs - 1, 1))
            for group in opt.param_groups:
                group["lr"] = lr
            perm = torch.randperm(len(y), generator=g)
            tot, correct, silent = 0.0, 0, 0.0
            for s in range(0, len(y), batch_size):
                idx = perm[s:s + batch_size]
                times = network_times(ws, tin[idx], hp)
                tout = times[-1]
                loss = first_spike_loss(tout, yt[idx], hp)
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
                val = float((predict_continuous([w.detach() for w in ws], x_val, hp) == np.asarray(y_val)).mean())
            history["val_acc"].append(val)
            history["time_s"].append(round(time.perf_counter() - t0, 3))
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", acc=f"{history['train_acc'][-1]:.3f}",
                            val="-" if val is None else f"{val:.3f}")
    weights = [w.detach().numpy().copy() for w in ws]
    res = EventPropResult(sizes, weights, hp, int(seed), int(epochs), int(batch_size), history, {},
                          time.perf_counter() - t0, None if profile is None else str(profile))
    res.accuracy["train"] = float((predict_continuous(weights, x, hp) == y).mean())
    if x_val is not None:
        res.accuracy["val"] = float((predict_continuous(weights, x_val, hp) == np.asarray(y_val)).mean())
    return res


def predict_continuous(weights, x, hp: EventPropHyper, batch_size: int = 1000, spikes: bool = False):
    """Decisions of the continuous-time model (and, with ``spikes``, spikes per neuron per sample)."""
    ws = [torch.as_tensor(np.asarray(w, dtype=np.float64)) for w in weights]
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    dec, fired = [], 0.0
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            times = network_times(ws, input_times(x[s:s + batch_size], hp), hp)
            dec.append(decide_first(times[-1].numpy()))
            fired += float(sum(torch.isfinite(t).sum() for t in times))
    d = np.concatenate(dec)
    if spikes:
        return d, fired / len(x) / sum(w.shape[0] for w in ws)
    return d


# --------------------------------------------------------------------------------------------
# NIR and the deployed evaluation


def eventprop_to_nir(result: EventPropResult, input_shape, dataset_name: str) -> nir.NIRGraph:
    """CubaLIF chain at dt = t_in / (steps - 1); input (n_in + 1,): the data then the bias channel
    (feed x = 1: a latency spike at step 0).  A hidden layer's bias spike (at t = 0 in the trained
    model) comes from that channel through its own Affine and a NIR Delay of (i - 1) dt, so that it
    arrives with the same per-layer lag as the layer's other inputs (one step per connection).
    ``snncompile compile`` cannot feed the bias channel from a bundled dataset (its inputs have n_in
    features): evaluate deployment with :func:`evaluate_eventprop`."""
    hp = result.hyper
    ws = [np.asarray(w, dtype=np.float64) for w in result.weights]
    n_in = ws[0].shape[1]  # data + bias channel
    dt = hp.t_in / (hp.steps - 1)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    edges = []
    prev = "input"
    for i, w in enumerate(ws, start=1):
        n = w.shape[0]
        pop = f"lif{i}"
        nodes[pop] = nir.CubaLIF(tau_syn=np.full(n, TAU_SYN), tau_mem=np.full(n, TAU_MEM), r=np.ones(n),
                                 v_leak=np.zeros(n), v_threshold=np.full(n, hp.theta), w_in=np.ones(n),
                                 v_reset=np.zeros(n))
        if i == 1:
            nodes["fc1"] = nir.Affine(weight=w.copy(), bias=np.zeros(n))
            edges += [("input", "fc1"), ("fc1", pop)]
        else:
            nodes[f"fc{i}"] = nir.Affine(weight=w[:, :-1].copy(), bias=np.zeros(n))
            sel = np.zeros((n, n_in))
            sel[:, -1] = w[:, -1]
            nodes[f"fc{i}_bias"] = nir.Affine(weight=sel, bias=np.zeros(n))
            nodes[f"fc{i}_bias_delay"] = nir.Delay(delay=np.full(n, dt * (i - 1)))
            edges += [(prev, f"fc{i}"), (f"fc{i}", pop), ("input", f"fc{i}_bias"),
                      (f"fc{i}_bias", f"fc{i}_bias_delay"), (f"fc{i}_bias_delay", pop)]
        prev = pop
    nodes["output"] = nir.Output(output_type={"output": np.array([ws[-1].shape[0]])})
    edges.append((prev, "output"))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)
    set_meta(graph, {
        "format": FORMAT, "version": 1, "dt": dt,
        "encoding": {"type": "latency", "steps": int(hp.steps), "seed": int(result.seed),
                     "bias_channel": "last input: feed x = 1 (a spike at step 0)"},
        "readout": {"type": "first_spike", "decision": "earliest output spike; compile's count readout differs"},
        "run_steps": None, "delay_per_connection": 1, "data_shape": list(np.atleast_1d(input_shape)),
        "trained_by": "eventprop", "eventprop": result.describe(), "dataset": dataset_name,
        "accuracy": dict(result.accuracy),
    })
    return graph


def with_bias_channel(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def evaluate_eventprop(result: EventPropResult, x, y, profile: str | None = None, run_steps_extra: int = 40,
                       calib_samples: int = 200, x_calib=None, steps: int | None = None):
    """(continuous-time accuracy, spikes per neuron, extra) with extra holding, when a profile is
    given (argument or the one trained with), the deployed fxsim accuracy (earliest-spike
    decision), its agreement with the continuous model, and the float-reference (NIR Euler) ones.
    ``x_calib``: the training samples that calibrate the quantizer (default: ``x`` itself);
    ``steps``: deploy with this many latency steps instead of the trained ``hyper.steps`` (finer dt)."""
    if steps is not None and steps != result.hyper.steps:
        result = dataclasses.replace(result, hyper=dataclasses.replace(result.hyper, steps=int(steps)).check())
    hp = result.hyper
    y = np.asarray(y)
    dec, spn = predict_continuous(result.weights, x, hp, spikes=True)
    acc = float((dec == y).mean())
    prof = profile or result.profile
    extra = {}
    if prof is None:
        return acc, spn, extra
    from ..encode import encode
    from ..frontends.nir import read_spiking_graph, repair_graph
    from ..lif.fixed import read_qlif, simulate_fixed
    from ..lif.reference import simulate
    from ..profile import load_profile
    from ..quantize.lif import quantize_lif

    graph = eventprop_to_nir(result, (result.sizes[0],), "")
    dt = hp.t_in / (hp.steps - 1)
    net = read_spiking_graph(repair_graph(graph, dt), dt)
    xc = with_bias_channel(x if x_calib is None else x_calib)[:calib_samples]
    qg, _ = quantize_lif(net, load_profile(prof), encode(xc, hp.steps, "latency", 0), 1)
    xs = encode(with_bias_channel(x), hp.steps, "latency", 0)
    T = hp.steps + net.depth + run_steps_extra
    fx = simulate_fixed(read_qlif(qg), xs, t_total=T)
    ro = net.readout
    first = np.where(fx.first_step[ro] < 0, np.iinfo(np.int64).max, fx.first_step[ro])
    dq = first.argmin(1)
    ref = simulate(net, xs, t_total=T, record=False)
    rfirst = getattr(ref, "first_step", None)
    extra["deployed_accuracy"] = float((dq == y).mean())
    extra["deployed_agreement"] = float((dq == dec).mean())
    extra["deployed_count_accuracy"] = float((fx.scores.argmax(1) == y).mean())
    if rfirst is not None and ro in rfirst:
        rf = np.where(rfirst[ro] < 0, np.iinfo(np.int64).max, rfirst[ro])
        extra["reference_accuracy"] = float((rf.argmin(1) == y).mean())
    return acc, spn, extra


__all__ = ["EventPropHyper", "EventPropResult", "SpikeTimes", "decide_first", "evaluate_eventprop",
           "eventprop_to_nir", "first_spike_loss", "input_times", "network_times", "predict_continuous",
           "spike_times_forward", "train_eventprop", "with_bias_channel"]
