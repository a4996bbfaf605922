"""The trainable ReLU-equivalent form of a float TTFS graph (what :mod:`.finetune` trains).

A TTFS network equals a ReLU network with activations clipped at its windows B (DESIGN.md
section 3): hidden layer n computes a = clip(W a_prev + b, 0, B^(n)), a = t_max^(n) − t_i (no
spike ≡ 0); the readout's logits are W a_prev + b.  On the K-step grid (fxsim, Lava) a hidden
activation is a whole number of steps, a = δ·n with δ = B/K and n = round(z/δ) (ties down)
clipped to [0, K]; weights lie on the profile's grid, w = s·m with the layer's scale s and an
integer mantissa m (``arith.weight_grid``).

Trainable beyond weights and biases (all optional):

* ``learn_scales``: every layer's weight scale s (learned step size, Esser et al. 2020: the
  straight-through gradient d(s·round(w/s))/ds = round(w/s) − w/s inside the grid, the grid's
  end outside), parameterized as log s;
* ``learn_windows``: every hidden window B (the same learned-step-size gradient for δ = B/K,
  and the clip's gradient above B), as log B; a smaller B is a finer grid of spike times;
* ``time_noise``: Gaussian jitter of the spike times during training (σ in steps δ of the
  layer: a = t_max − (t_i + ε), ε ~ N(0, (σδ)²)); like the authors' spike-time noise it makes
  the network robust to timing errors and keeps activations away from rounding edges.
"""

from __future__ import annotations

import copy

import nir
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arith import weight_grid
from ..encode import ttfs_counts
from ..errors import InvalidModel
from ..ir import get_meta, set_meta
from ..profile import HwProfile
from ..quantize.fake import fake_quant_counts, fake_quant_weights
from ..quantize.rounding import layer_scale
from ..ttfs.graph import parse_ttfs


def pair(v):
    a = [int(x) for x in np.ravel(np.asarray(v))]
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round half to even forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def lsq_weights(w: torch.Tensor, scale: torch.Tensor, bits: int, full_bits: int, sign_mode: str) -> torch.Tensor:
    """Fake-quant weights with a trainable scale: s·clip(step·round(w/(s·step)), lo, hi) (the
    quantizer's rounding, :func:`snncompile.quantize.rounding.quantize_weights`)."""
    step, lo, hi = weight_grid(bits, full_bits, sign_mode)
    m = torch.clamp(ste_round(w / (scale * step)) * step, lo, hi)
    return m * scale


def lsq_counts(z: torch.Tensor, B: torch.Tensor, steps: int) -> torch.Tensor:
    """TTFS activations on the K-step grid with a trainable window B: δ·clip(n, 0, K), δ = B/K,
    n = ceil(z/δ − 1/2) (ties down as the integer neuron); straight-through for the rounding."""
    delta = B / steps
    u = z / delta
    n = u + (torch.ceil(u.detach() - 0.5) - u).detach()
    return torch.clamp(n, 0.0, float(steps)) * delta


class TtfsModule(nn.Module):
    """ReLU-equivalent form of a float TTFS graph, with trainable weights and biases."""

    def __init__(self, graph: nir.NIRGraph):
        super().__init__()
        net = parse_ttfs(graph)
        if net.quantized:
            raise InvalidModel("fine-tuning starts from the float model.nir, not model.q.nir")
        self.graph = graph
        self.net = net
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        self.log_scales = nn.ParameterDict()   # learn_scales: log of each layer's weight scale
        self.log_windows = nn.ParameterDict()  # learn_windows: log of each hidden window B
        self.scales: dict = {}
        self.scale_bits = None
        self.time_noise = 0.0
        self.layers = []
        for layer in net.layers:
            spec = {"name": layer.name, "role": layer.role, "ops": [], "shape": layer.out_shape}
            for name, node in layer.ops:
                if isinstance(node, (nir.Affine, nir.Conv2d)):  # a copy: the graph is never changed
                    self.weights[name] = nn.Parameter(torch.tensor(np.asarray(node.weight), dtype=torch.float64))
                    spec["affine"] = name
                spec["ops"].append((name, node))
            if layer.role != "maxpool":
                b = np.asarray(layer.node.v_leak, dtype=np.float64) / layer.meta["hold"] * layer.meta["t_min"]
                self.biases[layer.name] = nn.Parameter(torch.as_tensor(b.reshape(-1)))
            if layer.role == "hidden":
                spec["B"] = float(layer.meta["B"])
            spec["min_channels"] = [int(c) for c in layer.meta.get("min_channels", ())]
            self.layers.append(spec)

    # -- parameters of the quantized form ---------------------------------------------------------
    def fix_scales(self, profile: HwProfile, policy: str = "max", learn: bool = False) -> None:
        """Fix each layer's weight scale for ``profile``'s bits: the one an earlier fine-tuning stored in
        the graph, else max-abs or MSE-optimal from the current weights.  QAT trains against it
        (``learn``: as a parameter) and to_graph stores it for the quantizer."""
        w = profile.weights
        self.scale_bits = w.bits
        self.scales = {}
        for name, W in self.weights.items():
            stored = get_meta(self.graph.nodes[name]).get("weight_scale") or {}
            stored = stored.get(str(w.bits)) if isinstance(stored, dict) else None
            self.scales[name] = layer_scale(W.detach().numpy(), w.bits, w.full_bits, w.sign_mode, policy, stored)
            if learn:
                self.log_scales[name] = nn.Parameter(torch.tensor(np.log(self.scales[name]), dtype=torch.float64))

    def learn_windows(self) -> None:
        """Make every hidden window B a trainable parameter (log B)."""
        for spec in self.layers:
            if spec["role"] == "hidden":
                self.log_windows[spec["name"]] = nn.Parameter(torch.tensor(np.log(spec["B"]), dtype=torch.float64))

    def window(self, spec) -> torch.Tensor | float:
        if spec["name"] in self.log_windows:
            return torch.exp(self.log_windows[spec["name"]])
        return spec["B"]

    def sync(self) -> None:
        """Copy the learned scales and windows into the plain values (after an optimizer step)."""
        for name, p in self.log_scales.items():
            self.scales[name] = float(torch.exp(p.detach()))
        for spec in self.layers:
            if spec["name"] in self.log_windows:
                spec["B"] = float(torch.exp(self.log_windows[spec["name"]].detach()))

    def set_window(self, name: str, B: float) -> None:
        """Set a hidden layer's window (adaptive windows); a learned window follows."""
        for spec in self.layers:
            if spec["name"] == name:
                spec["B"] = float(B)
                if name in self.log_windows:
                    with torch.no_grad():
                        self.log_windows[name].fill_(np.log(B))

    def param_groups(self, lr: float) -> list:
        groups = [{"params": list(self.weights.values()) + list(self.biases.values()), "lr": lr}]
        extra = list(self.log_scales.values()) + list(self.log_windows.values())
        if extra:  # log-parameters: relative steps of about lr per update
            groups.append({"params": extra, "lr": lr})
        return groups

    def _weight_fn(self, mode, profile):
        if mode != "qat":
            return lambda name: self.weights[name]
        w = profile.weights

        def fn(name):
            if name in self.log_scales:
                return lsq_weights(self.weights[name], torch.exp(self.log_scales[name]), w.bits, w.full_bits,
                                   w.sign_mode)
            return fake_quant_weights(self.weights[name], self.scales[name], w.bits, w.full_bits, w.sign_mode)
        return fn

    # -- forward -----------------------------------------------------------------------------------
    def _apply(self, spec, a, weight_fn):
        x = a
        for name, node in spec["ops"]:
            if isinstance(node, nir.Affine):
                x = F.linear(x, weight_fn(name))
            elif isinstance(node, nir.Conv2d):
                x = F.conv2d(x, weight_fn(name), None, pair(node.stride), pair(node.padding), pair(node.dilation),
                             int(node.groups))
            elif isinstance(node, nir.Flatten):
                x = torch.flatten(x, 1)
            elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
                k, s = pair(node.kernel_size), pair(node.stride)
                x = F.avg_pool2d(x, k, s) * (k[0] * k[1] if isinstance(node, nir.SumPool2d) else 1)
        return x

    def forward(self, x: torch.Tensor, mode: str = "float", steps: int | None = None, profile: HwProfile = None,
                hw: dict | None = None):
        """Logits, the activations of every spiking layer (flattened (N, neurons)) and every hidden
        layer's pre-activation in units of its step (B/K; of B without K).

        float: clipped ReLU (the reference); qat: fake-quant; hil: target values in the forward.
        ``self.time_noise`` > 0 and ``self.training``: spike-time jitter (module docstring)."""
        K = steps
        if mode in ("qat", "hil"):
            a = torch.as_tensor(ttfs_counts(x.detach().numpy(), K), dtype=torch.float64) / K
        else:
            a = x
        a = a.reshape((len(x), *self.net.input_shape))
        acts, pre = [], []
        prev_B = 1.0
        noisy = self.training and self.time_noise > 0 and mode != "hil"
        for spec in self.layers:
            if spec["role"] == "maxpool":
                (_, pool), = spec["ops"]
                k, st = pair(pool.kernel_size), pair(pool.stride)
                mins = spec["min_channels"]
                pooled = F.max_pool2d(a, k, st)
                if mins:  # min-pool channels (a negative BatchNorm scale before the pool)
                    pooled = torch.cat([pooled[:, c:c + 1] if c not in mins else -F.max_pool2d(-a[:, c:c + 1], k, st)
                                        for c in range(a.shape[1])], dim=1)
                a = pooled
                if mode == "hil":
                    c = torch.as_tensor(hw["counts"][spec["name"]], dtype=torch.float64).reshape(a.shape)
                    a = c * prev_B / K + (a - a.detach())  # the target's value, the float gradient
                acts.append(a.reshape(len(a), -1))
                continue
            wf = self._weight_fn(mode, profile)
            z = self._apply(spec, a, wf).reshape(len(a), -1) + self.biases[spec["name"]]
            shape = (len(a), *spec["shape"])
            if spec["role"] == "readout":
                if mode == "hil":
                    z = torch.as_tensor(hw["logits"], dtype=torch.float64) + (z - z.detach())
                return z, acts, pre
            B = self.window(spec)
            Bf = float(B.detach()) if torch.is_tensor(B) else float(B)
            if noisy and K:  # jitter of the spike time = jitter of the activation t_max - t_i
                z = z + torch.randn_like(z) * (self.time_noise * Bf / K)
            pre.append(z / (Bf / K) if K else z / Bf)
            if mode == "float":
                a = torch.minimum(torch.relu(z), B) if torch.is_tensor(B) else torch.clamp(z, 0.0, B)
            elif mode == "qat":
                a = lsq_counts(z, B, K) if torch.is_tensor(B) else fake_quant_counts(z, B / K, K)
            else:
                c = torch.as_tensor(hw["counts"][spec["name"]], dtype=torch.float64).reshape(len(a), -1)
                base = torch.clamp(z, 0.0, Bf)
                a = c * Bf / K + (base - base.detach())
            acts.append(a)
            a = a.reshape(shape)
            prev_B = Bf
        raise InvalidModel("TTFS graph without a readout")

    # -- back to a graph ---------------------------------------------------------------------------
    def to_graph(self, window_scale: float = 1.0, extra_meta: dict | None = None) -> nir.NIRGraph:
        """The float TTFS graph with the current parameters (windows scaled by ``window_scale``)."""
        self.sync()
        g = copy.deepcopy(self.graph)
        t_min = 1.0
        meta = get_meta(g)
        layer_meta = []
        prev: dict = {}  # the hidden layer a max-pool belongs to
        for spec, layer in zip(self.layers, parse_ttfs(g).layers):
            node = g.nodes[layer.name]
            m = dict(get_meta(node))
            for name, _ in spec["ops"]:
                if name in self.weights:
                    g.nodes[name].weight = self.weights[name].detach().numpy().copy()
                    if self.scales:
                        am = dict(get_meta(g.nodes[name]))
                        am["weight_scale"] = {**(am.get("weight_scale") or {}),
                                              str(self.scale_bits): self.scales[name]}
                        set_meta(g.nodes[name], am)
            if spec["role"] == "maxpool":
                m.update(t_min=prev["t_min"], t_max=prev["t_max"])
                set_meta(node, m)
                layer_meta.append({"name": layer.name, "role": "maxpool", "t_min": m["t_min"], "t_max": m["t_max"]})
                continue
            b = self.biases[spec["name"]].detach().numpy().reshape(np.shape(node.v_leak))
            node.v_leak = m["hold"] * b / t_min
            m["t_min"] = t_min
            if spec["role"] == "hidden":
                B = spec["B"] * window_scale
                m.update(B=B, t_max=t_min + B)
                node.v_threshold = np.full(np.shape(node.v_threshold), B)
                layer_meta.append({"name": layer.name, "role": "hidden", "t_min": t_min, "t_max": t_min + B, "B": B,
                                   "X": m.get("X")})
                prev = {"t_min": t_min, "t_max": t_min + B}  # a following max-pool shares this window
                t_min = t_min + B
            else:
                layer_meta.append({"name": layer.name, "role": "readout", "t_min": t_min})
            set_meta(node, m)
        meta["layers"] = layer_meta
        if extra_meta:
            meta.update(extra_meta)
        set_meta(g, meta)
        return g
