"""Build and train ReLU ANNs from a compact architecture spec.

Spec grammar (tokens separated by ``-``)::

    spec    := input ("-" layer)* "-" classes
    input   := N | CxHxW                      e.g. 784, 1x28x28
    layer   := N                              Linear(N) + ReLU
             | c<out>k<k>[s<stride>][p<pad>]  Conv2d + ReLU (stride 1, padding 0 by default)
             | m<k>                           MaxPool2d(k), stride k
             | a<k>                           AvgPool2d(k), stride k
             | bn                             BatchNorm after the previous layer's ReLU (or pool)
    classes := N                              the last Linear: logits, no ReLU

A Flatten is inserted before the first Linear that follows a spatial input, conv or pool.
Examples: ``784-340-10``, ``1x28x28-c8k5p2-m2-c16k5-a2-64-10``, ``1x8x8-c8k3p1-m2-32-10``.

``bn`` is the authors' VGG structure (IBM/exact-mapping-ReLUnetwork-SNN: conv -> ReLU ->
BatchNorm -> padded conv / max-pool), e.g. the VGG-style CIFAR net (:data:`VGG_CIFAR`)::

    3x32x32-c64k3p1-bn-c64k3p1-bn-m2-c128k3p1-bn-c128k3p1-bn-m2-c256k3p1-bn-c256k3p1-bn-a2-512-10

The trained network keeps its BatchNorms (``nn.BatchNorm1d/2d``); conversion folds them into the
next conv/linear (``frontends/canonical.py``: exact, with a per-position border bias before a
padded conv; a negative BN scale before a max-pool is refused).
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import InvalidModel
from ..frontends.canonical import AnnModel, canonicalize, check_canonical, n_outputs

VGG_CIFAR = ("3x32x32-c64k3p1-bn-c64k3p1-bn-m2-c128k3p1-bn-c128k3p1-bn-m2-c256k3p1-bn-c256k3p1-bn-a2-"
             "512-10")
GRAMMAR = ("spec = INPUT-LAYER-...-CLASSES; INPUT: N or CxHxW (e.g. 784, 1x28x28); LAYER: N (Linear+ReLU), "
           "c<out>k<k>[s<stride>][p<pad>] (Conv2d+ReLU), m<k> (MaxPool2d), a<k> (AvgPool2d), "
           "bn (BatchNorm after the ReLU); "
           "CLASSES: N (last Linear, no ReLU); e.g. 1x28x28-c8k5p2-m2-c16k5-a2-64-10")
_CONV = re.compile(r"c(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?")
_POOL = re.compile(r"([ma])(\d+)")


def _bad(spec: str, token: str, why: str):
    raise InvalidModel(f"bad architecture spec {spec!r} at token {token!r}: {why}. Grammar: {GRAMMAR}")


def parse_arch(spec: str) -> tuple[tuple, list[tuple]]:
    """Parse ``spec`` into ``(input_shape, tokens)``.

    Tokens are tuples: ``("linear", n)``, ``("conv", out, k, stride, pad)``, ``("maxpool", k)``,
    ``("avgpool", k)``, ``("bn",)``; the last is always ``("linear", classes)``.  A ``bn`` must
    follow a hidden layer or a pool (not the input, not another ``bn``).  Shapes are checked: a conv
    or pool needs a CxHxW input and must leave a non-empty map.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidModel(f"bad architecture spec {spec!r}: empty. Grammar: {GRAMMAR}")
    parts = [p.strip() for p in spec.strip().split("-")]
    head = parts[0]
    if not re.fullmatch(r"\d+(x\d+x\d+)?", head):
        _bad(spec, head, "the input must be N or CxHxW")
    input_shape = tuple(int(d) for d in head.split("x"))
    if min(input_shape) <= 0:
        _bad(spec, head, "input sizes must be positive")
    if len(parts) < 2:
        _bad(spec, head, "the spec needs at least one layer (the class count)")
    if not parts[-1].isdigit():
        _bad(spec, parts[-1], "the last token must be an integer (the class count)")
    shape, tokens = input_shape, []
    for tok in parts[1:]:
        if tok.isdigit():
            n = int(tok)
            if n <= 0:
                _bad(spec, tok, "a Linear layer needs at least one unit")
            tokens.append(("linear", n))
            shape = (n,)
            continue
        if tok == "bn":
            if not tokens or tokens[-1][0] == "bn":
                _bad(spec, tok, "a bn needs a layer before it (a BatchNorm after that layer's ReLU)")
            tokens.append(("bn",))
            continue
        conv, pool = _CONV.fullmatch(tok), _POOL.fullmatch(tok)
        if not (conv or pool):
            _bad(spec, tok, "unknown layer token")
        if len(shape) != 3:
            _bad(spec, tok, f"a conv or pool needs a CxHxW input, but its input is flat {shape}")
        c, h, w = shape
        if conv:
            out, k, s, p = (int(g) if g is not None else d for g, d in zip(conv.groups(), (0, 0, 1, 0)))
            if out <= 0 or k <= 0 or s <= 0:
                _bad(spec, tok, "channels, kernel and stride must be positive")
            tokens.append(("conv", out, k, s, p))
            shape = (out, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        else:
            k = int(pool.group(2))
            if k <= 0:
                _bad(spec, tok, "pool size must be positive")
            tokens.append(("maxpool" if pool.group(1) == "m" else "avgpool", k))
            shape = (c, (h - k) // k + 1, (w - k) // k + 1)
        if min(shape[1:]) <= 0:
            _bad(spec, tok, f"the kernel {k} is larger than its {h}x{w} input (with padding)")
    return input_shape, tokens


def build_ann(spec: str, seed: int = 0) -> AnnModel:
    """Build a freshly initialized :class:`AnnModel` from ``spec`` (see :func:`parse_arch`).

    Layers are named ``conv1, relu1, maxpool1, avgpool1, flatten, fc1, ...``; the last ``fcK``
    gives the logits.  Initialization uses ``seed`` without touching torch's global RNG state.
    """
    input_shape, tokens = parse_arch(spec)
    layers: list[tuple[str, nn.Module]] = []
    count: dict[str, int] = {}
    shape = input_shape

    def add(kind: str, module: nn.Module) -> None:
        count[kind] = count.get(kind, 0) + 1
        layers.append((kind if kind == "flatten" else f"{kind}{count[kind]}", module))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for j, tok in enumerate(tokens):
            last = j == len(tokens) - 1
            if tok[0] == "linear":
                if len(shape) != 1:
                    add("flatten", nn.Flatten())
                    shape = (int(np.prod(shape)),)
                add("fc", nn.Linear(shape[0], tok[1]))
                shape = (tok[1],)
                if not last:
                    add("relu", nn.ReLU())
            elif tok[0] == "bn":
                add("bn", nn.BatchNorm1d(shape[0]) if len(shape) == 1 else nn.BatchNorm2d(shape[0]))
            elif tok[0] == "conv":
                _, out, k, s, p = tok
                add("conv", nn.Conv2d(shape[0], out, k, stride=s, padding=p))
                add("relu", nn.ReLU())
                shape = (out, (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
            else:
                k = tok[1]
                add(tok[0], nn.MaxPool2d(k) if tok[0] == "maxpool" else nn.AvgPool2d(k))
                shape = (shape[0], (shape[1] - k) // k + 1, (shape[2] - k) // k + 1)
    model = AnnModel(nn.Sequential(OrderedDict(layers)), input_shape, [n for n, _ in layers], spec)
    if any(t[0] == "bn" for t in tokens):  # trained with its BatchNorms; check that they fold
        canonical_model(model)
    else:
        check_canonical(model)
    return model


def canonical_model(model: AnnModel) -> AnnModel:
    """``model`` in canonical form: its BatchNorms (eval-mode statistics) folded (a new model)."""
    return canonicalize(list(model.net.named_children()), model.input_shape, model.name)


def _check_data(model: AnnModel, x: np.ndarray, y: np.ndarray | None, what: str) -> None:
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise InvalidModel(f"{what}: network {model.name!r} takes samples of shape {tuple(model.input_shape)}, "
                           f"the data has {tuple(x.shape[1:])}")
    if y is not None:
        if len(y) != len(x):
            raise InvalidModel(f"{what}: {len(x)} samples but {len(y)} labels")
        k = n_outputs(model)
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise InvalidModel(f"{what}: labels span {int(y.min())}..{int(y.max())}, but network "
                               f"{model.name!r} has {k} outputs")


def _accuracy(model: AnnModel, x: np.ndarray, y: np.ndarray) -> float:
    return float((evaluate_ann(model, x).argmax(1) == np.asarray(y)).mean())


def train_ann(model: AnnModel, x_train: np.ndarray, y_train: np.ndarray, *, epochs: int = 10,
              batch_size: int = 64, lr: float = 1e-3, seed: int = 0, x_val=None, y_val=None,
              progress: bool = True, weight_decay: float = 0.0, num_threads: int | None = None) -> dict:
    """Train ``model.net`` in place with Adam on cross-entropy; return the history.

    ``x_train``: float32 ``(N, *input_shape)``; ``y_train``: int labels ``(N,)``.  Shuffling uses a
    ``torch.Generator`` seeded with ``seed``; the same seed gives bit-identical weights on CPU.
    torch's global RNG state is left unchanged; ``torch.set_num_threads`` is set only when
    ``num_threads`` is given (and restored afterwards).

    Returns ``{"epoch": [1..E], "train_loss": [...], "train_acc": [...], "val_acc": [...]}``:
    mean loss and accuracy over each epoch's batches (during training), and accuracy on
    ``(x_val, y_val)`` after each epoch (``None`` without validation data).
    """
    x_train = np.asarray(x_train, dtype=np.float32)
    y_train = np.asarray(y_train, dtype=np.int64)
    _check_data(model, x_train, y_train, "training data")
    if x_val is not None:
        x_val, y_val = np.asarray(x_val, dtype=np.float32), np.asarray(y_val, dtype=np.int64)
        _check_data(model, x_val, y_val, "validation data")
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    history = {"epoch": [], "train_loss": [], "train_acc": [], "val_acc": []}
    net, xt, yt = model.net, torch.tensor(np.asarray(x_train)), torch.tensor(np.asarray(y_train))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
            loss_fn = nn.CrossEntropyLoss()
            n = len(xt)
            bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", disable=not progress, mininterval=0.5)
            for epoch in bar:
                net.train()
                perm = torch.randperm(n, generator=gen)
                tot_loss, correct = 0.0, 0
                for start in range(0, n, batch_size):
                    idx = perm[start:start + batch_size]
                    logits = net(xt[idx])
                    loss = loss_fn(logits, yt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    tot_loss += loss.item() * len(idx)
                    correct += int((logits.argmax(1) == yt[idx]).sum())
                history["epoch"].append(epoch)
                history["train_loss"].append(tot_loss / max(n, 1))
                history["train_acc"].append(correct / max(n, 1))
                history["val_acc"].append(None if x_val is None else _accuracy(model, x_val, y_val))
                post = {"loss": f"{history['train_loss'][-1]:.4f}", "acc": f"{history['train_acc'][-1]:.3f}"}
                if x_val is not None:
                    post["val"] = f"{history['val_acc'][-1]:.3f}"
                bar.set_postfix(post)
    finally:
        net.eval()
        if num_threads is not None:
            torch.set_num_threads(old_threads)
    return history


def _batches(model: AnnModel, x: np.ndarray, batch_size: int):
    x = np.asarray(x, dtype=np.float32)
    _check_data(model, x, None, "input data")
    for start in range(0, len(x), batch_size):
        yield torch.from_numpy(x[start:start + batch_size])


def evaluate_ann(model: AnnModel, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Logits ``(N, n_classes)`` as float64 for inputs ``x`` ``(N, *input_shape)``, in eval mode."""
    net, was_training = model.net, model.net.training
    net.eval()
    try:
        with torch.no_grad():
            out = [net(xb).double().numpy() for xb in _batches(model, x, batch_size)]
    finally:
        net.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, n_outputs(model)))


def ann_activations(model: AnnModel, x: np.ndarray, batch_size: int = 1000) -> list[np.ndarray]:
    """Outputs of every ReLU in order, each float32 ``(N, *layer_shape)`` (post-activation).

    Used to calibrate the spike windows B^(n) (DESIGN.md section 3).
    """
    net, was_training = model.net, model.net.training
    net.eval()
    relus = [i for i, m in enumerate(net) if isinstance(m, nn.ReLU)]
    acts: list[list[np.ndarray]] = [[] for _ in relus]
    try:
        with torch.no_grad():
            for h in _batches(model, x, batch_size):
                for i, m in enumerate(net):
                    h = m(h)
                    if isinstance(m, nn.ReLU):
                        acts[relus.index(i)].append(h.numpy().copy())
    finally:
        net.train(was_training)
    shapes = _relu_shapes(model, relus)
    return [np.concatenate(a) if a else np.zeros((0, *s), np.float32) for a, s in zip(acts, shapes)]


def _relu_shapes(model: AnnModel, relus: list[int]) -> list[tuple]:
    h, out = torch.zeros((1, *model.input_shape)), []
    with torch.no_grad():
        for i, m in enumerate(model.net):
            h = m(h)
            if i in relus:
                out.append(tuple(h.shape[1:]))
    return out


def train_ann_command(data, arch: str, epochs: int, batch_size: int, lr: float, seed: int, output: str) -> str:
    """``snncompile train --method ann``: build, train (Adam), evaluate and export to ONNX; the summary line."""
    from ..data import as_model_input
    from ..frontends.onnx import export_onnx

    model = build_ann(arch, seed=seed)
    x = as_model_input(data.x_train, model.input_shape, data.name)
    xt = as_model_input(data.x_test, model.input_shape, data.name)
    hist = train_ann(model, x, data.y_train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                     x_val=xt, y_val=data.y_test)
    acc = float((evaluate_ann(model, xt).argmax(1) == data.y_test).mean())
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.net):
        canonical_model(model)  # refuses (naming the BN) a fold that would not be exact
        export_onnx_with_bn(model, output)
    else:
        export_onnx(model, output)
    final = f"{100 * hist['train_acc'][-1]:.2f} %" if hist["train_acc"] else "n/a (0 epochs)"
    return f"trained {arch} on {data.name}: train accuracy {final}, test accuracy {100 * acc:.2f} %; wrote {output}"


def export_onnx_with_bn(model: AnnModel, path) -> None:
    """Write a trained network that still holds its BatchNorms as ONNX (opset 17, eval mode); the ONNX
    frontend folds the BatchNormalization nodes when the model is loaded."""
    from ..frontends.onnx import export_onnx

    export_onnx(model, path, canonical=False)
