r"""eRBP: event-driven random back-propagation (Neftci et al. 2017) on the deployed LIF chain.

The network trained here is exactly the one exported to NIR and run by the simulators
(:func:`simulate_lif_chain` is its reference forward pass).  Time is discrete (dt = 1 step),
states reset per sample, steps t = 1..T with T = T_in + L (L weight layers):

* input: a spike raster of T_in steps from :func:`snncompile.encode.encode` (``regular`` by
  default); a spike "emitted at step t" by input j is ``s_0[t, j]``.
* every connection (Affine) has one step of delay, bias 0:  q_l(t) = W_l s_{l-1}(t - 1).
* LIF soma (NIR ``LIF`` with r = tau, v_leak = 0, v_reset = 0, v_threshold = 1):
  v(t) = v(t-1) (1 - 1/tau) + q(t);  s(t) = [v(t) > v_th];  v(t) = 0 where s(t) = 1.
* readout: the spike count of the output layer over the T steps, decision = argmax (ties go to
  the lowest index).

Learning (this module's eRBP variant, in precise terms).  Per sample, every step t, after the
forward step:

1. Error (continuous-valued low-pass version, not spiking e+/e- pairs).  With
   lam_e = 1 - 1/tau_error, the dendrite of output neuron k holds
   e_k(t) = lam_e e_k(t-1) + (1 - lam_e) (s_k(t) - nu* y_k [t > L]),
   i.e. a low-pass filter of (output spikes minus label spikes): the label neuron of the true
   class "fires" at the target rate nu* (``target_rate``, spikes per step) from step L + 1, the
   first step at which the output can respond, so output and label traces share the same start-up
   transient and a correct output rate gives zero error on average.  In the paper's terms
   e_k = e+_k - e-_k with e+_k carrying [prediction - label]_+ and e-_k [label - prediction]_+.
   Sign convention: e = prediction - label, so the rule below (with its minus sign) moves every
   weight against the gradient of the squared error 1/2 sum_k e_k^2 (the label-minus-prediction
   error of the paper's error neurons enters the dendrite with a negative sign).
2. Dendrites: U_i(t) = sum_k G_ik e_k(t) with a fixed random feedback matrix G per hidden layer
   (uniform in [-g, g], g = ``feedback_scale``, drawn once from the seed; every hidden layer gets
   the output error directly, as in the paper); output layer: G = identity, U_k = e_k.  Because
   e is already low-pass filtered, U is the dendrite's low-pass (tau_error) of its feedback input.
3. Somatic current for the derivative: I_i(t) = lam_I I_i(t-1) + (1 - lam_I) q_i(t) with
   lam_I = 1 - 1/tau_current, from 0 at each sample start: a running average of the input current
   per step (a neuron with constant input c per step fires once c > v_th / tau, and on every step
   once c > v_th).  The boxcar Theta_i(t) = [b_low < I_i(t) < b_high] stands in for f'.
4. On every presynaptic spike of j arriving at i at step t (s_j(t - 1) = 1):
   W_ij <- W_ij - eta U_i(t) Theta_i(t)  -- one addition and two comparisons per synaptic event.
   The events of all samples and steps of a mini-batch are summed and applied at the end of the
   mini-batch (every sample keeps its own state; ``batch_size`` = 1 is plain online learning).
   eta decays geometrically over the run: eta_e = eta * lr_final**((e - 1) / (E - 1)) in epoch
   e of E (eta in the first epoch, eta * lr_final in the last), whatever the number of epochs.

Quantized learning (``profile`` given): each layer's weights are W = s_l * m with mantissas m on
the profile's grid ``weight_grid(bits, full_bits, sign_mode)`` (multiples of ``step`` in [lo, hi]).
The scale s_l is fixed at initialization: s_l = headroom * a_l / top with a_l the bound of the
uniform init and top the largest positive mantissa, so the init range uses 1/headroom of the grid
and weights can grow ``headroom``-fold before clipping.  After every (mini-batch) update
m <- clip(grid_round(m - eta dW / s_l), lo, hi); ``rounding="deterministic"`` rounds to the
nearest grid point, ``"stochastic"`` rounds up with probability equal to the fractional part
(seeded torch Generator).  The deployed float weights are exactly s_l * m.

Measured (seed 0, defaults, batch 32, 2 CPU cores shared with another job): MNIST-5k
784-200-200-10, 15 epochs: test 93.0 % in 55 s (same-size ReLU ANN, Adam, 20 epochs: 93.7 %);
8-bit loihi2 grid, stochastic rounding: 93.9 %; deterministic rounding: 72.3 % (updates smaller
than half a grid step are lost).  The hidden layers fire at about 0.4 spikes per neuron and step.
By default ``margin`` and ``center_feedback`` are off, ``init`` is "uniform" and ``hidden_eta``
1 (the MNIST numbers above; MNIST-5k with m = 0.2 alone: 93.1 %).

Yin-Yang (4-120-3).  With the defaults: 86.9 % after 200 epochs; with ``margin`` 0.2 and eta
2e-3 (below): 86.8 % test after 30 epochs (ANN 96.9 %).  What capped it (measured):
(1) The hidden layer drifts.  Its 4-input rows learn at the output layer's eta through a fixed
random G, and the error never vanishes (a rate target, label 0.8 per step, that the network does
not reach; with the margin still on misclassified and within-margin samples and on every
sample's start-up), so the updates do not cancel over the data as a gradient's do near a minimum:
a walk without restoring force whose boxcar edges absorb.  Plain rule, 100 epochs: open hidden
boxcars 1.00 (epoch 1) -> 0.58 (100), hidden rate 0.10 -> 0.34 spikes per neuron and step; after
30 epochs the hidden rows' norms grew from 0.58 to a median 2.3 and 15 % of the hidden neurons
were silent on every sample.  On Yin-Yang every sample has the same total input rate
(x + (1 - x) = 1), so each update also moves the neuron's mean current, and the common-mode part
of U (G's row mean times sum_k e_k) is a steady push: with 40 input steps, init="data"
(init_scale 4) and hidden_eta 0.05, validation fell to 43.3 % after 30 epochs (gate 0.22, 45 %
silent) without ``center_feedback`` and reached 94.2 % (20 epochs) with it.
(2) The hidden layer needs no learning.  A logistic regression (sklearn, C = 100) on the spike
counts of the untrained 4-120 layer (20 regular steps) reaches 94.2 % on validation with the
uniform init (17 % of its neurons silent on every sample) and 97.0 % when every neuron's
hyperplane crosses the square at a random point (current slope 2 per unit of x or y); the rule's hidden updates were destroying
features that the readout needed; with the hidden layer frozen, the readout's accuracy rises with
the features' slope (init_scale) and the input steps (below).
(3) The input code: the regular code of T_in steps passes x as a count of round(x T_in); a
same-size ANN (Adam, 200 epochs) on inputs rounded to 20 levels reaches 94.2 % on validation,
95.9 % at 40 levels, 96.5 % unrounded.
Change (``PRESETS["yinyang"]`` in train/erbp_job.py, used by ``snncompile train``): ``init="data"``
(the first hidden layer's uniform init, bound a = init_scale / sqrt(fan_in) with init_scale 8,
shifted per neuron along a random training sample x_p so that W_i . x_p = v_th / tau: every
neuron's firing onset crosses the data and its boxcar opens there), readout-first learning
(``hidden_eta`` 0.01: the hidden layers learn by the same rule with eta * hidden_eta),
``center_feedback``, ``steps`` 40, ``margin`` 0.2, eta 2e-3, 30 epochs.  The rule keeps its
fixed random feedback, boxcar and presynaptic-event updates.  Validation (seed 0, batch 32,
``train_erbp(x_train, y_train, arch="4-120-3", epochs=E, ..., x_val, y_val)``, ``history
["val_acc"]`` at the last epoch), each step added to the one before: margin 0.2, eta 2e-3: 87.6 %;
init="data" with hidden_eta 0 (hidden frozen), init_scale 1: 87.7 %, 2: 92.0 %, 4: 92.5 %, 8:
93.2 %; steps 40, init_scale 4: 94.9 %, 8: 95.2 %; hidden_eta 0.01 with center_feedback (the
preset): 95.1 % (60 epochs: 94.8 %, hidden row norms 3.90 at init and after, 0.8 % silent, 79 %
of the hidden boxcars open).  So the 94 % comes from the readout on the initialized hidden layer;
at hidden_eta 0.01 the hidden learning neither helps nor hurts measurably (frozen: 95.2 %; seed
1: 96.0 % frozen, 95.9 % with the preset; hidden_eta 0.01 without center_feedback: 95.3 % after
20 epochs).
Drift still present at larger hidden_eta (steps 40, init_scale 8, center_feedback): 0.05: 94.5 %
after 20 epochs, but a 60-epoch run falls from 93.5 % (epoch 25) to 87.0 % (60; 10.8 % silent,
row norm 3.90 -> 4.13); 0.2: 93.0 % after 20 epochs with 8.3 % silent.  Test split, seeds 0 / 1 / 2
(``snncompile train --method erbp --dataset yinyang --arch 4-120-3 --epochs 30 --seed S -o
e.nir``, then ``snncompile compile e.nir --dataset yinyang --profile loihi2 --target reference
--target fxsim --out out``): validation 95.1 / 95.9 / 95.8 %, test 95.0 / 97.1 / 95.5 % (float
reference), 95.0 / 95.3 / 95.0 % on loihi2 fxsim (seed 0, ``--target lava --lava-samples 50``:
bit-exact with fxsim); 46-52 s of training each.  Weights on the loihi2 grid while learning
(``--profile loihi2``, seed 0): validation 94.2 %, test 93.5 %.
Tried and dropped: a boxcar on [0, 1] (80.8 %) or [0.03, 0.8] (chance); a step back towards the
box on events outside it (gates stay open, 78.4 %, and the output layer dies at eta >= 2e-3);
m = 0.4: 79.9 %; m = 0.2 with eta 5e-3: 41.0 %; the margin on start-up-corrected rates
(low-pass rate / (1 - lam_e^(t - L))) with hidden_eta 0.05: 60 epochs 90.7 % (6.7 % silent);
init="data", init_scale 1, hidden_eta 0.1, steps 20: 83.4 %.

Determinism: all randomness comes from generators seeded with ``seed`` (torch's global RNG is
forked and restored, as in train/ann.py); the same seed and thread count give bit-identical
weights.  Training runs in float32; evaluation (:func:`simulate_lif_chain`) runs in float64 on
the exported weights, and all accuracies reported in results and NIR metadata come from it.

Longer than 400 lines: the learning rule, its batched simulation and its NIR output share one
set of state conventions; split, each part would need the others' docstring.
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

from ..arith import weight_grid
from ..encode import KINDS, encode
from ..errors import InvalidModel
from ..ir import set_meta

FORMAT = "snncompile-lif"
VARIANT = ("eRBP (Neftci et al. 2017), continuous error: e_k = lowpass_tau_error(s_out_k - target_rate * "
           "label_k * [t > L]) (prediction - label), dendrite U = G e (fixed uniform random G per hidden layer, "
           "identity at the output), boxcar on the soma current lowpass_tau_current(q) (running mean, reset "
           "per sample), update W_ij -= eta * U_i * [b_low < I_i < b_high] on each presynaptic spike of j, "
           "summed over the mini-batch and applied at its end; eta decays geometrically to eta * lr_final at the last epoch; "
           "with margin > 0 the error is zero while the label's low-pass output rate leads every other's by the margin; "
           "hidden layers learn with eta * hidden_eta")


@dataclass(frozen=True)
class ErbpHyper:
    """eRBP hyper-parameters (time constants in steps; rates in spikes per step).

    Defaults were chosen on MNIST-5k 784-200-200-10 (see the module docstring for the rule);
    Yin-Yang's settings are ``PRESETS["yinyang"]`` in train/erbp_job.py.
    """

    steps: int = 20              # T_in: input encoding steps (the run lasts T_in + L steps)
    encoding: str = "regular"    # input code, see snncompile.encode
    tau: float = 20.0            # soma membrane time constant (decay 1 - 1/tau per step)
    v_threshold: float = 1.0     # firing threshold (weights carry the scale)
    eta: float = 5e-4            # learning rate per synaptic event
    lr_final: float = 0.2        # eta of the last epoch / eta of the first (geometric in between)
    b_low: float = -1.0          # boxcar lower bound on the filtered soma current I
    b_high: float = 1.0          # boxcar upper bound on I
    tau_current: float = 20.0    # time constant of I (the somatic current seen by the boxcar)
    tau_error: float = 10.0      # time constant of the error / dendrite low-pass
    target_rate: float = 0.8     # label rate nu* (spikes per step) of the true class; others 0
    feedback_scale: float = 0.5  # G uniform in [-feedback_scale, feedback_scale]
    init_scale: float = 1.0      # W uniform in [-a, a], a = init_scale / sqrt(fan_in)
    headroom: float = 4.0        # quantized: the init bound a maps to top / headroom
    center_feedback: bool = False  # subtract each hidden neuron's mean over the outputs from its G row
    margin: float = 0.0          # > 0: no error while the label's output rate leads every other's by this margin
    init: str = "uniform"        # "data": first hidden layer's firing onsets pass through random training samples
    hidden_eta: float = 1.0      # eta of the hidden layers / eta of the output layer

    def check(self) -> ErbpHyper:
        """Raise InvalidModel naming the first out-of-range field; return self."""
        def bad(name, why):
            raise InvalidModel(f"eRBP hyper-parameter {name}={getattr(self, name)!r}: {why}")

        if int(self.steps) != self.steps or self.steps < 1:
            bad("steps", "needs an integer >= 1")
        if self.encoding not in KINDS:
            bad("encoding", f"must be one of {', '.join(KINDS)}")
        for name in ("tau", "tau_current", "tau_error"):
            if not getattr(self, name) > 1.0:
                bad(name, "must be > 1 step")
        for name in ("v_threshold", "eta", "target_rate", "feedback_scale", "init_scale", "headroom"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if not self.margin >= 0:
            bad("margin", "must be >= 0")
        if not self.hidden_eta >= 0:
            bad("hidden_eta", "must be >= 0")
        if self.init not in ("uniform", "data"):
            bad("init", "must be 'uniform' or 'data'")
        if not 0 < self.lr_final <= 1:
            bad("lr_final", "must be in (0, 1]")
        if not self.b_low < self.b_high:
            raise InvalidModel(f"eRBP boxcar needs b_low < b_high, got {self.b_low} >= {self.b_high}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ErbpResult:
    """A trained eRBP network.

    ``weights``: float64 arrays (out, in) per layer, the deployed weights (= scale * mantissa when
    quantized).  ``feedback``: the fixed G of each hidden layer (n_hidden, n_out).  ``history``:
    per epoch ``epoch, train_acc`` (online, during learning, float32 forward), ``val_acc``
    (float64 reference after the epoch, None without validation data), ``rates`` (spikes per
    neuron per input step, per layer), ``gate`` (share of open boxcars per layer), ``eta``,
    ``time_s``.  ``train_counts``: output spike counts of the final network on the training set
    (:func:`simulate_lif_chain`), from which ``accuracy["train"]`` comes.  ``quant``: None, or
    the profile, grid, rounding, per-layer ``scales`` and ``mantissas`` (int64).
    """

    sizes: tuple
    weights: list
    hyper: ErbpHyper
    seed: int
    epochs: int
    batch_size: int
    history: dict
    feedback: list
    train_counts: np.ndarray
    accuracy: dict
    train_time_s: float
    quant: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def run_steps(self) -> int:
        return int(self.hyper.steps) + len(self.weights)

    def describe(self) -> dict:
        """Everything but the arrays: hyper-parameters, variant, training settings (JSON-able)."""
        quant = None
        if self.quant is not None:
            quant = {k: v for k, v in self.quant.items() if k != "mantissas"}
        return {**self.hyper.to_dict(), "variant": VARIANT, "sizes": list(self.sizes), "seed": self.seed,
                "epochs": self.epochs, "batch_size": self.batch_size, "quantized": quant,
                "train_time_s": round(self.train_time_s, 3)}


# --------------------------------------------------------------------------------------------
# the rule, the forward pass, the reference simulator


def erbp_update(pre, dendrite, current, b_low: float, b_high: float, out=None):
    """The summed eRBP event updates of one step, to be applied as W <- W - eta * result.

    ``pre`` (B, n_in): presynaptic spikes arriving now (0/1); ``dendrite`` (B, n_out): U_i;
    ``current`` (B, n_out): I_i.  Returns (n_out, n_in): the sum over the batch of
    U_i [b_low < I_i < b_high] s_j, i.e. one addition of U_i per presynaptic spike of j onto an
    open gate (the training loop calls this with ``out``, a float tensor it adds into).
    Works on numpy arrays or torch tensors.
    """
    if isinstance(pre, torch.Tensor):
        gate = ((current > b_low) & (current < b_high)).to(dendrite.dtype)
        if out is None:
            return (dendrite * gate).T @ pre.to(dendrite.dtype)
        return out.addmm_((dendrite * gate).T, pre)
    pre, dendrite, current = (np.asarray(a, dtype=np.float64) for a in (pre, dendrite, current))
    gate = (current > b_low) & (current < b_high)
    dw = (dendrite * gate).T @ pre
    if out is None:
        return dw
    out += dw
    return out


def _hyper_of(hyper) -> ErbpHyper:
    if hyper is None:
        return ErbpHyper()
    if isinstance(hyper, ErbpHyper):
        return hyper
    if isinstance(hyper, dict):
        known = {f.name for f in dataclasses.fields(ErbpHyper)}
        return ErbpHyper(**{k: v for k, v in hyper.items() if k in known})
    raise InvalidModel(f"hyper must be an ErbpHyper, a dict or None, got {type(hyper).__name__}")


def _check_chain(weights) -> list[np.ndarray]:
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    if not ws:
        raise InvalidModel("an LIF chain needs at least one weight layer")
    for i, w in enumerate(ws):
        if w.ndim != 2:
            raise InvalidModel(f"layer fc{i + 1}: weight must be 2-D (out, in), got shape {w.shape}")
        if i and w.shape[1] != ws[i - 1].shape[0]:
            raise InvalidModel(f"layer fc{i + 1} takes {w.shape[1]} inputs but fc{i} has {ws[i - 1].shape[0]} outputs")
    return ws


def simulate_lif_chain(weights, x_spikes, hyper=None, batch_size: int = 1000, layer_counts: bool = False):
    """The deployed forward pass (float64): output spike counts (N, n_out) int64.

    ``weights``: per layer (out, in) arrays; ``x_spikes``: (N, T_in, *input_shape) 0/1 raster
    (see :func:`snncompile.encode.encode`), flattened to (N, T_in, n_in).  ``hyper``: an
    :class:`ErbpHyper` or dict (uses ``tau`` and ``v_threshold``).  The run lasts T_in + L steps;
    each Affine delays by one step (q_l(t) = W_l s_{l-1}(t-1), bias 0), each LIF computes
    v = v (1 - 1/tau) + q, spikes where v > v_th and resets those to 0.  With ``layer_counts``
    also returns the spike counts (N, n_l) of every layer.
    """
    hp = _hyper_of(hyper)
    ws = _check_chain(weights)
    x = np.asarray(x_spikes)
    if x.ndim < 3:
        raise InvalidModel(f"x_spikes must be (N, T_in, *input_shape), got shape {x.shape}")
    n, t_in = x.shape[0], x.shape[1]
    x = x.reshape(n, t_in, -1)
    if x.shape[2] != ws[0].shape[1]:
        raise InvalidModel(f"the input raster has {x.shape[2]} inputs per step, layer fc1 takes {ws[0].shape[1]}")
    wt = [torch.from_numpy(np.ascontiguousarray(w.T)) for w in ws]  # (in, out)
    decay = 1.0 - 1.0 / float(hp.tau)
    vth = float(hp.v_threshold)
    n_steps = t_in + len(ws)
    out = [np.zeros((n, w.shape[0]), dtype=np.int64) for w in ws]
    for start in range(0, n, batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size].transpose(1, 0, 2))).double()
        b = xb.shape[1]
        v = [torch.zeros(b, w.shape[1], dtype=torch.float64) for w in wt]
        prev = [torch.zeros(b, w.shape[1], dtype=torch.float64) for w in wt]
        cnt = [torch.zeros(b, w.shape[1], dtype=torch.float64) for w in wt]
        zero_in = torch.zeros(b, wt[0].shape[0], dtype=torch.float64)
        for t in range(1, n_steps + 1):
            src = [xb[t - 2] if 2 <= t <= t_in + 1 else zero_in] + prev[:-1]
            new = []
            for i, w in enumerate(wt):
                v[i] = v[i] * decay + src[i] @ w
                s = v[i] > vth
                v[i] = torch.where(s, torch.zeros((), dtype=torch.float64), v[i])
                sf = s.double()
                cnt[i] += sf
                new.append(sf)
            prev = new
        for i in range(len(wt)):
            out[i][start:start + b] = cnt[i].round().long().numpy()
    return (out[-1], out) if layer_counts else out[-1]


def decisions(counts) -> np.ndarray:
    """argmax of the spike counts per sample; ties go to the lowest index."""
    return np.asarray(counts).argmax(axis=1)


def evaluate_erbp(result: ErbpResult, x, y=None):
    """Encode ``x`` (N, *input_shape) as in training and run the reference: (accuracy or None, counts)."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    spikes = encode(x, result.hyper.steps, result.hyper.encoding, result.seed)
    counts = simulate_lif_chain(result.weights, spikes, result.hyper)
    acc = None if y is None else float((decisions(counts) == np.asarray(y)).mean())
    return acc, counts


# --------------------------------------------------------------------------------------------
# training


def _sizes_of(arch, n_in: int) -> tuple:
    if isinstance(arch, str):
        from .ann import parse_arch

        input_shape, tokens = parse_arch(arch)
        bad = [t[0] for t in tokens if t[0] != "linear"]
        if bad:
            raise InvalidModel(f"eRBP trains fully connected (MLP) networks only; {arch!r} has {bad[0]} layers "
                               "(use e.g. 784-200-200-10)")
        sizes = (math.prod(input_shape), *(t[1] for t in tokens))
    else:
        sizes = tuple(int(s) for s in arch)
        if len(sizes) < 2 or min(sizes) < 1:
            raise InvalidModel(f"eRBP arch needs at least (n_in, n_out) positive sizes, got {arch!r}")
    if sizes[0] != n_in:
        raise InvalidModel(f"eRBP arch {arch!r} takes {sizes[0]} inputs but the data has {n_in} features per sample")
    return sizes


def _grid_of(profile) -> dict | None:
    if profile is None:
        return None
    from ..profile import HwProfile, load_profile

    prof = profile if isinstance(profile, HwProfile) else load_profile(profile)
    ws = prof.weights
    step, lo, hi = weight_grid(ws.bits, ws.full_bits, ws.sign_mode)
    top = hi if ws.sign_mode != "inh" else -lo
    return {"profile": prof.name, "bits": int(ws.bits), "full_bits": int(ws.full_bits), "sign_mode": ws.sign_mode,
            "step": int(step), "lo": int(lo), "hi": int(hi), "top": int(top)}


class _Quantizer:
    """Keeps one layer's weights on the grid: W = scale * m (m integer-valued float32 tensor)."""

    def __init__(self, grid: dict, scale: float, rounding: str, gen: torch.Generator):
        self.step, self.lo, self.hi = float(grid["step"]), float(grid["lo"]), float(grid["hi"])
        self.scale, self.rounding, self.gen = float(scale), rounding, gen

    def round(self, m: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        u = m / self.step
        if deterministic or self.rounding == "deterministic":
            u = torch.round(u)
        else:
            u = torch.floor(u + torch.rand(u.shape, generator=self.gen, dtype=u.dtype))
        return torch.clamp(u * self.step, self.lo, self.hi)


def _check_xy(x, y, what: str):
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise InvalidModel(f"{what}: expected a non-empty batch (N, *input_shape), got shape {x.shape}")
    x = x.reshape(len(x), -1)
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise InvalidModel(f"{what}: {len(x)} samples but labels of shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise InvalidModel(f"{what}: labels must be integers, got {y.dtype}")
    return x, y.astype(np.int64)


def train_erbp(x_train, y_train, *, arch, epochs: int, batch_size: int, lr: float | None, seed: int,
               profile=None, rounding: str = "deterministic", x_val=None, y_val=None, progress: bool = True,
               num_threads: int | None = None, **hyper) -> ErbpResult:
    """Train an LIF chain with eRBP (module docstring); return an :class:`ErbpResult`.

    ``x_train`` (N, *input_shape) in [0, 1], flattened per sample; ``y_train`` int labels.
    ``arch``: an MLP spec string (``784-200-200-10``, see train/ann.py) or a tuple of sizes.
    ``lr``: eta (None: the ErbpHyper default).  ``profile``: a profile name/path or HwProfile:
    keep weights on its grid while learning, with ``rounding`` deterministic or stochastic.
    ``hyper``: any :class:`ErbpHyper` field.  ``num_threads``: torch threads while training
    (restored afterwards).  torch's global RNG state is left unchanged.
    """
    known = {f.name for f in dataclasses.fields(ErbpHyper)}
    unknown = sorted(set(hyper) - known)
    if unknown:
        raise InvalidModel(f"unknown eRBP hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if lr is not None:
        hyper["eta"] = float(lr)
    hp = ErbpHyper(**hyper).check()
    if rounding not in ("deterministic", "stochastic"):
        raise InvalidModel(f"rounding must be 'deterministic' or 'stochastic', got {rounding!r}")
    if int(epochs) != epochs or epochs < 0 or int(batch_size) != batch_size or batch_size < 1:
        raise InvalidModel(f"eRBP needs epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    x, y = _check_xy(x_train, y_train, "training data")
    sizes = _sizes_of(arch, x.shape[1])
    n_out = sizes[-1]
    if y.min() < 0 or y.max() >= n_out:
        raise InvalidModel(f"training data: labels span {int(y.min())}..{int(y.max())}, but the network has "
                           f"{n_out} outputs")
    if x_val is not None:
        x_val, y_val = _check_xy(x_val, y_val, "validation data")
        if x_val.shape[1] != x.shape[1]:
            raise InvalidModel(f"validation data has {x_val.shape[1]} features, training data {x.shape[1]}")
    grid = _grid_of(profile)

    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    t_start = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            state = _train(x, y, x_val, y_val, sizes, hp, int(epochs), int(batch_size), int(seed), grid, rounding,
                           progress)
    finally:
        if num_threads is not None:
            torch.set_num_threads(old_threads)
    train_time = time.perf_counter() - t_start
    weights, history, feedback, quant = state
    result = ErbpResult(sizes=sizes, weights=weights, hyper=hp, seed=int(seed), epochs=int(epochs),
                        batch_size=int(batch_size), history=history, feedback=feedback,
                        train_counts=np.zeros((0, n_out), np.int64), accuracy={}, train_time_s=train_time, quant=quant)
    acc, counts = evaluate_erbp(result, x, y)
    result.train_counts, result.accuracy["train"] = counts, acc
    if x_val is not None:
        result.accuracy["val"] = history["val_acc"][-1] if history["val_acc"] else evaluate_erbp(result, x_val, y_val)[0]
    return result


def _generators(seed: int) -> list[torch.Generator]:
    """Independent torch generators for init, feedback, shuffling, stochastic rounding."""
    seqs = np.random.SeedSequence(seed % (1 << 64)).spawn(4)  # any int seed, negatives too
    return [torch.Generator().manual_seed(int(s.generate_state(1, dtype=np.uint64)[0] >> 1)) for s in seqs]


def _train(x, y, x_val, y_val, sizes, hp: ErbpHyper, epochs, batch_size, seed, grid, rounding, progress):
    g_init, g_fb, g_shuffle, g_round = _generators(seed)
    n_layers, n_out = len(sizes) - 1, sizes[-1]
    # weights stored transposed (in, out) for the matmuls; float32 while training
    bounds = [hp.init_scale / math.sqrt(a) for a in sizes[:-1]]
    wts = [(torch.rand(a, b, generator=g_init) * 2 - 1) * bound for a, b, bound in zip(sizes[:-1], sizes[1:], bounds)]
    fbs = [(torch.rand(n_out, n, generator=g_fb) * 2 - 1) * hp.feedback_scale for n in sizes[1:-1]]
    if hp.init == "data" and n_layers > 1:
        wts[0], bounds[0] = _data_init(wts[0], x, hp, g_init)
    if hp.center_feedback:  # G_ik - mean_k G_ik: the common-mode error sum_k e_k no longer reaches the dendrite
        fbs = [f - f.mean(0, keepdim=True) for f in fbs]
    quants, mants = None, None
    if grid is not None:
        quants = [_Quantizer(grid, hp.headroom * bd / grid["top"], rounding, g_round) for bd in bounds]
        mants = [qz.round(w / qz.scale, deterministic=True) for qz, w in zip(quants, wts)]
        wts = [m * qz.scale for m, qz in zip(mants, quants)]

    spikes = torch.from_numpy(encode(x, hp.steps, hp.encoding, seed))  # (N, T_in, n_in) uint8
    labels = torch.from_numpy(y)
    history = {"epoch": [], "train_acc": [], "val_acc": [], "rates": [], "gate": [], "eta": [], "time_s": []}
    if quants is not None:
        history["at_limit"] = []
    sim = _Simulator(sizes, hp)
    t0 = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc="eRBP", unit="epoch", disable=not progress, mininterval=0.5)
    for epoch in bar:
        eta = hp.eta * hp.lr_final ** ((epoch - 1) / max(epochs - 1, 1))
        perm = torch.randperm(len(y), generator=g_shuffle)
        correct = 0
        rates = np.zeros(n_layers)
        gates = np.zeros(n_layers)
        for start in range(0, len(y), batch_size):
            idx = perm[start:start + batch_size]
            sb = spikes[idx].permute(1, 0, 2).float().contiguous()  # (T_in, B, n_in)
            counts, dws, st = sim.run(wts, sb, labels[idx], fbs)
            correct += int((counts.argmax(1) == labels[idx]).sum())
            rates += st["rates"] * len(idx)
            gates += st["gate"] * len(idx)
            for i in range(n_layers):
                eta_i = eta if i == n_layers - 1 else eta * hp.hidden_eta
                if quants is None:
                    wts[i].sub_(dws[i].T, alpha=eta_i)
                else:
                    mants[i] = quants[i].round(mants[i] - dws[i].T * (eta_i / quants[i].scale))
                    wts[i] = mants[i] * quants[i].scale
        history["epoch"].append(epoch)
        history["train_acc"].append(correct / len(y))
        history["rates"].append([round(float(r), 5) for r in rates / len(y)])
        history["gate"].append([round(float(g), 5) for g in gates / len(y)])
        history["eta"].append(eta)
        if quants is not None:
            history["at_limit"].append([float(((m <= qz.lo) | (m >= qz.hi)).float().mean())
                                        for m, qz in zip(mants, quants)])
        val = None
        if x_val is not None:
            w64 = _export_weights(wts, mants, quants)
            val_counts = simulate_lif_chain(w64, encode(x_val, hp.steps, hp.encoding, seed), hp)
            val = float((decisions(val_counts) == y_val).mean())
        history["val_acc"].append(val)
        history["time_s"].append(round(time.perf_counter() - t0, 3))
        post = {"acc": f"{history['train_acc'][-1]:.3f}"}
        if val is not None:
            post["val"] = f"{val:.3f}"
        bar.set_postfix(post)
    weights = _export_weights(wts, mants, quants)
    quant = None
    if quants is not None:
        quant = {**grid, "rounding": rounding, "headroom": hp.headroom,
                 "scales": [qz.scale for qz in quants],
                 "mantissas": [m.T.numpy().astype(np.int64) for m in mants]}
    return weights, history, [g.T.numpy().astype(np.float64) for g in fbs], quant


def _data_init(w, x, hp: ErbpHyper, gen: torch.Generator):
    """Shift each column w_i (in, out layout) of the uniform init along a random non-zero training
    sample x_p so that w_i . x_p = v_th / tau: the neuron's firing onset for the constant input
    x_p (its rate code) passes through x_p.  Returns the new weights and their largest |w|."""
    xs = torch.from_numpy(np.clip(x, 0.0, 1.0)).to(w.dtype)
    nz = torch.nonzero((xs * xs).sum(1) > 0).flatten()
    if len(nz) == 0:
        return w, float(w.abs().max())
    pick = xs[nz[torch.randint(len(nz), (w.shape[1],), generator=gen)]]  # (out, in)
    shift = (hp.v_threshold / hp.tau - (pick * w.T).sum(1)) / (pick * pick).sum(1)
    w = w + (pick * shift[:, None]).T
    return w, float(w.abs().max())


def _export_weights(wts, mants, quants) -> list[np.ndarray]:
    """float64 (out, in) arrays; quantized: exactly scale * mantissa in float64."""
    if quants is None:
        return [w.T.numpy().astype(np.float64) for w in wts]
    return [m.T.numpy().astype(np.float64) * qz.scale for m, qz in zip(mants, quants)]


class _Simulator:
    """One mini-batch of the LIF chain with the eRBP learning machinery (float32, torch)."""

    def __init__(self, sizes, hp: ErbpHyper, dtype=torch.float32):
        self.sizes, self.hp, self.dtype = sizes, hp, dtype
        self.decay = 1.0 - 1.0 / hp.tau
        self.lam_i = 1.0 - 1.0 / hp.tau_current
        self.lam_e = 1.0 - 1.0 / hp.tau_error

    def run(self, wts, sb, y, fbs):
        """``sb`` (T_in, B, n_in) float32 input spikes, ``y`` (B,) labels.  Returns the output
        counts (B, n_out), the summed updates dW (out, in) per layer, and statistics."""
        hp, sizes = self.hp, self.sizes
        t_in, b = sb.shape[0], sb.shape[1]
        n_layers = len(wts)
        n_steps = t_in + n_layers
        dt = self.dtype
        v = [torch.zeros(b, n, dtype=dt) for n in sizes[1:]]
        cur = [torch.zeros(b, n, dtype=dt) for n in sizes[1:]]
        prev = [torch.zeros(b, n, dtype=dt) for n in sizes[1:]]
        count = [torch.zeros(b, n, dtype=dt) for n in sizes[1:]]
        dws = [torch.zeros(w.shape[1], w.shape[0], dtype=dt) for w in wts]  # (out, in)
        err = torch.zeros(b, sizes[-1], dtype=dt)
        rate = torch.zeros(b, sizes[-1], dtype=dt)   # low-pass output rates (for the margin)
        is_label = torch.nn.functional.one_hot(y, sizes[-1]).bool()
        label = torch.nn.functional.one_hot(y, sizes[-1]).to(dt) * hp.target_rate
        zero_in = torch.zeros(b, sizes[0], dtype=dt)
        gate_open = np.zeros(n_layers)
        vth, lam_i, lam_e = hp.v_threshold, self.lam_i, self.lam_e
        for t in range(1, n_steps + 1):
            src = [sb[t - 2] if 2 <= t <= t_in + 1 else zero_in] + prev[:-1]
            new = []
            for i in range(n_layers):
                q = src[i] @ wts[i]
                v[i].mul_(self.decay).add_(q)
                s = (v[i] > vth).to(dt)
                v[i].mul_(1.0 - s)
                new.append(s)
                count[i] += s
                cur[i].mul_(lam_i).add_(q, alpha=1.0 - lam_i)
            # error trace: low-pass of (output spikes - label spikes at nu* from step L + 1)
            err.mul_(lam_e).add_(new[-1], alpha=1.0 - lam_e)
            if t > n_layers:
                err.sub_(label, alpha=1.0 - lam_e)
            e_used = err
            if hp.margin > 0:  # the error neurons stay silent on a sample classified with the margin
                rate.mul_(lam_e).add_(new[-1], alpha=1.0 - lam_e)
                lead = rate[is_label] - rate.masked_fill(is_label, -1.0).max(1).values
                e_used = err * (lead < hp.margin).to(dt)[:, None]
            for i in range(n_layers):
                dend = e_used if i == n_layers - 1 else e_used @ fbs[i]
                erbp_update(src[i], dend, cur[i], hp.b_low, hp.b_high, out=dws[i])
                gate_open[i] += float(((cur[i] > hp.b_low) & (cur[i] < hp.b_high)).to(dt).mean())
            prev = new
        stats = {"rates": np.array([float(c.mean()) / t_in for c in count]), "gate": gate_open / n_steps}
        return count[-1], dws, stats


def erbp_presentation(weights, x_spikes, labels, hyper=None, feedback=None):
    """Present one batch with the eRBP machinery (float64) without changing ``weights``.

    ``weights``: per layer (out, in); ``x_spikes`` (B, T_in, *input_shape); ``labels`` (B,);
    ``feedback``: G per hidden layer (n_hidden, n_out) (required for hidden layers).  Returns
    (output counts (B, n_out) int64, changes): ``changes[l]`` (out, in) is what the rule adds to
    W_l for this batch, -eta * sum over events of U_i [b_low < I_i < b_high].
    """
    hp = _hyper_of(hyper)
    ws = _check_chain(weights)
    fbs = list(feedback or [])
    if len(fbs) != len(ws) - 1:
        raise InvalidModel(f"{len(ws) - 1} hidden layer(s) need as many feedback matrices, got {len(fbs)}")
    x = np.asarray(x_spikes, dtype=np.float64)
    x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 0, 2)
    sizes = (ws[0].shape[1], *(w.shape[0] for w in ws))
    sim = _Simulator(sizes, hp, dtype=torch.float64)
    wts = [torch.from_numpy(np.ascontiguousarray(w.T)) for w in ws]
    g = [torch.from_numpy(np.ascontiguousarray(np.asarray(f, dtype=np.float64).T)) for f in fbs]  # (n_out, n_hidden)
    counts, dws, _ = sim.run(wts, torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(np.asarray(labels)), g)
    return counts.round().long().numpy(), [-hp.eta * d.numpy() + 0.0 for d in dws]  # + 0.0: no -0.0


# --------------------------------------------------------------------------------------------
# NIR export


def erbp_to_nir(result: ErbpResult, input_shape, dataset_name: str) -> nir.NIRGraph:
    """The trained chain as a NIR graph ``input -> fc1 -> lif1 -> ... -> fcL -> lifL -> output``.

    ``input_shape``: the model's input shape; its size must equal the first layer's fan-in.
    The graph's Input is the flat vector (n_in,) (data are flattened in C order; the data shape is
    recorded as ``data_shape``).  All arrays are float64; LIF parameters are per-neuron arrays:
    tau = r = hyper.tau, v_leak = v_reset = 0, v_threshold = hyper.v_threshold.  Graph metadata
    (key "snncompile") documents the semantics (format, dt, encoding, readout, run steps), the
    eRBP hyper-parameters, the dataset and the accuracies in ``result.accuracy``.
    """
    ws = _check_chain(result.weights)
    shape = tuple(int(d) for d in np.atleast_1d(np.asarray(input_shape)))
    n_in = ws[0].shape[1]
    if math.prod(shape) != n_in:
        raise InvalidModel(f"input shape {shape} has {math.prod(shape)} features, layer fc1 takes {n_in}")
    hp = result.hyper
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    names = ["input"]
    for i, w in enumerate(ws, start=1):
        n = w.shape[0]
        nodes[f"fc{i}"] = nir.Affine(weight=np.array(w, dtype=np.float64), bias=np.zeros(n, dtype=np.float64))
        nodes[f"lif{i}"] = nir.LIF(tau=np.full(n, float(hp.tau)), r=np.full(n, float(hp.tau)),
                                  v_leak=np.zeros(n), v_threshold=np.full(n, float(hp.v_threshold)),
                                  v_reset=np.zeros(n))
        names += [f"fc{i}", f"lif{i}"]
    nodes["output"] = nir.Output(output_type={"output": np.array([ws[-1].shape[0]])})
    names.append("output")
    edges = list(zip(names[:-1], names[1:]))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=True)
    set_meta(graph, {
        "format": FORMAT,
        "version": 1,
        "dt": 1.0,
        "encoding": {"type": hp.encoding, "steps": int(hp.steps), "seed": int(result.seed)},
        "readout": {"type": "count", "decision": "argmax, ties to the lowest index"},
        "run_steps": result.run_steps,
        "delay_per_connection": 1,
        "data_shape": list(shape),
        "trained_by": "erbp",
        "erbp": result.describe(),
        "dataset": dataset_name,
        "accuracy": dict(result.accuracy),
    })
    return graph


__all__ = ["ErbpHyper", "ErbpResult", "VARIANT", "decisions", "erbp_presentation", "erbp_to_nir", "erbp_update",
           "evaluate_erbp",
           "simulate_lif_chain", "train_erbp"]
