"""Sweeps as Ray tasks give the same report as the serial sweep (snncompile/scaleout.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import without_timings

from snncompile.cli import main
from snncompile.errors import TargetUnavailable
from snncompile.scaleout import run_jobs


def _square(shared, job):
    return shared["offset"] + job * job


def _compile(model, out, *extra):
    return CliRunner().invoke(main, ["compile", str(model), "--dataset", "digits", "--samples", "120",
                                     "--sweep-bits", "3,8", "--sweep-steps", "4,16", "--sweep-profiles",
                                     "loihi2,ideal", "--sweep-seeds", "0,1", "--calib-samples", "200",
                                     "--seed", "0", "--out", str(out), "--quiet", *extra])


def test_serial_jobs_keep_order():
    assert run_jobs(_square, {"offset": 1}, [3, 1, 2]) == [10, 2, 5]


def test_sweep_seeds_and_profiles_serial(digits_onnx, tmp_path):
    res = _compile(digits_onnx, tmp_path / "a")
    assert res.exit_code == 0, res.output + repr(res.exception)
    sweep = json.loads((tmp_path / "a" / "report.json").read_text())["sweep"]
    rows = sweep["results"]
    assert len(rows) == 2 * 2 * 2 * 2 == sweep["jobs"]
    assert [(r["profile"], r["seed"], r["bits"], r["steps"]) for r in rows][:3] == [
        ("loihi2", 0, 3, 4), ("loihi2", 0, 3, 16), ("loihi2", 0, 8, 4)]
    assert all(r["accuracy"] is None or 0 <= r["accuracy"] <= 1 for r in rows)
    assert "profile ideal, seed 1" in sweep["markdown"]


def test_ray_address_needs_ray(digits_onnx, tmp_path):
    res = _compile(digits_onnx, tmp_path / "x", "--ray-address", "auto")
    assert res.exit_code != 0 and "--ray-address" in res.output


def test_ray_without_ray_installed_names_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(TargetUnavailable, match="pip install 'ray=="):
        run_jobs(_square, {"offset": 0}, [1], use_ray=True)


@pytest.mark.slow
def test_ray_sweep_equals_serial(digits_onnx, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'ray==2.60.0')")
    assert not ray.is_initialized()
    serial = _compile(digits_onnx, tmp_path / "serial")
    assert serial.exit_code == 0, serial.output + repr(serial.exception)
    par = _compile(digits_onnx, tmp_path / "ray", "--ray")
    if par.exit_code != 0 and "could not start a local Ray runtime" in par.output:
        pytest.skip(f"Ray cannot start here: {par.output.strip()[-300:]}")
    assert par.exit_code == 0, par.output + repr(par.exception)
    assert not ray.is_initialized()  # the runtime the sweep started is shut down again
    a = json.loads((tmp_path / "serial" / "report.json").read_text())
    b = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert len(a["sweep"]["results"]) == 16
    assert without_timings(a) == without_timings(b)
