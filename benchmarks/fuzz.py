"""Fuzz every loader and option with generated bad inputs; print a tally of outcomes.

    python benchmarks/fuzz.py [--cases 10000] [--seed 0] [--timeout 30] [--deep 0.03] [--show 5]

Cases run in this process: CLI commands through click's CliRunner (options, output paths, arch
specs) and direct library calls (NIR graphs through ``compile_model``, ONNX files, IDX folders,
profile TOMLs).  Each case knows whether its input is invalid by construction ("invalid"), valid
("valid"), or either ("any": random corruptions that may leave the input valid).  Outcomes:

* clean error  — one of our exceptions (SnnCompileError) or a CLI usage error, no traceback;
* valid        — the call succeeded and the input was not invalid by construction;
* crash        — any other exception (a traceback);
* silent       — an input invalid by construction was accepted;
* partial      — the call failed but left an output file or folder behind;
* hang         — the per-case timeout (SIGALRM) expired.

A share ``--deep`` of the NIR / profile cases that pass validation runs the whole pipeline
(reference and fxsim on 5 samples), to catch failures behind the loaders.  Exit status 1 if any
crash, silent acceptance, partial output or hang was seen.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OUTCOMES = ("clean error", "valid", "crash", "silent", "partial", "hang")


class Hang(BaseException):
    """Raised by SIGALRM; a BaseException so that neither click nor our code catches it."""


class CliFailed(Exception):
    """A CLI command exited non-zero without a traceback."""


@dataclass
class Case:
    family: str
    name: str
    expect: str                    # invalid | valid | any
    run: object                    # callable() -> None; raises on failure
    outputs: list = field(default_factory=list)  # paths that must not exist after a failure


def _alarm(signum, frame):
    raise Hang()


def classify(case: Case, timeout: float) -> tuple[str, str]:
    from snncompile.errors import SnnCompileError

    before = {str(p): Path(p).exists() for p in case.outputs}
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    detail = ""
    try:
        case.run()
        outcome = "silent" if case.expect == "invalid" else "valid"
    except Hang:
        outcome, detail = "hang", f"> {timeout} s"
    except (SnnCompileError, CliFailed) as exc:
        outcome, detail = "clean error", str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a crash is what we count
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        outcome, detail = "crash", f"{type(exc).__name__} at {where}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if outcome in ("clean error", "crash", "hang"):
        left = [p for p in case.outputs if Path(p).exists() and not before[str(p)]]
        if left and outcome == "clean error":
            outcome, detail = "partial", f"left {left[0]} ({detail})"
    return outcome, detail


# ---- fixtures: small valid inputs of every kind ----------------------------------------------------

def _cli(args: list) -> None:
    from click.testing import CliRunner

    from snncompile.cli import main

    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    if "Traceback" in res.output:
        raise RuntimeError("traceback printed: " + res.output.splitlines()[-1])
    if res.exit_code != 0:
        raise CliFailed(res.output.strip().splitlines()[-1] if res.output.strip() else f"exit {res.exit_code}")


def build_fixtures(root: Path, seed: int) -> dict:
    """A tiny ONNX MLP and CNN, their TTFS model.nir / model.q.nir, a foreign LIF graph, an IDX folder."""
    import nir

    from snncompile.data.idx import FILES, write_idx
    from snncompile.ir import write_nir

    fx = {}
    _cli(["train", "--dataset", "digits", "--arch", "64-16-10", "--epochs", "1", "--seed", seed, "-o", root / "mlp.onnx"])
    _cli(["train", "--dataset", "digits", "--arch", "1x8x8-c4k3p1-m2-16-10", "--epochs", "1", "--seed", seed,
          "-o", root / "cnn.onnx"])
    _cli(["compile", root / "mlp.onnx", "--dataset", "digits", "--target", "fxsim", "--samples", "5", "--quiet",
          "--calib-samples", "50", "--out", root / "mlp"])
    _cli(["compile", root / "cnn.onnx", "--dataset", "digits", "--target", "fxsim", "--samples", "5", "--quiet",
          "--calib-samples", "50", "--out", root / "cnn"])
    fx["mlp.onnx"], fx["cnn.onnx"] = root / "mlp.onnx", root / "cnn.onnx"
    fx["ttfs.nir"], fx["ttfs.q.nir"] = root / "mlp" / "model.nir", root / "mlp" / "model.q.nir"
    fx["cnn.nir"], fx["cnn.q.nir"] = root / "cnn" / "model.nir", root / "cnn" / "model.q.nir"
    rng = np.random.default_rng(seed)

    def lif(n):
        return nir.LIF(tau=np.full(n, 10.0), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.0),
                       v_reset=np.zeros(n))

    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([64])}),
                            "fc1": nir.Affine(weight=rng.normal(0, 0.3, (24, 64)), bias=np.zeros(24)), "lif1": lif(24),
                            "fc2": nir.Affine(weight=rng.normal(0, 0.3, (10, 24)), bias=np.zeros(10)), "lif2": lif(10),
                            "output": nir.Output(output_type={"output": np.array([10])})},
                     edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
                     type_check=False)
    write_nir(g, root / "lif.nir")
    fx["lif.nir"] = root / "lif.nir"
    idx = root / "idx"
    idx.mkdir()
    imgs = rng.integers(0, 256, (30, 8, 8)).astype(np.uint8)
    labels = rng.integers(0, 10, 30).astype(np.uint8)
    labels[:10] = np.arange(10)
    for key, base in FILES.items():
        write_idx(str(idx / base), imgs if "images" in key else labels)
    fx["idx"] = idx
    from snncompile.profile import bundled_dir

    fx["loihi2.toml"] = (bundled_dir() / "loihi2.toml").read_text()
    return fx


# ---- generators ----------------------------------------------------------------------------------

class Gen:
    def __init__(self, fx: dict, work: Path, rng: np.random.Generator, deep: float):
        self.fx, self.work, self.rng, self.deep, self.n = fx, work, rng, deep, 0

    def path(self, suffix: str) -> Path:
        self.n += 1
        return self.work / f"c{self.n}{suffix}"

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    # -- CLI options ------------------------------------------------------------------------------
    BAD = {
        "--bits": ["0", "1", "-1", "33", "99", "x", "1e3"],
        "--seed": ["-1", str(2**32), str(2**64), "a", "1.5"],
        "--zeta": ["nan", "inf", "-inf", "1e308", "-1", "x"],
        "--dt": ["0", "-1", "nan", "inf", "1e308", "-inf"],
        "--steps": ["0", "-3", str(10**9), "x"],
        "--samples": ["0", "-1", "x"],
        "--calib-samples": ["0", "-5"],
        "--vendor-samples": ["0"],
        "--sweep-steps": ["0", "-1", "a,b", "100000", "0,4", "1e3"],
        "--sweep-bits": ["0", "99", "-2,4", "x"],
        "--sim-steps": ["0", "-1", str(10**7)],
        "--profile": ["nope", "/nonexistent/p.toml", "", "../x"],
        "--target": ["nope", ""],
        "--dataset": ["nope", "idx:/nonexistent", "idx:", ""],
        "--weight-scale": ["min", ""],
        "--encoding": ["morse"],
        "--emit": ["netz"],
    }

    def out_variants(self):
        f = self.path(".file")
        f.write_text("x")
        ro = self.path(".ro")
        ro.mkdir()
        ro.chmod(0o500)
        out = [("", []), (str(f), [f]), (str(f / "sub"), [f / "sub"]), ("/proc/snncompile_fuzz", [])]
        if os.geteuid() != 0:  # root writes into a read-only folder anyway
            out.append((str(ro / "o"), [ro / "o"]))
        return out

    def compile_options(self) -> Case:
        opt = self.pick(list(self.BAD))
        val = self.pick(self.BAD[opt])
        out = self.path(".out")
        src = self.fx[self.pick(["mlp.onnx", "ttfs.nir", "lif.nir"])]
        args = ["compile", src, "--dataset", "digits", "--samples", "5", "--quiet", "--calib-samples", "50",
                opt, val, "--out", out]
        expect = "invalid"
        if opt == "--sweep-steps" and val in ("1e3",):
            expect = "invalid"
        return Case("options", f"compile {opt} {val!r}", expect, lambda: _cli(args), [out])

    def compile_out(self) -> Case:
        out, paths = self.pick(self.out_variants())
        args = ["compile", self.fx["mlp.onnx"], "--dataset", "digits", "--samples", "5", "--quiet", "--out", out]
        return Case("options", f"compile --out {out!r}", "invalid", lambda: _cli(args), paths)

    def other_commands(self) -> Case:
        r = self.rng.integers(7)
        if r == 0:  # convert / finetune / train output files
            bad, paths = self.pick([("", []), *[(o, p) for o, p in self.out_variants()[1:4]]])
            cmd = self.pick([
                ["convert", self.fx["mlp.onnx"], "--dataset", "digits", "-o", bad],
                ["finetune", self.fx["ttfs.nir"], "--dataset", "digits", "--epochs", "0", "-o", bad],
                ["train", "--dataset", "digits", "--arch", "64-8-10", "--epochs", "0", "-o", bad],
                ["train", "--dataset", "digits", "--arch", "64-8-10", "--method", "erbp", "--epochs", "0", "-o", bad],
            ])
            return Case("options", f"{cmd[0]} -o {bad!r}", "invalid", lambda: _cli(cmd), paths)
        if r == 1:  # finetune option ranges
            opt, val = self.pick([("--lr", "nan"), ("--lr", "-1"), ("--lr", "inf"), ("--spike-penalty", "nan"),
                                  ("--spike-penalty", "-1"), ("--window-scale", "0"), ("--window-scale", "2"),
                                  ("--bits", "1"), ("--steps", "0"), ("--seed", "-1"), ("--epochs", "-1"),
                                  ("--epochs", str(10**9)), ("--batch-size", "0"), ("--mode", "x")])
            out = self.path(".nir")
            cmd = ["finetune", self.fx["ttfs.nir"], "--dataset", "digits", "--epochs", "0", opt, val, "-o", out,
                   "--quiet"]
            return Case("options", f"finetune {opt} {val}", "invalid", lambda: _cli(cmd), [out])
        if r == 2:  # train option ranges
            opt, val = self.pick([("--lr", "nan"), ("--lr", "0"), ("--lr", "1e308"), ("--seed", str(2**33)),
                                  ("--epochs", "-1"), ("--batch-size", "0"), ("--arch", "64-99999999-10"),
                                  ("--arch", "64-60000-60000-10"), ("--spike-reg", "nan"), ("--method", "x")])
            out = self.path(".onnx")
            cmd = ["train", "--dataset", "digits", "--arch", "64-8-10", "--epochs", "0", opt, val, "-o", out]
            return Case("options", f"train {opt} {val}", "invalid", lambda: _cli(cmd), [out])
        if r == 3:  # convert option ranges
            val = self.pick(["nan", "inf", "-1", "1e308"])
            out = self.path(".nir")
            cmd = ["convert", self.fx["mlp.onnx"], "--dataset", "digits", "--zeta", val, "-o", out]
            return Case("options", f"convert --zeta {val}", "invalid", lambda: _cli(cmd), [out])
        if r == 4:  # random arch specs for train (may be valid)
            toks = ["64", "8", "10", "1x8x8", "c4k3", "c4k3p1", "m2", "a2", "x", "", "0", "-", "c0k3", "k", "p9",
                    "c4k99", "1x0x8", str(2**31), "m0", "a9"]
            spec = "-".join(self.pick(toks) for _ in range(int(self.rng.integers(1, 5))))
            out = self.path(".onnx")
            cmd = ["train", "--dataset", "digits", "--arch", spec, "--epochs", "0", "-o", out]
            return Case("options", f"train --arch {spec!r}", "any", lambda: _cli(cmd), [out])
        if r == 5:  # inspect / profiles
            cmd = self.pick([["inspect", self.path(".nir")], ["profiles", "--show", "nope"],
                             ["inspect", self.fx["mlp.onnx"]], ["profiles", "--show", self.path(".toml")]])
            return Case("options", " ".join(map(str, cmd[:2])), "invalid", lambda: _cli(cmd), [])
        args = ["compile", self.fx["mlp.onnx"], "--dataset", "digits", "--samples", "5", "--quiet"]
        combo = self.pick([["--encoding", "rate"], ["--sim-steps", "8"], ["--zeta", "0.5", "--steps", "4"]])
        src_combo = self.pick([(self.fx["ttfs.q.nir"], ["--zeta", "0.5"]), (self.fx["ttfs.q.nir"], ["--steps", "3"]),
                               (self.fx["lif.nir"], ["--steps", "4"]), (self.fx["lif.nir"], ["--zeta", "1"]),
                               (self.fx["ttfs.nir"], ["--zeta", "1"]), (self.fx["mlp.onnx"], combo[:2])])
        out = self.path(".out")
        if src_combo[0] == self.fx["mlp.onnx"] and src_combo[1][0] == "--zeta":
            return Case("options", "compile zeta+steps", "valid", lambda: _cli(args + src_combo[1] + ["--out", out]),
                        [out])
        cmd = ["compile", src_combo[0], "--dataset", "digits", "--samples", "5", "--quiet", *src_combo[1], "--out", out]
        return Case("options", f"compile {Path(src_combo[0]).name} {' '.join(src_combo[1])}", "invalid",
                    lambda: _cli(cmd), [out])

    # -- NIR graphs -------------------------------------------------------------------------------
    def nir_case(self) -> Case:
        import nir

        from snncompile.ir import get_meta, read_nir, set_meta

        key = self.pick(["ttfs.nir", "ttfs.q.nir", "cnn.nir", "cnn.q.nir", "lif.nir"])
        g = read_nir(self.fx[key], type_check=False)
        g = copy.deepcopy(g)
        rng = self.rng
        names = list(g.nodes)
        arrays = [(n, k) for n in names for k, v in vars(g.nodes[n]).items()
                  if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size and k not in ("input_type", "output_type")]
        kind = self.pick(["dup_edge", "drop_edge", "dangling", "missing_end", "nan", "neginf", "inf_weight",
                          "weight_shape", "bias_len", "input_shape", "meta_not_object", "meta_type", "meta_missing",
                          "conv", "threshold", "tau", "qgrid", "qfield", "perturb", "perturb", "bytes"])
        expect = "invalid"
        if kind == "dup_edge":
            g.edges.append(self.pick(g.edges))
        elif kind == "drop_edge":
            g.edges.pop(int(rng.integers(len(g.edges))))
        elif kind == "dangling":
            g.nodes["stray"] = nir.Affine(weight=np.ones((2, 2)), bias=np.zeros(2))
        elif kind == "missing_end":
            g.edges.append((self.pick(names), "ghost"))
        elif kind in ("nan", "neginf", "inf_weight"):
            cand = [a for a in arrays if kind != "inf_weight" or a[1] in ("weight", "bias", "v_leak", "r", "w_in")]
            n, k = self.pick(cand or arrays)
            arr = np.array(getattr(g.nodes[n], k), dtype=np.float64)
            arr.flat[int(rng.integers(arr.size))] = {"nan": np.nan, "neginf": -np.inf, "inf_weight": np.inf}[kind]
            setattr(g.nodes[n], k, arr)
        elif kind == "weight_shape":
            n = self.pick([n for n in names if hasattr(g.nodes[n], "weight")])
            w = np.asarray(g.nodes[n].weight)
            shape = list(w.shape)
            shape[1] += int(rng.integers(1, 4))
            g.nodes[n].weight = rng.normal(size=shape)
        elif kind == "bias_len":
            n = self.pick([n for n in names if isinstance(g.nodes[n], (nir.Affine, nir.Conv2d))])
            b = np.asarray(g.nodes[n].bias, dtype=np.float64).ravel()
            g.nodes[n].bias = np.zeros(b.size + int(rng.integers(1, 4)))
        elif kind == "input_shape":
            n = next(n for n in names if isinstance(g.nodes[n], nir.Input) and n == "input")
            shape = np.array(g.nodes[n].input_type["input"], dtype=np.float64)
            shape[int(rng.integers(shape.size))] = self.pick([-1.0, 0.0, 2.0**40, 64.5, -(2.0**63), 1e30])
            g.nodes[n].input_type = {"input": shape}
        elif kind == "meta_not_object":
            obj = g if rng.random() < 0.5 else g.nodes[self.pick(names)]
            obj.metadata = {"snncompile": self.pick(["[1, 2]", "3", "\"s\"", "null", "true", "{", "[[[[", ""])}
        elif kind == "meta_type":
            gm = get_meta(g)
            field_, val = self.pick([("steps", "x"), ("steps", 1.5), ("steps", -3), ("dt", -1), ("dt", "x"),
                                     ("quantized", "yes"), ("t_total", 0), ("encoding", [1]), ("zeta", -1),
                                     ("weight_bits", "8"), ("input_shape", [64.5]), ("populations", 3)])
            gm[field_] = val
            set_meta(g, gm)
            if field_ in ("weight_bits", "populations") and not gm.get("quantized"):
                expect = "any"
        elif kind == "meta_missing":
            n = self.pick([n for n in names if get_meta(g.nodes[n]).get("role")] or names)
            m = get_meta(g.nodes[n])
            if m:
                m.pop(self.pick([k for k in ("B", "t_min", "hold", "role", "steps", "slope", "threshold", "arrival")
                                 if k in m] or list(m)))
                set_meta(g.nodes[n], m)
            else:
                gm = get_meta(g)
                gm.pop("steps", None)
                gm["quantized"] = True
                set_meta(g, gm)
            if not m and key == "lif.nir":
                expect = "any"
        elif kind == "conv":
            conv = [n for n in names if isinstance(g.nodes[n], (nir.Conv2d, nir.SumPool2d, nir.AvgPool2d))]
            if not conv:
                g.edges.append(g.edges[0])  # keep the case invalid
            else:
                n = self.pick(conv)
                node = g.nodes[n]
                attr = self.pick(["stride", "padding"] + (["groups", "dilation"] if isinstance(node, nir.Conv2d)
                                                          else ["kernel_size"]))
                val = self.pick({"stride": [0, -1, np.array([0, 1])], "padding": [-1, 99, np.array([-2, 0])],
                                 "groups": [0, -1, 3, 7], "dilation": [0, -1, 99],
                                 "kernel_size": [0, -1, 99, np.array([0, 2])]}[attr])
                setattr(node, attr, val)
        elif kind == "threshold":
            cand = [n for n in names if hasattr(g.nodes[n], "v_threshold")]
            n = self.pick(cand)
            val = self.pick([-np.inf, np.nan] + ([0.0, -1.0] if key == "lif.nir" else []))
            g.nodes[n].v_threshold = np.full(np.shape(g.nodes[n].v_threshold), val)
        elif kind == "tau":
            cand = [(n, k) for n in names for k in ("tau", "tau_mem", "tau_syn") if hasattr(g.nodes[n], k)]
            n, k = self.pick(cand)
            val = self.pick([0.0, -1.0, np.nan] + ([1e-9, 1e-5] if key == "lif.nir" else []))
            setattr(g.nodes[n], k, np.full(np.shape(getattr(g.nodes[n], k)), val))
        elif kind == "qgrid":
            if "q." not in key:
                key = "ttfs.q.nir"
                g = copy.deepcopy(read_nir(self.fx[key], type_check=False))
                names = list(g.nodes)
            n = self.pick([n for n in names if isinstance(g.nodes[n], (nir.Affine, nir.Conv2d))] or names)
            w = np.array(g.nodes[n].weight, dtype=np.float64)
            w.flat[int(rng.integers(w.size))] = self.pick([2.0**40, -(2.0**63), 0.5, 3.0, 255.0, -258.0, 1e300])
            g.nodes[n].weight = w
        elif kind == "qfield":
            if "q." not in key:
                key = self.pick(["ttfs.q.nir", "cnn.q.nir"])
                g = copy.deepcopy(read_nir(self.fx[key], type_check=False))
                names = list(g.nodes)
            roles = [n for n in names if get_meta(g.nodes[n]).get("role") in ("hidden", "readout")]
            r = rng.integers(6)
            if r == 0:
                gm = get_meta(g)
                gm["steps"] = self.pick([0, -3, 5000, 2.5, "16"])
                set_meta(g, gm)
            elif r == 1:
                n = self.pick(roles)
                m = get_meta(g.nodes[n])
                m["weight_exp"] = self.pick([99, -99, "a", 1.5])
                set_meta(g.nodes[n], m)
            elif r == 2:
                n = self.pick([x for x in roles if get_meta(g.nodes[x]).get("role") == "hidden"])
                g.nodes[n].v_threshold = -np.abs(np.asarray(g.nodes[n].v_threshold)) - 1
            elif r == 3:
                n = self.pick(roles)
                m = get_meta(g.nodes[n])
                m["B" if "B" in m else "v_lsb"] = self.pick(["nan", -1.0, 0.0])
                set_meta(g.nodes[n], m)
            elif r == 4:
                n = self.pick(roles)
                g.nodes[n].v_leak = np.asarray(g.nodes[n].v_leak, dtype=np.float64) + self.pick([0.5, 2.0**40])
            else:
                gm = get_meta(g)
                gm[self.pick(["state_bits", "act_shift", "weight_bits", "bias_exp_bits"])] = self.pick([99, 0, -1])
                set_meta(g, gm)
        elif kind == "perturb":
            expect = "any"
            if arrays:
                n, k = self.pick(arrays)
                arr = np.array(getattr(g.nodes[n], k), dtype=np.float64)
                scale = self.pick([0.0, 0.5, 2.0, -1.0, 1e6, 1e-6])
                setattr(g.nodes[n], k, arr * scale)
        path = self.path(".nir")
        if kind == "bytes":
            expect = "any"
            raw = bytearray(Path(self.fx[key]).read_bytes())
            if rng.random() < 0.5:
                raw = raw[: int(rng.integers(len(raw)))]
            else:
                for _ in range(int(rng.integers(1, 20))):
                    raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
            path.write_bytes(bytes(raw))
        else:
            try:
                nir.write(str(path), g)
            except Exception:  # noqa: BLE001 - a graph nir itself cannot store is not our input
                return self.nir_case()
        if self.rng.random() < 0.1:  # inspect shows any file it can read, or says why not
            def show():
                from snncompile.inspect_nir import describe, render

                json.dumps(describe(path))
                render(describe(path))

            return Case("nir", f"inspect {key} {kind}", "any", show, [])
        deep = self.rng.random() < self.deep or expect == "any" and self.rng.random() < 4 * self.deep
        targets = ("reference", "fxsim") if ".q." not in key else ("fxsim",)
        out = self.path(".out")

        def run():
            from snncompile.pipeline import CompileOptions, compile_model
            from snncompile.validation.nir_graph import validate_graph

            if deep or expect == "invalid":
                opts = CompileOptions(dataset="digits", targets=targets, samples=5, calib_samples=50, progress=False,
                                      sim_steps=8 if key == "lif.nir" else None)
                # an invalid graph must be rejected by the load pass, before any data is read
                compile_model(str(path), opts, out=out if deep else None)
            else:
                validate_graph(read_nir(path, type_check=False), str(path))

        return Case("nir", f"{key} {kind}", expect, run, [out])

    # -- ONNX -------------------------------------------------------------------------------------
    def onnx_case(self) -> Case:
        import onnx

        key = self.pick(["mlp.onnx", "cnn.onnx"])
        m = onnx.load(str(self.fx[key]))
        kind = self.pick(["dims", "dims", "undefined_attr", "nan", "input_dim", "bytes", "truncate", "drop_init"])
        expect = "invalid"
        rng = self.rng
        inits = list(m.graph.initializer)
        if kind == "dims":
            t = self.pick(inits)
            i = int(rng.integers(len(t.dims)))
            t.dims[i] = self.pick([v for v in (t.dims[i] + 1, 0, 2**40, t.dims[i] - 1) if v != t.dims[i] and v >= 0])
        elif kind == "undefined_attr":
            nodes = [n for n in m.graph.node if len(n.attribute)]
            if nodes:
                a = self.pick(nodes).attribute
                a[int(rng.integers(len(a)))].type = 0
            else:
                t = self.pick(inits)
                t.dims[0] += 1
        elif kind == "nan":
            from onnx import numpy_helper

            t = self.pick([t for t in inits if t.data_type == onnx.TensorProto.FLOAT])
            arr = numpy_helper.to_array(t).copy()
            arr.flat[int(rng.integers(arr.size))] = self.pick([np.nan, np.inf, -np.inf])
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
        elif kind == "input_dim":
            d = m.graph.input[0].type.tensor_type.shape.dim
            d[int(rng.integers(1, len(d)))].dim_value = self.pick([0, 10**12, 65])
            if d and any(x.dim_value == 65 for x in d):
                expect = "any"
        elif kind == "drop_init":
            del m.graph.initializer[int(rng.integers(len(inits)))]
        path = self.path(".onnx")
        raw = m.SerializeToString()
        if kind in ("bytes", "truncate"):
            expect = "any"
            raw = bytearray(raw)
            if kind == "truncate":
                raw = raw[: int(rng.integers(len(raw)))]
            else:
                for _ in range(int(rng.integers(1, 10))):
                    raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
            raw = bytes(raw)
        path.write_bytes(raw)
        deep = rng.random() < self.deep

        def run():
            from snncompile.frontends import load_model

            if deep:
                from snncompile.pipeline import CompileOptions, compile_model

                compile_model(str(path), CompileOptions(dataset="digits", samples=5, calib_samples=50, progress=False))
            else:
                load_model(str(path))

        return Case("onnx", f"{key} {kind}", expect, run, [])

    # -- IDX --------------------------------------------------------------------------------------
    def idx_case(self) -> Case:
        from snncompile.data.idx import FILES

        folder = self.path(".idx")
        shutil.copytree(self.fx["idx"], folder)
        key = self.pick(list(FILES))
        f = folder / FILES[key]
        raw = bytearray(f.read_bytes())
        rng = self.rng
        kind = self.pick(["huge_dims", "overflow", "magic", "truncate", "extra", "zero", "gz", "label"])
        expect = "invalid"
        ndim = 3 if "images" in key else 1
        if kind == "huge_dims":
            i = int(rng.integers(ndim))
            raw[4 + 4 * i: 8 + 4 * i] = int(self.pick([2**32 - 1, 2**31, 10**9])).to_bytes(4, "big")
        elif kind == "overflow":  # dims whose product overflows int64 (wraps to the held size, or not)
            for i in range(ndim):
                raw[4 + 4 * i: 8 + 4 * i] = (2**32 - 1 if i < ndim - 1 else 2**31 + 1).to_bytes(4, "big")
            if ndim == 1:
                raw[4:8] = (2**32 - 1).to_bytes(4, "big")
        elif kind == "magic":
            raw[:4] = int(rng.integers(2**32)).to_bytes(4, "big")
        elif kind == "truncate":
            raw = raw[: int(rng.integers(len(raw) - 1))]
        elif kind == "extra":
            raw += bytes(int(rng.integers(1, 100)))
        elif kind == "zero":
            raw[4:8] = (0).to_bytes(4, "big")
        elif kind == "gz":
            f.unlink()
            f = f.with_name(f.name + ".gz")
            raw = bytes(rng.integers(0, 256, 50).astype(np.uint8))
        elif kind == "label":
            expect = "any"
            if "labels" in key:
                raw[8 + int(rng.integers(len(raw) - 8))] = int(rng.integers(10, 256))
        f.write_bytes(bytes(raw))

        def run():
            from snncompile.data import load_dataset

            load_dataset(f"idx:{folder}")

        return Case("idx", f"{key} {kind}", expect, run, [])

    # -- profiles ---------------------------------------------------------------------------------
    def profile_case(self) -> Case:
        text = self.fx["loihi2.toml"]
        rng = self.rng
        kind = self.pick(["energy", "bits", "neuron", "missing", "garbage", "exp", "type", "ok"])
        expect = "invalid"
        lines = text.splitlines()

        def setv(field_, val):
            for i, ln in enumerate(lines):
                if ln.split("=")[0].strip() == field_:
                    lines[i] = f"{field_} = {val}"
                    return

        if kind == "energy":
            setv(self.pick(["synop_pj", "neuron_update_pj", "spike_pj"]), self.pick(["1e308", "inf", "nan", "-1",
                                                                                    "1e12", "\"x\""]))
        elif kind == "bits":
            setv("bits", self.pick(["0", "1", "40", "-1", "9"]))
        elif kind == "neuron":
            setv(self.pick(["state_bits", "decay_bits", "vth_mant_bits", "act_shift", "bias_exp_bits"]),
                 self.pick(["-1", "99", "100000", "1.5"]))
        elif kind == "missing":
            field_ = self.pick(["bits", "state_bits", "synop_pj", "style", "name"])
            lines = [ln for ln in lines if ln.split("=")[0].strip() != field_]
        elif kind == "garbage":
            pos = int(rng.integers(len(lines)))
            lines.insert(pos, self.pick(["[[[", "x = ", "= 3", "\x00", "[weights]"]))
        elif kind == "exp":
            setv("exp_min", "9")
        elif kind == "type":
            setv(self.pick(["sign_mode", "style", "arithmetic"]), self.pick(["\"odd\"", "3", "[]"]))
        else:
            expect = "valid"
            setv(self.pick(["synop_pj", "spike_pj"]), self.pick(["0", "1e6", "0.001"]))
        path = self.path(".toml")
        path.write_text("\n".join(lines) + "\n")
        deep = expect != "invalid" or rng.random() < self.deep
        out = self.path(".out")

        def run():
            from snncompile.profile import load_profile

            load_profile(str(path))
            if deep:
                _cli(["compile", self.fx["ttfs.nir"], "--dataset", "digits", "--samples", "5", "--calib-samples", "50",
                      "--target", "fxsim", "--profile", path, "--quiet", "--out", out])

        return Case("profile", f"{kind}", expect, run, [out])


def generate(gen: Gen, n: int):
    mix = [("options", 0.30, lambda: gen.compile_options()), ("options", 0.05, lambda: gen.compile_out()),
           ("options", 0.10, lambda: gen.other_commands()), ("nir", 0.33, lambda: gen.nir_case()),
           ("onnx", 0.10, lambda: gen.onnx_case()), ("idx", 0.06, lambda: gen.idx_case()),
           ("profile", 0.06, lambda: gen.profile_case())]
    weights = np.array([w for _, w, _ in mix])
    for _ in range(n):
        yield mix[int(gen.rng.choice(len(mix), p=weights / weights.sum()))][2]()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    ap.add_argument("--deep", type=float, default=0.03, help="share of NIR/ONNX cases run through the whole pipeline")
    ap.add_argument("--show", type=int, default=5, help="examples per bad outcome")
    ap.add_argument("--json", default=None, help="also write the tally as JSON here")
    args = ap.parse_args(argv)

    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    root = Path(tempfile.mkdtemp(prefix="snncompile-fuzz-"))
    t0 = time.perf_counter()
    try:
        fx = build_fixtures(root, args.seed)
        work = root / "cases"
        work.mkdir()
        gen = Gen(fx, work, np.random.default_rng(args.seed), args.deep)
        tally = collections.Counter()
        per_family = collections.defaultdict(collections.Counter)
        examples = collections.defaultdict(list)
        for i, case in enumerate(generate(gen, args.cases)):
            outcome, detail = classify(case, args.timeout)
            tally[outcome] += 1
            per_family[case.family][outcome] += 1
            if outcome not in ("clean error", "valid") and len(examples[outcome]) < args.show:
                examples[outcome].append(f"[{case.family}] {case.name}: {detail}")
            if (i + 1) % 500 == 0:
                print(f"{i + 1} cases, {time.perf_counter() - t0:.0f} s: " +
                      ", ".join(f"{k} {tally[k]}" for k in OUTCOMES), file=sys.stderr, flush=True)
            if (i + 1) % 200 == 0:  # keep the disk small
                for p in work.iterdir():
                    if p.is_dir() and not os.access(p, os.W_OK):
                        p.chmod(0o700)
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
    finally:
        for p in root.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o700)
        shutil.rmtree(root, ignore_errors=True)
    secs = time.perf_counter() - t0
    print(f"fuzz: {args.cases} cases, seed {args.seed}, {secs:.0f} s\n")
    print(f"{'family':<10}" + "".join(f"{k:>13}" for k in OUTCOMES))
    for fam in sorted(per_family):
        print(f"{fam:<10}" + "".join(f"{per_family[fam][k]:>13}" for k in OUTCOMES))
    print(f"{'total':<10}" + "".join(f"{tally[k]:>13}" for k in OUTCOMES))
    for outcome, lines in examples.items():
        print(f"\n{outcome}:")
        print("\n".join("  " + ln for ln in lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": args.cases, "seed": args.seed, "seconds": secs,
                                               "tally": dict(tally),
                                               "per_family": {k: dict(v) for k, v in per_family.items()},
                                               "examples": examples}, indent=2))
    bad = sum(tally[k] for k in ("crash", "silent", "partial", "hang"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
