r"""The deployed form of an EventProp network (:mod:`.eventprop`): a NIR graph that
``snncompile compile`` runs as it is, and its measured evaluation.

Exact at the grid points.  NIR's CubaLIF is a forward-Euler step; with dt = t_in / (steps - 1),
a_s = exp(-dt / tau_syn), a_m = exp(-dt / tau_mem) = sqrt(a_s), the graph sets

    tau_syn' = dt / (1 - a_s),  w_in = tau_syn',  tau_mem' = dt / (1 - a_m),  r = a_m,  v_leak = b,

so that a spike through weight w adds w to I and the Euler potential k steps after it is
w kappa(k dt) exactly (I <- a_s I + q, v <- a_m v + (1 - a_m)(b + a_m I), and kappa(k dt) =
a_m^k - a_s^k): the decays are the exponentials, not 1 - dt/tau.  An input emitted at step s (the
latency code's time (s - 1) dt) reaches layer 1 at step s + 1, so in every layer step n shows the
continuous V at time (n - 1) dt; the membrane bias, acting from step 1, is b (1 - a_m^n) = the
trained b beta(t - t0) with t0 = -dt.  A neuron that crosses theta in ((n - 2) dt, (n - 1) dt]
spikes at step n: its spike reaches the next layer up to one dt late, the one timing error left.
(The bias is on the membrane, not an Affine bias: on Loihi an Affine bias is a weight from an
always-on source whose per-step charge, about 1e-3 theta, is below the 2^6-LSB activation grain;
the bias register has a 13-bit mantissa.)  The bias spike at t = 0 comes from a one-neuron "clock"
population that fires once, at step 1 (:func:`_clock`).  On Loihi the decays are 12-bit
(du + 1, dv in 4096ths), so there the dynamics are exact only up to that rounding.

At most one spike, earliest wins.  The trained neurons fire once; Loihi's LIF resets v to 0 and
keeps its current, so it would fire again.  Each hidden neuron k therefore gets an inhibitory
self-connection -W_k (one step of synaptic delay, like every connection), and each output neuron
j an inhibitory connection -W_j from every other output: after the first output spike the others
stay below theta, so the spike-count readout of ``compile`` (argmax, ties to the lowest index,
all silent: class 0) is the earliest-spike decision of training (outputs spiking in the same
step tie, like equal times; the winner may fire again, which only adds to its count).  W is
calibrated, like the quantizer, on training samples: from the continuous model's potentials on
the run's grid t_n = (n - 1) dt, W_k = 1.5 max over samples and t_n > t_s of
(V_k(t_n) - theta - theta e^{-(t_n - t_s) / tau_mem})^+ / kappa(t_n - t_s) for a hidden neuron
that spiked at the grid time t_s (the reset leaves V - theta e^{-(t - t_s) / tau_mem}), and
(V_j(t_n) - theta)^+ / kappa(t_n - t_w) for an output j after the winner's grid time t_w.
Small W matters: the inhibited potential sets the quantizer's range (state LSB), and with it the
weights' exponents (negative exponents truncate Loihi's Dense sums).  Calibrated, not guaranteed:
on validation samples a few hidden neurons still fire twice (largest count 2 on fxsim).  The run
lasts ``steps + depth`` steps (compile's default): an output first spike after t_end = (steps +
layers - 1) dt is not seen, and the sample counts as silent (the ``late`` loss works against it).

Precision split (``EventPropHyper.split``, on by default): the graph's ``weight_split`` metadata
asks ``compile`` to give the trained connections (input and clock into lif1, lif1 and clock into
lif2) a second Dense that carries the rounding residual (:mod:`snncompile.quantize.lif`), wherever
that is finer than the connection's own grid.  Without it the 8-bit mantissas, one exponent per
connection, put layer 1's weights (up to 12.4) on steps of ~0.12: a seed-2 float model (tau0 = 0.1), 97.6 % on
validation (grid model), falls to 96.1 % by rounding alone (layer 1 alone: 96.3 %, layer 2 alone:
97.1 %), and fine-tuning on that grid recovered only 96.4 %.  Split, the step is one activation
unit (2^6 v LSBs: 0.0076 weight units on layer 1, 0.010 on layer 2, set by the v range, which
peaks at 6-8 theta), and the same model deploys at 97.7 % (NIR reference) / 97.4 % (fxsim) on
validation with no fine-tuning.  It costs one synapse per trained weight (4 x 120 + 120 + 360).

Fine-tuning on the chip's grid (:func:`finetune_on_grid`): ``QAT_EPOCHS`` epochs with the forward
weights on :func:`deployed_grid` and spike times on the time grid (``QAT_TIME_GRID``), no weight
bumping (with it, validation fell from epoch 4 on, 96.8 -> 92.1 %); each epoch is scored on the
grid model after the rounding ``compile`` will see (:func:`_settle`) and the best on validation is
kept, epoch 0 (no tuning) included.  Split, the weight grid is nearly continuous and the epochs
only tune to the time grid: in the runs below seeds 0 and 1 kept epoch 0, seed 2 epoch 7.
Unsplit (``split=False``) the quantizer gives a connection the smallest weight exponent its
largest weight fits (8-bit mantissas up to 254, even), so the step is between 1/127 and 1/63.5 of
the largest weight, and :func:`deployed_grid` takes one exponent finer wherever that clips at
most ``CLIP_SHARE`` of a connection's weights, bounding them so that ``compile`` picks it (seed 1,
validation: rounding alone 94.3 -> 95.5 %, after 5 epochs 95.6 -> 96.3 %).

Measured (``snncompile train --method eventprop --dataset yinyang --arch 4-120-3 --epochs 80
--profile loihi2 --seed S``, then ``snncompile compile --target reference --target fxsim``;
81 steps, dt = 0.025 tau_syn, tau0 = 0.025, ``RESTARTS`` = 4; seeds 0 / 1 / 2): validation after
fine-tuning (grid model) 97.8 / 97.8 / 97.5 %; test, NIR reference 97.6 / 97.7 / 98.1 %, fxsim
97.6 / 98.0 / 98.2 % (agreement with the reference 99.6 / 99.7 / 99.5 %; 0.62-0.66 spikes per
neuron; 273-328 s of training on one core each).  ``compile --target lava --vendor-samples 100``
on the seed-0 network: Lava bit-exact with fxsim on the 100 samples (spikes and v, every step).
Earlier trainers, same seeds, test reference / fxsim: tau0 = 0.1 with the split 97.9 / 97.4 / 96.9
and 97.8 / 97.3 / 96.8 % (seed 2's float model itself: 96.9 %); tau0 = 0.1 unsplit 97.8 / 97.3 /
96.4 and 97.7 / 97.4 / 96.5 %; before restarts and grid-model selection (benchmarks/lif_training.py
then) 96.8 / 94.4 / 95.9 and 96.9 / 94.4 / 96.4 %.
Before this graph (41 steps, Euler 1 - dt/tau decays, a bias input channel, no inhibition, reset
to 0 re-firing): 95.1 % float, 82.9 % fxsim.
"""

from __future__ import annotations

import dataclasses
import math

import nir
import numpy as np

from ..errors import InvalidModel
from ..ir import get_meta, set_meta
from .eventprop import TAU_MEM, TAU_SYN, EventPropResult, continuous_times, decide_first, input_times

FORMAT = "snncompile-lif"
MARGIN = 1.5


def euler_exact_params(dt: float) -> dict:
    """CubaLIF parameters whose Euler steps are the exact dynamics at the grid (module docstring)."""
    a_s, a_m = math.exp(-dt / TAU_SYN), math.exp(-dt / TAU_MEM)
    tau_syn, tau_mem = dt / (1 - a_s), dt / (1 - a_m)
    return {"tau_syn": tau_syn, "tau_mem": tau_mem, "w_in": tau_syn, "r": a_m}


def _clock(dt: float, theta: float, n_in: int) -> dict:
    """The one-neuron population that sends the bias spike: a membrane bias of 2 theta with no
    membrane memory (tau_mem = dt) fires at step 1, and its own spike, through a self-connection
    of -40 theta into a current that keeps (tau_syn = 1e4 dt), holds it below theta for the rest of
    the run (the large weight also sets the quantizer's range so that the 2 theta bias fits Loihi's
    bias register, at most 1/8 of the largest threshold).  Its input connection has zero weights (NIR needs every neuron reachable from the
    Input).  Its spike reaches every layer at step 2, like an input spike at t = 0."""
    tau_syn = 1e4 * dt
    return {"clock_in": nir.Affine(weight=np.zeros((1, n_in)), bias=np.zeros(1)),
            "clock": nir.CubaLIF(tau_syn=np.full(1, tau_syn), tau_mem=np.full(1, dt), r=np.ones(1),
                                 v_leak=np.full(1, 2.0 * theta), v_threshold=np.full(1, theta),
                                 w_in=np.full(1, tau_syn), v_reset=np.zeros(1)),
            "clock_inh": nir.Linear(weight=np.full((1, 1), -40.0 * theta))}


def _kappa(s):
    return np.exp(-s / TAU_MEM) - np.exp(-s / TAU_SYN)


def inhibition_weights(result: EventPropResult, x_calib, samples: int = 1000) -> list:
    """W per layer (module docstring), calibrated on the first ``samples`` of ``x_calib``."""
    hp = result.hyper
    ws = [np.asarray(w, dtype=np.float64) for w in result.weights]
    x = np.asarray(x_calib, dtype=np.float64).reshape(len(x_calib), -1)[:samples]
    times = continuous_times(ws, x, hp)
    grid = hp.dt * np.arange(int(hp.steps) + len(ws))
    src = input_times(x, hp).numpy()
    out = []
    for li, (w, t) in enumerate(zip(ws, times)):
        s_in = grid[None, :, None] - src[:, None, :]
        ok = np.isfinite(s_in) & (s_in > 0)
        v = np.where(ok, _kappa(np.where(ok, s_in, 0.0)), 0.0) @ w[:, :-1].T     # (N, T, n_out), no reset
        v = v + w[:, -1] * (1 - np.exp(-(grid[None, :, None] - hp.t0) / TAU_MEM))
        ts = np.ceil(t / hp.dt - 1e-9) * hp.dt  # the grid time of the deployed spike (inf: none)
        if li < len(ws) - 1:
            s = grid[None, :, None] - ts[:, None, :]
            excess = v - hp.theta - hp.theta * np.exp(-np.where(s > 0, s, 0.0) / TAU_MEM)
        else:
            tw = np.min(ts, axis=1)[:, None, None]
            s = np.where(ts[:, None, :] > tw, grid[None, :, None] - tw, -1.0)  # the losers, after the winner
            excess = v - hp.theta
        pos = np.isfinite(s) & (s > 0)
        need = np.where(pos, np.maximum(excess, 0) / _kappa(np.where(pos, s, 1.0)), 0.0)
        out.append(MARGIN * need.max(axis=(0, 1)) + 1e-3)
        src = np.concatenate([t, np.zeros((len(t), 1))], axis=1)  # and the bias spike at 0
    return out


def eventprop_to_nir(result: EventPropResult, input_shape, dataset_name: str, x_calib=None) -> nir.NIRGraph:
    """CubaLIF chain at dt = t_in / (steps - 1), membrane biases, inhibitory recurrent Linear nodes
    (module docstring) calibrated on ``x_calib`` (training samples; without it, the weights stored
    in ``result.extra["inhibition"]`` by an earlier call); ``snncompile compile`` runs it with the
    recorded latency code."""
    hp = result.hyper
    ws = [np.asarray(w, dtype=np.float64) for w in result.weights]
    if x_calib is not None:
        result.extra["inhibition"] = [a.tolist() for a in inhibition_weights(result, x_calib)]
    if "inhibition" not in result.extra:
        raise InvalidModel("eventprop_to_nir: give training samples (x_calib) to calibrate the inhibition")
    inh_all = [np.asarray(a, dtype=np.float64) for a in result.extra["inhibition"]]
    dt = hp.dt
    par = euler_exact_params(dt)
    n_in = ws[0].shape[1] - 2
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    nodes.update(_clock(dt, hp.theta, n_in))
    edges = [("input", "clock_in"), ("clock_in", "clock"), ("clock", "clock_inh"), ("clock_inh", "clock")]
    prev = "input"
    for i, (w, inh) in enumerate(zip(ws, inh_all), start=1):
        n = w.shape[0]
        pop = f"lif{i}"
        nodes[pop] = nir.CubaLIF(tau_syn=np.full(n, par["tau_syn"]), tau_mem=np.full(n, par["tau_mem"]),
                                 r=np.full(n, par["r"]), v_leak=w[:, -1].copy(), v_threshold=np.full(n, hp.theta),
                                 w_in=np.full(n, par["w_in"]), v_reset=np.zeros(n))
        nodes[f"fc{i}"] = nir.Affine(weight=w[:, :-2].copy(), bias=np.zeros(n))
        nodes[f"bias{i}"] = nir.Linear(weight=w[:, -2:-1].copy())   # the bias spike, from the clock
        edges += [("clock", f"bias{i}"), (f"bias{i}", pop)]
        rec = -(inh[:, None] * (1 - np.eye(n))) if i == len(ws) else -np.diag(inh)
        nodes[f"inh{i}"] = nir.Linear(weight=rec)
        edges += [(prev, f"fc{i}"), (f"fc{i}", pop), (pop, f"inh{i}"), (f"inh{i}", pop)]
        prev = pop
    nodes["output"] = nir.Output(output_type={"output": np.array([ws[-1].shape[0]])})
    edges.append((prev, "output"))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)
    set_meta(graph, {
        "format": FORMAT, "version": 2, "dt": dt,
        "encoding": {"type": "latency", "steps": int(hp.steps), "seed": int(result.seed)},
        "readout": {"type": "count", "decision": "earliest output spike: after it the other outputs are "
                                                "inhibited, so the count argmax is the first spike"},
        "run_steps": int(hp.steps) + len(ws), "delay_per_connection": 1,
        "data_shape": list(np.atleast_1d(input_shape)), "trained_by": "eventprop", "eventprop": result.describe(),
        "inhibition_margin": MARGIN, "dataset": dataset_name, "accuracy": dict(result.accuracy),
    })
    if hp.split:  # the trained weights and bias-spike weights get a residual connection (quantize/lif.py)
        set_meta(graph, {**get_meta(graph), "weight_split": [f"lif{i}_from_{src}" for i in range(1, len(ws) + 1)
                                                             for src in ("input" if i == 1 else f"lif{i - 1}", "clock")]})
    return graph


def deployed_steps(result: EventPropResult, profile: str, x_calib, calib_samples: int = 200) -> list:
    """Per layer, the weight grid of each column (in trained units) that ``compile`` gives the graph
    on ``profile`` when it calibrates on ``x_calib``: the data columns the step of the connection
    from the previous population, the bias-spike column that of the clock's connection, the
    membrane bias 0 (the 13-bit bias register: not modelled).  With a negative weight exponent e,
    Loihi's Dense shifts the summed weights right (floor), so the step is 2^-e weight units: on
    multiples of it the shift is exact.  The grid moves a little when the weights move (the
    quantizer's range comes from calibration)."""
    return deployed_grid(result, profile, x_calib, calib_samples)[0]


def deployed_grid(result: EventPropResult, profile: str, x_calib, calib_samples: int = 200,
                  clip_share: float = 0.0) -> tuple[list, list]:
    """(steps, bounds) per layer and column: :func:`deployed_steps`, and with ``clip_share`` > 0
    one exponent finer for every connection whose weights would be clipped there on at most that
    share: its step halves (unless a negative exponent's shift keeps it) and its weights are
    bounded by ``FINER_MARGIN`` of the finer range (+-hi mantissas), so that ``compile``, which
    picks the smallest exponent the largest weight fits, picks the finer one (bounds: inf elsewhere)."""
    from ..arith import weight_grid
    from ..profile import load_profile

    hp = result.hyper
    prof = load_profile(profile)
    net, _, table = _quantized(result, prof, x_calib, calib_samples)
    step, _, hi = weight_grid(prof.weights.bits, prof.weights.full_bits, prof.weights.sign_mode)
    a_m = math.exp(-hp.dt / TAU_MEM)
    g = (1 - a_m) * a_m / hp.theta   # the quantizer's gain of a trained weight (dt r / tau_mem' w_in / tau_syn')
    rows = {r["population"]: {c["src"]: c for c in r["connections"]} for r in table}
    steps, bounds = [], []
    for i, w in enumerate(result.weights, start=1):
        w = np.asarray(w)
        n_data = w.shape[1] - 2
        cols_q, cols_b = [], []
        for src, sl in ((net.input_name if i == 1 else f"lif{i - 1}", slice(0, n_data)), ("clock", slice(n_data, n_data + 1))):
            c = rows[f"lif{i}"][src]
            e, scale = int(c["weight_exp"]), c["weight_scale"]
            q, b = scale * max(step, 2 ** -e if e < 0 else 0) / g, math.inf
            if "split" in c:  # the residual connection resolves the weight to one activation unit
                q = c["split"]["resolution"] / g
            elif clip_share > 0 and e > prof.weights.exp_min:
                qf = scale / 2 * max(step, 2 ** (1 - e) if e - 1 < 0 else 0) / g
                bf = FINER_MARGIN * hi * scale / 2 / g
                if qf < q and np.mean(np.abs(w[:, sl]) > bf) <= clip_share:
                    q, b = qf, bf
            cols_q.append(q)
            cols_b.append(b)
        steps.append(np.array([cols_q[0]] * n_data + [cols_q[1], 0.0]))
        bounds.append(np.array([cols_b[0]] * n_data + [cols_b[1], math.inf]))
    return steps, bounds


QAT_EPOCHS = 10         # fine-tuning on the deployed grid (train --method eventprop --profile P)
QAT_LR = 3e-4
GRID_ROUNDS = 4         # after each fine-tuning epoch: re-calibrate the grid on the weights, round to it (_settle)
QAT_BUMP = 0.0          # fine-tuning: no weight bumping (module docstring)
QAT_TIME_GRID = True    # fine-tuning: spike times on the deployment grid too (EventPropHyper.time_grid)
CLIP_SHARE = 0.01       # fine-tuning: one weight exponent finer where it clips at most this share (deployed_grid)
FINER_MARGIN = 0.97     # ... with the weights bounded by this share of the finer range


def finetune_on_grid(result: EventPropResult, x, y, profile: str, epochs: int = QAT_EPOCHS, lr: float = QAT_LR,
                     x_val=None, y_val=None, progress: bool = False, clip_share: float = CLIP_SHARE,
                     time_grid: bool = QAT_TIME_GRID) -> EventPropResult:
    """``epochs`` of EventProp with the forward weights rounded to ``profile``'s grid
    (:func:`deployed_grid` with ``clip_share``: bounded where one exponent finer pays; straight-through
    gradient; lr decays from ``lr`` to 0.3 ``lr``; spike times on the grid with ``time_grid``; no
    weight bumping), starting from ``result``; returns the new result.  The grid is re-calibrated
    before every epoch on the current weights, with the inhibition calibrated once on ``result``
    (``x`` = training samples) and kept: the quantizer's range then moves only with the weights.
    After each epoch the weights are rounded ``GRID_ROUNDS`` times onto the grid re-calibrated on
    them (:func:`_settle`), which converges for the hidden layer (Yin-Yang 4-120-3: ``compile``'s
    largest rounding error on the input weights falls to 0.01 of a weight unit; with the inhibition
    re-calibrated every round it does not converge), so ``compile`` deploys exactly these layer-1
    weights; with validation data the epoch whose rounded weights score best on the grid model
    (:func:`.eventprop.predict_continuous` with ``grid``) is returned, else the last one, rounded.
    Not exact for the output layer: its range comes from the laterally inhibited potentials, which
    jump when an output spike moves by a step (its v LSB swings by 1.4 % from round to round), so
    ``compile`` rounds those weights once more.  The history holds both phases, the time both."""
    from .eventprop import predict_continuous, train_eventprop

    inhibition = result.extra.get("inhibition") or [a.tolist() for a in inhibition_weights(result, x)]
    cur = dataclasses.replace(result, extra={"inhibition": inhibition})
    history, best, t_grid = {"val_acc": [], "lr": []}, None, 0.0
    if x_val is not None:  # epoch 0: the trained weights, rounded as compile will deploy them
        settled, steps = _settle(cur, profile, x)
        val = float((predict_continuous(settled, x_val, result.hyper, window=True, grid=True)
                     == np.asarray(y_val)).mean())
        history["start_val_acc"] = val
        best = (val, 0, settled, steps)
    for epoch in range(1, epochs + 1):
        steps, bounds = deployed_grid(cur, profile, x, clip_share=clip_share)
        lr_e = float(lr) * 0.3 ** ((epoch - 1) / max(epochs - 1, 1))
        hyper = {**result.hyper.to_dict(), "lr": lr_e, "lr_final": 1.0, "time_grid": time_grid, "bump": QAT_BUMP}
        cur = train_eventprop(x, y, arch=result.sizes, epochs=1, batch_size=result.batch_size,
                              seed=result.seed + epoch, profile=profile, progress=progress, init_weights=cur.weights,
                              quant_steps=steps, quant_bounds=bounds, **hyper)
        cur.extra = {"inhibition": inhibition}
        t_grid += cur.train_time_s
        history["lr"].append(lr_e)
        if x_val is not None:  # choose among the weights as compile will deploy them
            settled, steps = _settle(cur, profile, x)
            val = float((predict_continuous(settled, x_val, result.hyper, window=True, grid=True)
                         == np.asarray(y_val)).mean())
            history["val_acc"].append(val)
            if best is None or val > best[0]:
                best = (val, epoch, settled, steps)
    out = cur
    if best is not None:
        out.weights, steps, history["best_epoch"] = best[2], best[3], best[1]
    else:
        out.weights, steps = _settle(out, profile, x)
    out.hyper, out.seed = result.hyper, result.seed
    out.epochs = result.epochs
    out.train_time_s = result.train_time_s + t_grid
    out.history = {"float": result.history, "on_grid": history}
    out.extra = {**result.extra, **out.extra}  # keep what training recorded (restarts)
    out.extra.update(grid_epochs=int(epochs), grid_lr=float(lr), grid_steps=[np.unique(np.round(q, 12)).tolist()
                                                                            for q in steps])
    acc = {"train": float((predict_continuous(out.weights, x, result.hyper) == np.asarray(y)).mean())}
    if x_val is not None:
        acc["val"] = float((predict_continuous(out.weights, x_val, result.hyper) == np.asarray(y_val)).mean())
    out.accuracy = {f"float_{k}": v for k, v in result.accuracy.items()} | acc
    return out


def _settle(result: EventPropResult, profile: str, x) -> tuple[list, list]:
    """The weights rounded ``GRID_ROUNDS`` times onto the grid re-calibrated on them (the grid moves
    with the weights; :func:`finetune_on_grid`), and that grid."""
    ws = [np.asarray(w, dtype=np.float64) for w in result.weights]
    for _ in range(GRID_ROUNDS):
        steps = deployed_steps(dataclasses.replace(result, weights=ws), profile, x)
        ws = [np.where(q > 0, np.round(w / np.where(q > 0, q, 1)) * q, w) for w, q in zip(ws, steps)]
    return ws, steps


def _quantized(result: EventPropResult, profile, x_calib, calib_samples: int):
    from ..encode import encode
    from ..frontends.nir import read_spiking_graph, repair_graph
    from ..quantize.lif import quantize_lif

    hp = result.hyper
    graph = eventprop_to_nir(result, (result.sizes[0],), "", None if "inhibition" in result.extra else x_calib)
    net = read_spiking_graph(repair_graph(graph, hp.dt), hp.dt)
    xc = np.asarray(x_calib, dtype=np.float64).reshape(len(x_calib), -1)[:calib_samples]
    qg, table = quantize_lif(net, profile, encode(xc, hp.steps, "latency", result.seed), 1)
    return net, qg, table


def evaluate_eventprop(result: EventPropResult, x, y, profile: str | None = None, calib_samples: int = 200,
                       x_calib=None, steps: int | None = None):
    """(continuous-time accuracy, spikes per neuron, extra).  ``extra`` holds the continuous
    accuracy counting outputs later than the deployed run as silent (``window_accuracy``) and,
    with a profile (argument or the one trained with), what ``compile --target reference --target
    fxsim`` measures on the same graph: the float NIR reference and fxsim accuracies (count
    readout), their agreement with the continuous model, spikes per neuron and the largest spike
    count of a hidden neuron.  ``x_calib``: the training samples that calibrate the inhibition
    (first 1000) and the quantizer (compile uses the first ``calib_samples`` training samples;
    default: ``x``); ``steps``: evaluate on another grid (the continuous model's inputs move to it)."""
    if steps is not None and steps != result.hyper.steps:
        result = dataclasses.replace(result, hyper=dataclasses.replace(result.hyper, steps=int(steps)).check(),
                                     extra={})
    hp = result.hyper
    y = np.asarray(y)
    times = continuous_times(result.weights, x, hp)
    dec = decide_first(times[-1])
    acc = float((dec == y).mean())
    spn = sum(float(np.isfinite(t).sum()) for t in times) / len(y) / sum(t.shape[1] for t in times)
    late = np.where(times[-1] <= hp.t_end(len(times)), times[-1], np.inf)
    extra = {"window_accuracy": float((decide_first(late) == y).mean())}
    prof = profile or result.profile
    if prof is None:
        return acc, spn, extra
    extra.update(deploy(result, x, y, prof, x if x_calib is None else x_calib, calib_samples, dec))
    return acc, spn, extra


def deploy(result: EventPropResult, x, y, profile: str, x_calib, calib_samples: int, continuous_dec) -> dict:
    """The reference and fxsim runs of ``compile`` (passes/lif.py) on :func:`eventprop_to_nir`."""
    from ..encode import encode
    from ..lif.fixed import read_qlif, simulate_fixed
    from ..lif.reference import simulate
    from ..profile import load_profile

    hp = result.hyper
    net, qg, _ = _quantized(result, load_profile(profile), x_calib, calib_samples)
    xs = encode(np.asarray(x, dtype=np.float64).reshape(len(x), -1), hp.steps, "latency", result.seed)
    out = {}
    n_neurons = sum(p.neurons for p in net.populations.values())
    hidden = [k for k in net.populations if k not in (net.readout, "clock")]
    for name, run in (("reference", simulate(net, xs)), ("deployed", simulate_fixed(read_qlif(qg), xs))):
        d = run.scores.argmax(1)
        out[f"{name}_accuracy"] = float((d == y).mean())
        out[f"{name}_agreement"] = float((d == continuous_dec).mean())
        out[f"{name}_spikes_per_neuron"] = float(sum(c.sum() for c in run.counts.values()) / len(y) / n_neurons)
        out[f"{name}_hidden_max_spikes"] = int(max((run.counts[k].max() for k in hidden), default=0))
    out["run_steps"] = int(hp.steps) + net.depth
    return out


__all__ = ["QAT_EPOCHS", "deploy", "deployed_grid", "deployed_steps", "euler_exact_params", "evaluate_eventprop", "eventprop_to_nir",
           "finetune_on_grid", "inhibition_weights"]
