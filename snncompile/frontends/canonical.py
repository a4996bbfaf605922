"""The canonical ANN form every later stage reads, its checker, and BatchNorm folding.

A canonical network is an ``nn.Sequential`` whose children are only ``nn.Linear``,
``nn.Conv2d``, ``nn.ReLU``, ``nn.Flatten``, ``nn.AvgPool2d`` and ``nn.MaxPool2d``: a chain of
affine maps, ReLUs and pools, which is what the exact ReLU -> TTFS mapping needs
(DESIGN.md section 3).  Rules, checked by :func:`check_canonical`:

* parameters are float32 and finite;
* ``Linear`` sees a flat input ``(N, in_features)``; ``Conv2d`` and the pools see ``(N, C, H, W)``;
* ``Conv2d``: dilation 1, groups 1, ``padding_mode='zeros'``, integer padding, any stride / bias;
* pools: padding 0, dilation 1, ``ceil_mode=False`` (and no ``divisor_override`` / indices);
* ``Flatten`` only with ``start_dim=1, end_dim=-1``.

Frontends hand :func:`canonicalize` a raw chain ``[(name, module), ...]`` that may also hold
BatchNorm1d/2d, Dropout and Identity.  Dropout and Identity are dropped.  BatchNorm (eval-mode
running statistics, y = s*x + t per channel with s = gamma/sqrt(var+eps), t = beta - mean*s)
is folded into an affine layer:

* directly after a Linear/Conv2d: W' = s*W, b' = s*b + t (row-wise), exact;
* otherwise (after a ReLU, a pool or at the input) into the *next* Linear/Conv2d, across
  Flatten/Dropout/Identity only: W' = W*s (column-wise), b' = b + W t.  Exact for Linear and for
  an unpadded Conv2d; a padded Conv2d pads the BN *output* with zeros, which the folded conv
  would see as ``x = 0`` (i.e. ``t`` after BN), so that case is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import InvalidModel, UnsupportedOperator

CANONICAL_TYPES = (nn.Linear, nn.Conv2d, nn.ReLU, nn.Flatten, nn.AvgPool2d, nn.MaxPool2d)
AFFINE_TYPES = (nn.Linear, nn.Conv2d)
FOLDABLE_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
REMOVED_TYPES = (nn.Dropout, nn.Identity)
SUPPORTED_MODULES = [t.__name__ for t in CANONICAL_TYPES + FOLDABLE_TYPES + REMOVED_TYPES]


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
    for lname, m in zip(model.layer_names, children):
        _check_layer(lname, m, shape, where)
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
    elif isinstance(m, nn.Flatten):
        return nn.Flatten(m.start_dim, m.end_dim)
    elif isinstance(m, nn.AvgPool2d):
        return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                            m.divisor_override)
    elif isinstance(m, nn.MaxPool2d):
        return nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode)
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
                    bn_name: str, where: str) -> None:
    """Fold an input map x -> s*x + t (full per-sample shape) into ``layer`` in place."""
    w = layer.weight.detach().double()
    out = w.shape[0]
    b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(out, dtype=torch.float64)
    if isinstance(layer, nn.Linear):
        _set_affine(layer, w * s.reshape(1, -1), b + w @ t.reshape(-1))
        return
    if _pair(layer.padding) != (0, 0):
        raise UnsupportedOperator(
            f"BatchNorm after ReLU before a padded Conv2d ({lname!r}, padding={layer.padding}): the "
            "conv pads the normalized output with zeros, so folding the BatchNorm into it is not exact "
            "at the borders; put the BatchNorm before the ReLU or use padding 0",
            bn_name, SUPPORTED_MODULES, where)
    s_c, t_c = s[:, 0, 0], t[:, 0, 0]  # per input channel (BN2d)
    _set_affine(layer, w * s_c.view(1, -1, 1, 1), b + (w * t_c.view(1, -1, 1, 1)).sum(dim=(1, 2, 3)))


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
            if last_affine:
                _fold_into_previous(out[-1][1], s, t)
            elif pending is None:
                pending = (s, t, lname)
            else:  # two BatchNorms in a row: compose s2*(s1*x + t1) + t2
                pending = (s * pending[0], s * pending[1] + t, pending[2])
            continue
        new = _copy_layer(lname, m, where)
        _check_layer(lname, new, shape, where)
        if pending is not None:
            s, t, bn_name = pending
            if isinstance(new, AFFINE_TYPES):
                _fold_into_next(lname, new, s, t, bn_name, where)
                pending = None
            elif isinstance(new, nn.Flatten):
                pending = (s.reshape(-1), t.reshape(-1), bn_name)
            else:
                raise UnsupportedOperator(
                    f"BatchNorm followed by {kind} ({lname!r}): a BatchNorm that does not follow a "
                    "Linear/Conv2d folds only into the next Linear/Conv2d, across Flatten/Dropout/Identity",
                    bn_name, SUPPORTED_MODULES, where)
        shape = run_layer(lname, new, shape, where)
        out.append((lname, new))
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
