"""Shared fixtures: tiny networks and data that make every test fast."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import settings

from snncompile.frontends.canonical import AnnModel

# Hypothesis: the same examples on every run (make test is reproducible; a failure seen once is seen
# again); SNNCOMPILE_HYPOTHESIS=explore draws fresh ones to search for new failures.
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("SNNCOMPILE_HYPOTHESIS", "deterministic"))


def mlp(sizes=(12, 16, 10, 5), seed=0) -> AnnModel:
    torch.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    net = nn.Sequential(*mods).eval()
    return AnnModel(net, (sizes[0],), [f"l{i}" for i in range(len(net))], name="mlp")


def cnn(seed=0) -> AnnModel:
    """1x8x8 -> conv(4,3,p1) -> relu -> maxpool2 -> conv(6,3) -> relu -> avgpool2 -> flatten -> fc(5)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6, 5)).eval()
    return AnnModel(net, (1, 8, 8), [f"l{i}" for i in range(len(net))], name="cnn")


def digits_lif_chain(seed=0):
    """A spiking NIR graph for the digits data set: input(64) -> fc0 -> LIF lif0(24) -> fc1 -> LIF lif1(10)."""
    import nir

    A = np.array
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": A([64])}),
             "fc0": nir.Affine(weight=rng.normal(0.05, 0.4, (24, 64)), bias=np.zeros(24)),
             "lif0": nir.LIF(tau=A([4.0] * 24), r=A([4.0] * 24), v_leak=A([0.0] * 24), v_threshold=A([1.0] * 24)),
             "fc1": nir.Affine(weight=rng.normal(0.05, 0.4, (10, 24)), bias=np.zeros(10)),
             "lif1": nir.LIF(tau=A([4.0] * 10), r=A([4.0] * 10), v_leak=A([0.0] * 10), v_threshold=A([1.0] * 10)),
             "output": nir.Output(output_type={"output": A([10])})}
    edges = [("input", "fc0"), ("fc0", "lif0"), ("lif0", "fc1"), ("fc1", "lif1"), ("lif1", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def digits_ttfs(epochs: int):
    """A digits ReLU MLP 64-24-10 (seed 0, ``epochs`` epochs) converted to TTFS: (graph, x_train,
    y_train, x_test, y_test)."""
    from snncompile.data import as_model_input, load_dataset
    from snncompile.train.ann import build_ann, train_ann
    from snncompile.ttfs.convert import convert

    data = load_dataset("digits")
    model = build_ann("64-24-10", seed=0)
    x = as_model_input(data.x_train, model.input_shape)
    train_ann(model, x, data.y_train, epochs=epochs, seed=0, progress=False)
    xt = as_model_input(data.x_test, model.input_shape)
    return convert(model, x), x, np.asarray(data.y_train), xt, np.asarray(data.y_test)


def pytest_collection_modifyitems(config, items):
    """Tests that run Lava (the ``lava`` fixture) are marked ``lava`` and ``slow``; tests that build
    norse models are marked ``norse``.  ``make test-fast`` runs everything not marked slow."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "lava" in names:
            item.add_marker(pytest.mark.lava)
            item.add_marker(pytest.mark.slow)
        if "norse" in item.name or "norse" in (getattr(item.function, "__doc__", None) or ""):
            item.add_marker(pytest.mark.norse)


@pytest.fixture(scope="session")
def digits_onnx(tmp_path_factory):
    """A small ReLU MLP trained on digits through the CLI (64-24-10, 4 epochs, seed 0)."""
    from click.testing import CliRunner

    from snncompile.cli import main

    out = tmp_path_factory.mktemp("m") / "digits.onnx"
    res = CliRunner().invoke(main, ["train", "--dataset", "digits", "--arch", "64-24-10", "--epochs", "4",
                                    "--seed", "0", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "test accuracy" in res.output
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_mlp():
    return mlp()


@pytest.fixture
def tiny_cnn():
    return cnn()


def without_timings(obj):
    """A report with its wall-clock fields removed (``run_seconds``, ``seconds``, ``*_seconds``,
    ``seconds_per_sample``): everything else is deterministic for a given seed."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def assert_runtime_copied(folder):
    """The folder holds the program, and snnrt/ holds the package's own runtime modules, byte for byte,
    none of which imports snncompile."""
    import snncompile
    from snncompile.targets.lava.export import RUNTIME

    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "inputs.npz", "params.npz", "run_lava.py",
                                                        "snnrt"]
    pkg = snncompile.__path__[0]
    for rel in RUNTIME:
        text = (folder / "snnrt" / rel).read_text()
        assert text == open(f"{pkg}/{rel}").read(), rel
        assert "import snncompile" not in text and "from snncompile" not in text
    assert "class TtfsNeuron" in (folder / "snnrt/targets/lava/ttfs_runtime.py").read_text()
