"""The canonical ANN form every later stage reads, its checker, and BatchNorm folding.

A canonical network is an ``nn.Sequential`` whose children are only ``nn.Linear``,
``nn.Conv2d``, ``nn.ReLU``, ``nn.Flatten``, ``nn.AvgPool2d``, ``nn.MaxPool2d`` (or
:class:`SignedMaxPool2d`) and :class:`BiasMap` (a per-position bias right after a Conv2d, from a
folded BatchNorm): a chain of
affine maps, ReLUs and pools, which is what the exact ReLU -> TTFS mapping needs
(DESIGN.md section 3).  Rules, checked by :func:`check_canonical`:

* parameters are float32 and finite;
* ``Linear`` sees a flat input ``(N, in_features)``; ``Conv2d`` and the pools see ``(N, C, H, W)``;
* ``Conv2d``: dilation 1, groups 1, ``padding_mode='zeros'``, integer padding, any stride / bias;
* pools: padding 0, dilation 1, ``ceil_mode=False`` (and no ``divisor_override`` / indices);
* ``Flatten`` only with ``start_dim=1, end_dim=-1``;
* ``BiasMap`` directly after a Conv2d, its ``bias`` of the conv's per-sample output shape.

Frontends hand :func:`canonicalize` a raw chain ``[(name, module), ...]`` that may also hold
BatchNorm1d/2d, Dropout and Identity.  Dropout and Identity are dropped.  BatchNorm (eval-mode
running statistics, y = s*x + t per channel with s = gamma/sqrt(var+eps), t = beta - mean*s)
is folded into an affine layer:

* directly after a Linear/Conv2d: W' = s*W, b' = s*b + t (row-wise), exact;
* otherwise (after a ReLU, a pool or at the input) into the *next* Linear/Conv2d, across
  Flatten/Dropout/Identity, average pools and max-pools: W' = W*s (column-wise), b' = b + W t.
  Exact for Linear and for an unpadded Conv2d.  A padded Conv2d pads the BN *output* with zeros:
  conv_pad(s*x + t) = conv_pad(W*s; x) + conv_pad(W; t), and the second term is constant only
  inside the map (sum W t); at the borders the padded taps miss their share of t.  The fold is
  still exact: the conv keeps the interior bias b + sum W t and a :class:`BiasMap` right after it
  adds the per-position border correction conv_pad(W; t) - sum W t (zero inside).  The TTFS
  conversion reads the two as one per-neuron bias (every neuron has its own threshold anyway,
  DESIGN.md section 3: padding makes thresholds position-dependent).
* across a pool: an average pool (no padding) commutes with the per-channel map exactly; a
  max-pool commutes with it where s >= 0 (max(s x + t) = s max(x) + t); a channel with s < 0
  needs a *min*-pool (max(s x + t) = s min(x) + t), so the pool becomes a :class:`SignedMaxPool2d`
  that min-pools those channels (in TTFS: the latest spike, silent if any input is silent;
  docs/ttfs_neuron.md).

Longer than 400 lines: the canonical form, its checks and the BatchNorm folds (into the previous
layer, the next one with its border map, and through pools) are one set of rules about one chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import InvalidModel, UnsupportedOperator


class BiasMap(nn.Module):
    """y = x + bias with ``bias`` of the full per-sample shape (C, H, W): a per-neuron bias.

    Written by BatchNorm folding before a padded Conv2d (module docstring); it always follows
    that Conv2d directly and holds only the border correction (zero inside the map).
    """

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.bias = nn.Parameter(torch.as_tensor(bias, dtype=torch.float32).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.bias.shape)}"


class SignedMaxPool2d(nn.MaxPool2d):
    """A MaxPool2d that min-pools the channels in ``min_channels``: what a max-pool computes after a
    BatchNorm with a negative scale s on those channels, once the BatchNorm is moved behind it,
    max(s x + t) = s min(x) + t.  The TTFS network runs these channels as min-pool neurons (the
    latest input spike wins; docs/ttfs_neuron.md)."""

    def __init__(self, pool: nn.MaxPool2d, min_channels):
        super().__init__(pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.return_indices,
                         pool.ceil_mode)
        self.min_channels = tuple(int(c) for c in min_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if self.min_channels:
            idx = list(self.min_channels)
            y = y.clone()
            y[:, idx] = -super().forward(-x[:, idx])
        return y


CANONICAL_TYPES = (nn.Linear, nn.Conv2d, nn.ReLU, nn.Flatten, nn.AvgPool2d, nn.MaxPool2d, SignedMaxPool2d, BiasMap)
AFFINE_TYPES = (nn.Linear, nn.Conv2d)
FOLDABLE_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
REMOVED_TYPES = (nn.Dropout, nn.Identity)
SUPPORTED_MODULES = [t.__name__ for t in CANONICAL_TYPES + FOLDABLE_TYPES + REMOVED_TYPES
                     if t not in (BiasMap, SignedMaxPool2d)]  # ours: made by canonicalize, not given by users


@dataclass
class AnnModel:
    """A ReLU network in canonical form.

    ``net`` maps a float32 batch ``(N, *input_shape)`` to logits ``(N, n_classes)``.
    ``layer_names[i]`` is the source's name of ``net[i]`` (ONNX node name or torch module
    path), used in messages and reports.
    """

    net: nn.Sequential
    input_shape: tuple
    layer_names: list[str] = field(default_factory=list)
    name: str = "ann"


def _where(where: str) -> str:
    return f" in {where}" if where else ""


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def run_layer(lname: str, m: nn.Module, shape: tuple, where: str) -> tuple:
    """Run ``m`` on a zeros batch of per-sample ``shape``; return the per-sample output shape."""
    try:
        with torch.no_grad():
            y = m(torch.zeros((1, *shape), dtype=torch.float32))
    except Exception as e:  # any shape error is the model's fault
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidModel(
            f"layer {lname!r} ({type(m).__name__}){_where(where)} cannot take an input of shape "
            f"{shape} (batch dim excluded): {msg}"
        ) from None
    out = tuple(y.shape[1:])
    if any(d <= 0 for d in out):
        raise InvalidModel(
            f"layer {lname!r} ({type(m).__name__}){_where(where)} gives an empty output {out} "
            f"for input {shape}"
        )
    return out


def _check_layer(lname: str, m: nn.Module, shape: tuple, where: str = "") -> None:
    """Raise if one canonical child ``m`` breaks a rule for its per-sample input ``shape``."""
    kind = type(m).__name__
    if type(m) not in CANONICAL_TYPES:
        raise UnsupportedOperator(kind, lname, [t.__name__ for t in CANONICAL_TYPES], where)

    def bad(why: str):
        raise InvalidModel(f"layer {lname!r} ({kind}){_where(where)} is not canonical: {why}")

    for pname, p in m.named_parameters():
        if p.dtype != torch.float32:
            bad(f"parameter {pname!r} is {p.dtype}, expected torch.float32")
        if not torch.isfinite(p).all():
            bad(f"parameter {pname!r} holds NaN or inf")
    if isinstance(m, nn.Linear) and len(shape) != 1:
        bad(f"input must be flat (N, {m.in_features}), got (N, {', '.join(map(str, shape))}); add a Flatten")
    if isinstance(m, (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d)) and len(shape) != 3:
        bad(f"input must be (N, C, H, W), got (N, {', '.join(map(str, shape))})")
    if isinstance(m, nn.Conv2d):
        if _pair(m.dilation) != (1, 1) or m.groups != 1 or m.padding_mode != "zeros":
            bad(f"needs dilation 1, groups 1, zero padding; got dilation={m.dilation}, "
                f"groups={m.groups}, padding_mode={m.padding_mode!r}")
        if isinstance(m.padding, str):
            bad(f"padding must be integers, got {m.padding!r}")
    if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
        if _pair(m.padding) != (0, 0) or m.ceil_mode:
            bad(f"needs padding 0 and ceil_mode False; got padding={m.padding}, ceil_mode={m.ceil_mode}")
    if isinstance(m, nn.MaxPool2d) and (_pair(m.dilation) != (1, 1) or m.return_indices):
        bad(f"needs dilation 1 and no indices; got dilation={m.dilation}")
    if isinstance(m, nn.AvgPool2d) and m.divisor_override is not None:
        bad(f"divisor_override={m.divisor_override} is not supported")
    if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
        bad(f"needs start_dim=1, end_dim=-1; got start_dim={m.start_dim}, end_dim={m.end_dim}")
    if isinstance(m, BiasMap) and tuple(m.bias.shape) != tuple(shape):
        bad(f"bias of shape {tuple(m.bias.shape)} for an input of shape {tuple(shape)}; they must match")


def check_canonical(model: AnnModel, where: str = "") -> None:
    """Raise :class:`InvalidModel` / :class:`UnsupportedOperator` naming the layer at fault.

    Checks the child types and their rules (module docstring), then runs a zeros batch
    ``(1, *input_shape)`` through the chain layer by layer to check the shapes.
    """
    if not isinstance(model.net, nn.Sequential):
        raise InvalidModel(f"model {model.name!r}{_where(where)}: net must be nn.Sequential, "
                           f"got {type(model.net).__name__}")
    children = list(model.net)
    if not children:
        raise InvalidModel(f"model {model.name!r}{_where(where)} has no layers")
    if len(model.layer_names) != len(children):
        raise InvalidModel(f"model {model.name!r}{_where(where)}: {len(model.layer_names)} layer names "
                           f"for {len(children)} layers")
    shape = tuple(model.input_shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise InvalidModel(f"model {model.name!r}{_where(where)}: input_shape must be positive ints, "
                           f"got {model.input_shape!r}")
    for i, (lname, m) in enumerate(zip(model.layer_names, children)):
        _check_layer(lname, m, shape, where)
        if isinstance(m, BiasMap) and (i == 0 or not isinstance(children[i - 1], nn.Conv2d)):
            raise InvalidModel(f"layer {lname!r} (BiasMap){_where(where)} is not canonical: it must "
                               "directly follow a Conv2d")
        shape = run_layer(lname, m, shape, where)


# ---------------------------------------------------------------------------------------------
# canonicalization: copy supported layers, drop Dropout/Identity, fold BatchNorm


def _copy_layer(lname: str, m: nn.Module, where: str) -> nn.Module:
    """A fresh float32 canonical copy of ``m`` (rules are checked later by _check_layer)."""
    f32 = lambda p: None if p is None else p.detach().to(torch.float32).clone()  # noqa: E731
    if isinstance(m, nn.Linear):
        new = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    elif isinstance(m, nn.Conv2d):
        padding = m.padding
        if isinstance(padding, str):  # 'valid' -> 0; 'same' -> symmetric only for odd kernels
            k = _pair(m.kernel_size)
            if padding == "valid":
                padding = (0, 0)
            elif all(kk % 2 == 1 for kk in k) and _pair(m.dilation) == (1, 1):
                padding = tuple((kk - 1) // 2 for kk in k)
            else:
                raise UnsupportedOperator(f"Conv2d(padding={padding!r}) with kernel {k}", lname,
                                          SUPPORTED_MODULES, where)
        new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=padding,
                        dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                        padding_mode=m.padding_mode)
    elif isinstance(m, nn.ReLU):
        return nn.ReLU()
    elif isinstance(m, BiasMap):
        return BiasMap(f32(m.bias))
    elif isinstance(m, nn.Flatten):
        return nn.Flatten(m.start_dim, m.end_dim)
    elif isinstance(m, nn.AvgPool2d):
        return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                            m.divisor_override)
    elif isinstance(m, nn.MaxPool2d):
        pool = nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode)
        return SignedMaxPool2d(pool, m.min_channels) if getattr(m, "min_channels", ()) else pool
    else:
        raise UnsupportedOperator(type(m).__name__, lname, SUPPORTED_MODULES, where)
    with torch.no_grad():
        new.weight.copy_(f32(m.weight))
        if m.bias is not None:
            new.bias.copy_(f32(m.bias))
    return new


def _bn_affine(lname: str, bn: nn.Module, shape: tuple, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = S*x + T; S, T float64 of the per-sample ``shape``."""
    kind = type(bn).__name__
    want = 1 if isinstance(bn, nn.BatchNorm1d) else 3
    if len(shape) != want or shape[0] != bn.num_features:
        raise InvalidModel(f"layer {lname!r} ({kind}, {bn.num_features} features){_where(where)} "
                           f"cannot take an input of shape {shape} (batch dim excluded)")
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedOperator(f"{kind} without running statistics (track_running_stats=False)",
                                  lname, SUPPORTED_MODULES, where)
    c = bn.num_features
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones(c, dtype=torch.float64)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros(c, dtype=torch.float64)
    s = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
    t = beta - bn.running_mean.double() * s
    view = (c,) + (1,) * (len(shape) - 1)
    return s.view(view).expand(shape).clone(), t.view(view).expand(shape).clone()


def _fold_into_previous(layer: nn.Module, s: torch.Tensor, t: torch.Tensor) -> None:
    """Fold y = s*x + t (per output channel/feature; full-shape tensors) into ``layer`` in place."""
    c = layer.weight.shape[0]
    s_c, t_c = s.reshape(c, -1)[:, 0], t.reshape(c, -1)[:, 0]
    w = layer.weight.detach().double()
    b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(c, dtype=torch.float64)
    w = w * s_c.view((c,) + (1,) * (w.dim() - 1))
    _set_affine(layer, w, s_c * b + t_c)


def _fold_into_next(lname: str, layer: nn.Module, s: torch.Tensor, t: torch.Tensor,
                    in_shape: tuple) -> BiasMap | None:
    """Fold an input map x -> s*x + t (full per-sample shape) into ``layer`` in place.

    Returns the :class:`BiasMap` to insert right after a padded Conv2d (None when the folded
    bias is the same at every position).
    """
    w = layer.weight.detach().double()
    out = w.shape[0]
    b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(out, dtype=torch.float64)
    if isinstance(layer, nn.Linear):
        _set_affine(layer, w * s.reshape(1, -1), b + w @ t.reshape(-1))
        return None
    s_c, t_c = s[:, 0, 0], t[:, 0, 0]  # per input channel (BN2d)
    interior = (w * t_c.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    _set_affine(layer, w * s_c.view(1, -1, 1, 1), b + interior)
    if _pair(layer.padding) == (0, 0):
        return None
    # zero padding of the BN output: the taps that fall on the padding miss their t, so the
    # border correction is -conv(W; t on the padding ring, 0 inside): exactly 0 inside the map
    ph, pw = _pair(layer.padding)
    c, h, wd = in_shape
    ring = t_c.view(-1, 1, 1).expand(c, h + 2 * ph, wd + 2 * pw).clone()
    ring[:, ph:ph + h, pw:pw + wd] = 0.0
    border = -torch.nn.functional.conv2d(ring[None], w, None, layer.stride, 0)[0]
    return BiasMap(border)


def _through_pool(pool: nn.Module, s: torch.Tensor, t: torch.Tensor,
                  out_shape: tuple) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    """Move a per-channel map y = s*x + t from before ``pool`` to after it (exact, see docstring);
    returns (s, t, the pool to keep): a max-pool becomes a :class:`SignedMaxPool2d` on the channels
    where s < 0."""
    s_c, t_c = s[:, 0, 0], t[:, 0, 0]
    if isinstance(pool, nn.MaxPool2d) and bool((s_c < 0).any()):
        before = set(getattr(pool, "min_channels", ()))
        neg = {int(c) for c in torch.nonzero(s_c < 0).reshape(-1)}
        pool = SignedMaxPool2d(pool, sorted(before ^ neg))  # a second negative map flips a channel back
    view = (-1, 1, 1)
    return s_c.view(view).expand(out_shape).clone(), t_c.view(view).expand(out_shape).clone(), pool


def _set_affine(layer: nn.Module, w: torch.Tensor, b: torch.Tensor) -> None:
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=torch.float32))
    with torch.no_grad():
        layer.weight.copy_(w.to(torch.float32))
        layer.bias.copy_(b.to(torch.float32))


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}:{seen[n]}")
    return out


def canonicalize(layers: list[tuple[str, nn.Module]], input_shape, name: str = "ann",
                 where: str = "") -> AnnModel:
    """Build a checked :class:`AnnModel` from a raw chain ``[(name, module), ...]``.

    ``input_shape`` is per sample (no batch dim).  The input modules are not modified.
    """
    shape = tuple(int(d) for d in input_shape)
    out: list[tuple[str, nn.Module]] = []
    pending = None  # (S, T, bn_name): a BatchNorm waiting for the next affine layer
    last_affine = False  # the last kept layer is an affine layer with nothing after it
    for lname, m in layers:
        kind = type(m).__name__
        if isinstance(m, REMOVED_TYPES):
            continue
        if isinstance(m, FOLDABLE_TYPES):
            s, t = _bn_affine(lname, m, shape, where)
            if last_affine and isinstance(out[-1][1], BiasMap):  # conv + border map: scale both
                border = out[-1][1]
                with torch.no_grad():
                    border.bias.copy_((border.bias.double() * s).to(torch.float32))
                _fold_into_previous(out[-2][1], s, t)
            elif last_affine:
                _fold_into_previous(out[-1][1], s, t)
            elif pending is None:
                pending = (s, t, lname)
            else:  # two BatchNorms in a row: compose s2*(s1*x + t1) + t2
                pending = (s * pending[0], s * pending[1] + t, pending[2])
            continue
        new = _copy_layer(lname, m, where)
        _check_layer(lname, new, shape, where)
        extra = None
        if pending is not None:
            s, t, bn_name = pending
            if isinstance(new, AFFINE_TYPES):
                extra = _fold_into_next(lname, new, s, t, shape)
                pending = None
            elif isinstance(new, nn.Flatten):
                pending = (s.reshape(-1), t.reshape(-1), bn_name)
            elif isinstance(new, (nn.MaxPool2d, nn.AvgPool2d)):
                s, t, new = _through_pool(new, s, t, run_layer(lname, new, shape, where))
                pending = (s, t, bn_name)
            else:
                raise UnsupportedOperator(
                    f"BatchNorm followed by {kind} ({lname!r}): a BatchNorm that does not follow a "
                    "Linear/Conv2d folds only into the next Linear/Conv2d, across Flatten/Dropout/Identity "
                    "and pools", bn_name, SUPPORTED_MODULES, where)
        shape = run_layer(lname, new, shape, where)
        out.append((lname, new))
        if extra is not None:
            out.append((f"{lname}.bn_border", extra))
        last_affine = isinstance(new, AFFINE_TYPES)
    if pending is not None:
        raise UnsupportedOperator(
            "BatchNorm at the end of the network (no Linear/Conv2d before or after it to fold into)",
            pending[2], SUPPORTED_MODULES, where)
    model = AnnModel(nn.Sequential(*[m for _, m in out]).eval(), shape_in(input_shape),
                     _unique([n for n, _ in out]), name)
    check_canonical(model, where)
    return model


def shape_in(input_shape) -> tuple:
    """``input_shape`` as a tuple of ints (no batch dim)."""
    return tuple(int(d) for d in input_shape)




def n_outputs(model: AnnModel) -> int:
    """Number of logits (classes) the network produces per sample."""
    with torch.no_grad():
        y = model.net(torch.zeros((1, *model.input_shape)))
    return int(math.prod(y.shape[1:]))
