"""The authors' VGG structure (conv -> ReLU -> BatchNorm -> padded conv / max-pool): exact folding.

BatchNorm after a ReLU folds into the next conv even when that conv pads: the border taps
miss their share of the BN shift, which a per-position bias (BiasMap) restores exactly.  A
positive BN scale commutes with a max-pool; on channels with a negative one the max-pool becomes a
min-pool (max(s x + t) = s min(x) + t), run by min-pool neurons that fire at their latest input.
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from snncompile.cli import main
from snncompile.errors import InvalidModel
from snncompile.frontends.canonical import BiasMap, check_canonical
from snncompile.frontends.torch import from_torch
from snncompile.ir import get_meta
from snncompile.train.ann import VGG_CIFAR, build_ann, canonical_model, parse_arch
from snncompile.ttfs.convert import ann_logits, clipped_ann, convert
from snncompile.ttfs.graph import parse_ttfs
from snncompile.ttfs.reference import simulate


def _bn(c, gen, negative=()):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5, generator=gen)
        bn.running_var.uniform_(0.5, 2.0, generator=gen)
        bn.weight.uniform_(0.3, 1.5, generator=gen)
        bn.bias.uniform_(-0.5, 0.5, generator=gen)
        for ch in negative:
            bn.weight[ch] = -bn.weight[ch]
    return bn.eval()


def _vgg(seed=0, negative_before_conv=(), stride=1):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), _bn(4, gen, negative_before_conv),
        nn.Conv2d(4, 5, 3, padding=1, stride=stride), nn.ReLU(), _bn(5, gen),
        nn.MaxPool2d(2), nn.Conv2d(5, 6, 3, padding=2), nn.ReLU(), _bn(6, gen),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 3 * 3 if stride == 1 else 6 * 2 * 2, 7), nn.ReLU(),
        nn.BatchNorm1d(7).eval(), nn.Linear(7, 10),
    ).eval()


def _exact(net, shape, n=64, seed=1):
    model = from_torch(net, shape)
    x = np.random.default_rng(seed).random((n, *shape)).astype(np.float32)
    with torch.no_grad():
        want = net.double()(torch.tensor(x, dtype=torch.float64)).numpy()
    net.float()
    got = ann_logits(model, x)
    assert np.abs(got - want).max() <= 1e-6 * max(1.0, np.abs(want).max())  # float32 parameters
    graph = convert(model, x)
    bounds = [layer["B"] for layer in get_meta(graph)["layers"] if layer["role"] == "hidden"]
    ref = simulate(parse_ttfs(graph), x)
    logits, acts = clipped_ann(model, bounds, x)
    net_layers = parse_ttfs(graph).spiking
    worst = 0.0
    for layer, a in zip(net_layers, acts):
        t = ref.times[layer.name]
        t_max = layer.meta["t_max"]
        act = np.where(np.isfinite(t), t_max - t, 0.0)
        worst = max(worst, float(np.abs(act - a).max()))
    assert worst <= 1e-9
    assert np.abs(ref.logits - logits).max() <= 1e-9
    assert (ref.logits.argmax(1) == got.argmax(1)).mean() == 1.0
    return model


@pytest.mark.parametrize("stride", [1, 2])
def test_bn_after_relu_before_padded_conv_is_exact(stride):
    model = _exact(_vgg(stride=stride), (3, 8, 8))
    maps = [m for m in model.net if isinstance(m, BiasMap)]
    assert len(maps) == 2  # before the two padded convs after a BN
    border = maps[0].bias.detach().numpy()
    assert np.abs(border).max() > 1e-3  # the borders really differ ...
    assert np.all(border[:, 1:-1, 1:-1] == 0) if stride == 1 else True  # ... the interior does not


def test_negative_bn_scale_before_padded_conv_is_exact():
    _exact(_vgg(seed=3, negative_before_conv=(0, 2)), (3, 8, 8))


def _neg_pool_net(seed=0, negative=(1, 3)):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), _bn(4, gen, negative=negative), nn.MaxPool2d(2),
                         nn.Conv2d(4, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(20, 3)).eval()


def test_negative_bn_scale_before_maxpool_min_pools_those_channels_exactly():
    """max(s x + t) = s min(x) + t for s < 0: those channels become min-pool neurons (latest spike)."""
    from snncompile.frontends.canonical import SignedMaxPool2d

    model = _exact(_neg_pool_net(), (3, 8, 8))
    pools = [m for m in model.net if isinstance(m, SignedMaxPool2d)]
    assert len(pools) == 1 and pools[0].min_channels == (1, 3)
    graph = convert(model, np.random.default_rng(0).random((16, 3, 8, 8)))
    assert get_meta(graph.nodes["maxpool1_1"])["min_channels"] == [1, 3]


def test_min_pool_in_the_fine_tuning_model_and_refused_by_norse():
    from snncompile.targets import run_target
    from snncompile.train.finetune import TtfsModule

    x = np.random.default_rng(4).random((20, 3, 8, 8))
    graph = convert(from_torch(_neg_pool_net(seed=4), (3, 8, 8)), x)
    logits, _, _ = TtfsModule(graph)(torch.as_tensor(x, dtype=torch.float64))
    assert np.abs(logits.detach().numpy() - simulate(parse_ttfs(graph), x).logits).max() < 1e-9
    with pytest.raises(InvalidModel, match="min-pools channels"):
        run_target("norse", graph, x[:2])


@pytest.mark.parametrize("K", [4, 16])
def test_min_pool_closed_form_equals_the_neuron_program(K):
    """fxsim: the min-pool closed form (count = the window's smallest, none if an input is silent)
    equals integer_step run step by step, which fires on u once the whole window has arrived."""
    from snncompile.profile import load_profile
    from snncompile.quantize.ttfs import quantize_ttfs
    from snncompile.targets import run_target

    model = from_torch(_neg_pool_net(seed=2), (3, 8, 8))
    x = np.random.default_rng(3).random((40, 3, 8, 8))
    x[:10, :, :4] = 0.0  # silent inputs: some min-pool windows never complete
    q, _ = quantize_ttfs(convert(model, x), load_profile("loihi2"), K, x)
    auto = run_target("fxsim", q, x, mode="auto")
    step = run_target("fxsim", q, x, mode="stepped")
    assert np.array_equal(auto.raw_logits, step.raw_logits)
    for la, lb in zip(auto.layers, step.layers):
        assert np.array_equal(la.times, lb.times), la.name
    ref = run_target("reference", convert(model, x), x)
    assert np.mean(auto.decisions == ref.decisions) >= 0.9


def test_positive_bn_through_maxpool_and_avgpool_is_exact():
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), _bn(3, gen), nn.MaxPool2d(2), nn.Conv2d(3, 4, 1, padding=1),
                        nn.ReLU(), _bn(4, gen), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)).eval()
    _exact(net, (2, 6, 6))


def test_input_bn_and_bn_after_a_folded_padded_conv_are_exact():
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    net = nn.Sequential(_bn(3, gen, negative=(1,)), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), _bn(4, gen, (2,)),
                        nn.Conv2d(4, 5, 3, padding=(2, 1), stride=2), _bn(5, gen, (0,)), nn.ReLU(), nn.Flatten(),
                        nn.Linear(5 * 5 * 4, 3)).eval()
    model = _exact(net, (3, 8, 8))
    assert [type(m).__name__ for m in model.net] == ["Conv2d", "BiasMap", "ReLU", "Conv2d", "BiasMap", "ReLU",
                                                     "Flatten", "Linear"]


def test_biasmap_must_follow_a_conv():
    from snncompile.frontends.canonical import AnnModel

    bad = AnnModel(nn.Sequential(nn.Flatten(), BiasMap(torch.zeros(12)), nn.Linear(12, 2)), (3, 2, 2),
                   ["f", "b", "fc"])
    with pytest.raises(InvalidModel, match="'b'.*directly follow a Conv2d"):
        check_canonical(bad)


def test_arch_bn_token():
    shape, tokens = parse_arch(VGG_CIFAR)
    assert shape == (3, 32, 32) and tokens.count(("bn",)) == 6
    assert sum(t[0] == "conv" for t in tokens) == 6
    for bad in ("3x8x8-bn-c4k3-10", "3x8x8-c4k3-bn-bn-10", "3x8x8-c4k3-bx-10"):
        with pytest.raises(InvalidModel, match="bad architecture spec"):
            parse_arch(bad)
    model = build_ann("3x8x8-c4k3p1-bn-c4k3p1-bn-m2-16-bn-5", seed=0)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.net) == 2
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.net) == 1
    canon = canonical_model(model)
    assert sum(isinstance(m, BiasMap) for m in canon.net) == 1
    check_canonical(canon)


def test_bn_model_onnx_round_trip_folds_exactly(tmp_path):
    from snncompile.frontends import load_model
    from snncompile.train.ann import export_onnx_with_bn

    model = build_ann("3x8x8-c4k3p1-bn-c5k3p1-bn-m2-6-3", seed=1)
    with torch.no_grad():  # BatchNorms with real statistics and a negative scale before the padded conv
        for m in model.net:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.4, 0.4)
        model.net[2].weight[0] = -0.7
        model.net[5].weight.abs_()
    model.net.eval()
    export_onnx_with_bn(model, tmp_path / "m.onnx")
    loaded = load_model(str(tmp_path / "m.onnx"))
    assert sum(isinstance(m, BiasMap) for m in loaded.net) == 1
    x = np.random.default_rng(0).random((20, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = model.net(torch.as_tensor(x)).double().numpy()
    assert np.abs(ann_logits(loaded, x) - want).max() <= 1e-5


@pytest.mark.slow
def test_small_vgg_through_the_cli_on_npz(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=rng.integers(0, 256, (48, 3, 8, 8), dtype=np.uint8), y_train=rng.integers(0, 3, 48),
             x_test=rng.integers(0, 256, (12, 3, 8, 8), dtype=np.uint8), y_test=rng.integers(0, 3, 12))
    onnx_path = tmp_path / "vgg.onnx"
    arch = "3x8x8-c4k3p1-bn-c4k3p1-bn-m2-c6k3p1-bn-a2-8-3"
    res = CliRunner().invoke(main, ["train", "--dataset", f"npz:{data}", "--arch", arch, "--epochs", "1",
                                    "--seed", "0", "--output", str(onnx_path)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compile", str(onnx_path), "--dataset", f"npz:{data}", "--target", "reference",
                                    "--target", "fxsim", "--seed", "0", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["reference"]["agreement_with_ann"] == 1.0
    assert rep["reference"]["max_activation_error"] <= 1e-9
    assert rep["targets"]["fxsim"]["agreement_with_reference"] >= 0.9


def test_reference_bounded_memory_options_agree():
    model = from_torch(_vgg(seed=2), (3, 8, 8))
    x = np.random.default_rng(4).random((17, 3, 8, 8)).astype(np.float32)
    net = parse_ttfs(convert(model, x))
    full = simulate(net, x, batch_size=2000)
    small = simulate(net, x, batch_size=5, progress=True)
    np.testing.assert_array_equal(full.logits, small.logits)
    for name, t in full.times.items():
        np.testing.assert_array_equal(t, small.times[name])
    keep = net.spiking[0].name
    lean = simulate(net, x, keep_times=[keep], work_bytes=1)  # work_bytes=1: one sample per batch
    np.testing.assert_array_equal(lean.logits, full.logits)
    np.testing.assert_array_equal(lean.times[keep], full.times[keep])
    for name, t in full.times.items():
        if name != keep:
            assert lean.times[name].shape == (17,)
            np.testing.assert_array_equal(lean.times[name], np.isfinite(t).sum(1))
    none = simulate(net, x, keep_times=False)
    np.testing.assert_array_equal(none.input_times[:, 0], np.isfinite(full.input_times).sum(1))


# ---------------------------------------------------------------- spike budget (finetune --spike-budget)


@pytest.fixture(scope="module")
def digits_small():
    from snncompile.data import as_model_input, load_dataset
    from snncompile.train.ann import train_ann

    data = load_dataset("digits")
    model = build_ann("64-16-10", seed=0)
    x = as_model_input(data.x_train, model.input_shape)[:300]
    train_ann(model, x, data.y_train[:300], epochs=6, seed=0, progress=False)
    return convert(model, x), np.asarray(x), np.asarray(data.y_train[:300])


@pytest.mark.slow
def test_spike_budget_search(digits_small):
    from snncompile.profile import load_profile
    from snncompile.train.finetune import finetune_spike_budget

    g, x, y = digits_small
    prof = load_profile("loihi2")
    easy = finetune_spike_budget(g, x, y, budget=10.0, profile=prof, steps=8, max_runs=4, epochs=1, progress=False)
    sb = easy.log["spike_budget"]
    assert sb["met"] and [r["penalty"] for r in sb["runs"]] == [0.0]  # plain QAT already meets it: one run
    assert sb["validation_samples"] == 30 and sb["chosen_spikes"] <= 10.0
    hard = finetune_spike_budget(g, x, y, budget=1e-6, profile=prof, steps=8, max_runs=3, epochs=1, lr=1e-3,
                                 progress=False)
    sb = hard.log["spike_budget"]
    assert not sb["met"] and [r["penalty"] for r in sb["runs"]] == [0.0, 0.1, 1.0]
    assert sb["chosen_spikes"] == min(r["spikes_per_hidden_neuron"] for r in sb["runs"])
    with pytest.raises(InvalidModel, match="spike-budget"):
        finetune_spike_budget(g, x, y, budget=0.0, profile=prof, steps=8)


@pytest.mark.parametrize("bad", [[7], [1, 1], ["1"], 1, [True]])
def test_bad_min_channels_metadata_is_a_clear_error(bad):
    from snncompile.ir import set_meta

    graph = convert(from_torch(_neg_pool_net(), (3, 8, 8)), np.random.default_rng(0).random((8, 3, 8, 8)))
    meta = dict(get_meta(graph.nodes["maxpool1_1"]))
    meta["min_channels"] = bad
    set_meta(graph.nodes["maxpool1_1"], meta)
    with pytest.raises(InvalidModel, match="maxpool1_1.*min_channels"):
        parse_ttfs(graph)
