"""Hardware profiles and the resource check."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import cnn, mlp

from snncompile.check import map_layers
from snncompile.errors import ProfileError, ProfileViolation
from snncompile.profile import available_profiles, load_profile
from snncompile.quantize.ttfs import quantize_ttfs
from snncompile.ttfs.convert import convert
from snncompile.ttfs.graph import parse_ttfs


def test_bundled_profiles_load():
    names = available_profiles()
    assert {"loihi", "loihi2", "xylo-audio2", "speck", "ideal"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert p.name == name and p.weights.bits >= 1 and p.energy.source


def test_profile_numbers_follow_lava(tmp_path):
    p = load_profile("loihi2")
    assert (p.neuron.state_bits, p.neuron.decay_bits, p.neuron.vth_shift, p.neuron.act_shift) == (24, 12, 6, 6)
    assert (p.weights.bits, p.weights.exp_min, p.weights.exp_max) == (8, -8, 7)




def _write(tmp_path, text):
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return path


def _loihi2_text():
    from importlib import resources

    return (resources.files("snncompile.hw_profiles") / "loihi2.toml").read_text()


def test_custom_profile_by_path(tmp_path):
    path = _write(tmp_path, _loihi2_text().replace('name = "loihi2"', 'name = "mine"'))
    assert load_profile(str(path)).name == "mine"


@pytest.mark.parametrize("edit,needle", [
    (lambda t: t.replace("bits = 8            #", 'bits = "eight"  #'), "[weights].bits"),
    (lambda t: t.replace("state_bits = 24", "state_bits = 3"), "[neuron].state_bits"),
    (lambda t: t.replace("cores = 128", "cores = 128\nbogus = 1"), "unknown field 'bogus'"),
    (lambda t: t.replace('arithmetic = "loihi"', 'arithmetic = "quantum"'), "arithmetic"),
    (lambda t: t.replace("[energy]", "[energyy]"), "[energy]"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_malformed_profile_names_file_and_field(tmp_path, edit, needle):
    path = _write(tmp_path, edit(_loihi2_text()))
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    assert "custom.toml" in str(err.value) and needle in str(err.value)


def test_unknown_profile_lists_available():
    with pytest.raises(ProfileError, match="loihi2"):
        load_profile("truenorth")


def _q(model, x, profile="loihi2"):
    return parse_ttfs(quantize_ttfs(convert(model, x), load_profile(profile), 8, x)[0])


def test_mlp_fits_loihi2_and_reports_cores(rng):
    x = rng.random((20, 12))
    mp = map_layers(_q(mlp(), x).layers, load_profile("loihi2"))
    assert mp["cores_used"] == len(mp["layers"])
    assert mp["layers"][0]["fan_in"] <= 12


def test_mnist_sized_net_does_not_fit_xylo(rng):
    model = mlp((784, 340, 10))
    x = rng.random((20, 784))
    layers = _q(model, x, "ideal").layers
    with pytest.raises(ProfileViolation) as err:
        map_layers(layers, load_profile("xylo-audio2"))
    msg = str(err.value)
    assert "ttfs1" in msg and "neuron model" in msg  # xylo has no TTFS neuron: the first thing that fails


def test_xylo_input_limit_is_checked(rng):
    import dataclasses

    model = mlp((784, 340, 10))
    x = rng.random((20, 784))
    layers = _q(model, x, "ideal").layers
    xylo = load_profile("xylo-audio2")
    xylo = dataclasses.replace(xylo, neuron_models=("lif", "ttfs"))  # isolate the resource check
    with pytest.raises(ProfileViolation) as err:
        map_layers(layers, xylo)
    assert err.value.resource == "input channels" and err.value.needed == 784 and err.value.limit == 16


def test_loihi1_core_budget(rng):
    import dataclasses

    x = rng.random((10, 1, 8, 8))
    layers = _q(cnn(), x, "ideal").layers
    loihi = dataclasses.replace(load_profile("loihi"), neuron_models=("lif", "ttfs"))
    small = dataclasses.replace(loihi, mapping=dataclasses.replace(loihi.mapping, cores=2))
    with pytest.raises(ProfileViolation, match="cores"):
        map_layers(layers, small)
    assert map_layers(layers, loihi)["cores_used"] == 4
    assert np.all([row["synapses"] > 0 for row in map_layers(layers, loihi)["layers"]])


def test_ttfs_network_needs_a_programmable_neuron(rng):
    x = rng.random((20, 12))
    with pytest.raises(ProfileViolation) as err:
        map_layers(_q(mlp(), x).layers, load_profile("loihi"))
    assert err.value.resource == "neuron model" and "lif" in str(err.value)
