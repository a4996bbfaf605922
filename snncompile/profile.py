"""Hardware profiles: every hardware number snncompile uses, loaded from ``hw_profiles/*.toml``.

A profile is a frozen :class:`HwProfile`.  Code never hard-codes a bit width, a shift, a
limit or an energy figure: it reads them from the profile, and each number in the TOML
carries its source in a comment.

Units: bit widths in bits; shifts as powers of two; energies in picojoules (pJ) per event.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import ProfileError

ARITHMETICS = ("loihi", "ideal", "xylo", "speck")
NEURON_MODELS = ("lif", "ttfs")
SIGN_MODES = ("mixed", "exc", "inh")
# 1-bit MIXED mantissas would hold only -2**full_bits and 0 (Lava truncates the magnitude bit away)
MIN_WEIGHT_BITS = {"mixed": 2, "exc": 1, "inh": 1}
MAPPING_STYLES = ("cores", "fixed", "layer_per_core")


@dataclass(frozen=True)
class WeightSpec:
    """Synaptic weights: a signed mantissa of ``bits`` bits times 2**(act_shift + exp).

    Loihi (Lava ``PyDenseModelBitAcc``): mantissas are clipped to [-256, 255] (MIXED) and
    their low ``8 - bits + 1`` bits zeroed, so 8-bit MIXED mantissas are even values in
    [-256, 254]; ``exp`` is a per-layer exponent in [exp_min, exp_max].
    """

    bits: int
    sign_mode: str
    exp_min: int
    exp_max: int
    full_bits: int  # width of the stored mantissa register (Lava: 8)


@dataclass(frozen=True)
class NeuronSpec:
    """Neuron state arithmetic (Lava ``PyLifModelBitAcc`` for Loihi).

    u, v are ``state_bits`` wide; decays du, dv have ``decay_bits``; thresholds are a
    ``vth_mant_bits`` mantissa shifted left by ``vth_shift``; synaptic input is shifted
    left by ``act_shift`` before it enters u; bias = bias_mant << bias_exp.
    """

    state_bits: int
    decay_bits: int
    vth_mant_bits: int
    vth_shift: int
    act_shift: int
    bias_mant_bits: int
    bias_exp_bits: int
    # spikes one neuron may emit per step (0: one, the Loihi rule); Xylo: several, subtractive reset
    max_spikes_in: int = 0
    max_spikes_hidden: int = 0
    max_spikes_out: int = 0
    synapses_per_neuron: int = 1  # synaptic currents per neuron (Xylo Audio: 2)


@dataclass(frozen=True)
class MappingSpec:
    """Resources used to place layers on the chip (0 means "no limit")."""

    style: str  # cores: layers split over identical cores; fixed: fixed input/hidden/output pools; layer_per_core
    cores: int = 0
    neurons_per_core: int = 0
    synapses_per_core: int = 0
    fan_in_max: int = 0
    fan_out_max: int = 0
    inputs_max: int = 0
    hidden_max: int = 0
    outputs_max: int = 0
    kernel_max: int = 0
    recurrent: bool = True    # recurrent connections within the hidden pool are allowed
    core_neurons: tuple = ()  # per-core neuron memory (layer_per_core style)
    core_weights: tuple = ()  # per-core weight memory (layer_per_core style)


@dataclass(frozen=True)
class EnergySpec:
    """Published per-event energies in pJ; every estimate built on them is labelled an estimate."""

    synop_pj: float
    neuron_update_pj: float
    spike_pj: float
    source: str


@dataclass(frozen=True)
class HwProfile:
    name: str
    title: str
    arithmetic: str
    neuron_models: tuple
    weights: WeightSpec
    neuron: NeuronSpec
    mapping: MappingSpec
    energy: EnergySpec
    path: str = ""
    sources: tuple = field(default=())

    @property
    def quantized(self) -> bool:
        return self.arithmetic != "ideal"

    def with_weight_bits(self, bits: int | None) -> HwProfile:
        """A copy with fewer weight bits (``--bits``); more than the profile has is an error."""
        if bits is None or bits == self.weights.bits:
            return self
        lo = MIN_WEIGHT_BITS[self.weights.sign_mode]
        if not lo <= bits <= self.weights.bits:
            raise ProfileError(
                f"--bits {bits}: profile {self.name!r} has {self.weights.bits}-bit {self.weights.sign_mode} weights; "
                f"choose {lo}..{self.weights.bits}" + (" (rule: a mixed-sign weight needs a sign bit and at least one "
                                                       "magnitude bit)" if bits < lo else "")
            )
        return dataclasses.replace(self, weights=dataclasses.replace(self.weights, bits=bits))


# field -> (type, required, check, description) per section; "" is the top level.
def _int_in(lo, hi):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, f"an integer in {lo}..{hi}"


def _num_ge(lo):
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= lo, f"a number >= {lo}"


ENERGY_MAX_PJ = 1e9  # 1 mJ per event: far above any chip; keeps every estimate finite


def _num_in(lo, hi):
    return (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi,
            f"a finite number in {lo:g}..{hi:g}")


def _one_of(options):
    return lambda v: v in options, f"one of {', '.join(options)}"


def _str():
    return lambda v: isinstance(v, str) and v != "", "a non-empty string"


def _list_of(options):
    return (lambda v: isinstance(v, list) and len(v) > 0 and all(x in options for x in v),
            f"a non-empty list drawn from {', '.join(options)}")


def _int_list():
    return (lambda v: isinstance(v, list) and all(isinstance(x, int) and x > 0 for x in v),
            "a list of positive integers")


def _str_list():
    return lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"


_SCHEMA = {
    "": {
        "name": (_str(), True), "title": (_str(), True), "arithmetic": (_one_of(ARITHMETICS), True),
        "neuron_models": (_list_of(NEURON_MODELS), True), "sources": (_str_list(), False),
    },
    "weights": {
        "bits": (_int_in(1, 32), True), "sign_mode": (_one_of(SIGN_MODES), True),
        "exp_min": (_int_in(-32, 32), True), "exp_max": (_int_in(-32, 32), True),
        "full_bits": (_int_in(1, 32), True),
    },
    "neuron": {
        "state_bits": (_int_in(8, 62), True), "decay_bits": (_int_in(1, 32), True),
        "vth_mant_bits": (_int_in(1, 62), True), "vth_shift": (_int_in(0, 32), True),
        "act_shift": (_int_in(0, 32), True), "bias_mant_bits": (_int_in(1, 62), True),
        "bias_exp_bits": (_int_in(0, 8), True), "max_spikes_in": (_int_in(0, 255), False),
        "max_spikes_hidden": (_int_in(0, 255), False), "max_spikes_out": (_int_in(0, 255), False),
        "synapses_per_neuron": (_int_in(1, 8), False),
    },
    "mapping": {
        "style": (_one_of(MAPPING_STYLES), True),
        **{k: (_int_in(0, 10**12), False) for k in (
            "cores", "neurons_per_core", "synapses_per_core", "fan_in_max", "fan_out_max",
            "inputs_max", "hidden_max", "outputs_max", "kernel_max")},
        "core_neurons": (_int_list(), False), "core_weights": (_int_list(), False),
        "recurrent": ((lambda v: isinstance(v, bool), "true or false"), False),
    },
    "energy": {
        "synop_pj": (_num_in(0, ENERGY_MAX_PJ), True), "neuron_update_pj": (_num_in(0, ENERGY_MAX_PJ), True),
        "spike_pj": (_num_in(0, ENERGY_MAX_PJ), True), "source": (_str(), True),
    },
}


def _check_section(data: dict, section: str, where: str) -> dict:
    schema = _SCHEMA[section]
    label = f"[{section}]" if section else "top level"
    unknown = sorted(set(data) - set(schema) - (set(_SCHEMA) - {""} if section == "" else set()))
    if unknown:
        sections = " and sections " + ", ".join(f"[{k}]" for k in _SCHEMA if k) if section == "" else ""
        raise ProfileError(f"{where}: {label}: unknown field {unknown[0]!r}; expected one of {', '.join(schema)}"
                           f"{sections}")
    out = {}
    for key, ((check, what), required) in schema.items():
        if key not in data:
            if required:
                raise ProfileError(f"{where}: {label}: missing field {key!r} ({what})")
            continue
        value = data[key]
        if not check(value):
            raise ProfileError(f"{where}: {label}.{key}: expected {what}, got {value!r}")
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def parse_profile(data: dict, where: str) -> HwProfile:
    """Validate a parsed TOML document and build the profile; errors name the file and field."""
    top = _check_section(data, "", where)
    parts = {}
    for section in ("weights", "neuron", "mapping", "energy"):
        if section not in data or not isinstance(data[section], dict):
            raise ProfileError(f"{where}: missing section [{section}]")
        parts[section] = _check_section(data[section], section, where)
    w = parts["weights"]
    if w["exp_min"] > w["exp_max"]:
        raise ProfileError(f"{where}: [weights].exp_min ({w['exp_min']}) exceeds exp_max ({w['exp_max']})")
    if w["bits"] > w["full_bits"]:
        raise ProfileError(f"{where}: [weights].bits ({w['bits']}) exceeds full_bits ({w['full_bits']})")
    if w["bits"] < MIN_WEIGHT_BITS[w["sign_mode"]]:
        raise ProfileError(f"{where}: [weights].bits = {w['bits']} with sign_mode {w['sign_mode']!r}; rule: at least "
                           f"{MIN_WEIGHT_BITS[w['sign_mode']]} (a sign bit and a magnitude bit)")
    m = parts["mapping"]
    if m["style"] == "layer_per_core" and len(m.get("core_neurons", ())) != len(m.get("core_weights", ())):
        raise ProfileError(f"{where}: [mapping].core_neurons and core_weights must have the same length")
    return HwProfile(
        name=top["name"], title=top["title"], arithmetic=top["arithmetic"],
        neuron_models=top["neuron_models"], sources=top.get("sources", ()),
        weights=WeightSpec(**w), neuron=NeuronSpec(**parts["neuron"]),
        mapping=MappingSpec(**m), energy=EnergySpec(**parts["energy"]), path=where,
    )


def bundled_dir():
    return resources.files("snncompile.hw_profiles")


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.name[:-5] for p in bundled_dir().iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str | Path) -> HwProfile:
    """Load a bundled profile by name (``loihi2``) or a TOML file by path."""
    text_path = str(name_or_path)
    if text_path.endswith(".toml") or "/" in text_path or Path(text_path).exists():
        path = Path(text_path)
        if not path.is_file():
            raise ProfileError(f"profile file not found: {path}")
        where, raw = str(path), path.read_bytes()
    else:
        res = bundled_dir() / f"{text_path}.toml"
        if not res.is_file():
            raise ProfileError(f"unknown profile {text_path!r}; available: {', '.join(available_profiles())}"
                               " (or give a path to a .toml file)")
        where, raw = f"{text_path}.toml", res.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: not valid TOML: {exc}") from None
    return parse_profile(data, where)
