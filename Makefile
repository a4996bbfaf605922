# snncompile: two commands set everything up on a fresh machine (Python 3.11, pip, gcc):
#   make demo   installs into .venv, trains a ReLU MLP on MNIST-5k, converts, validates, prints the report
#   make test   installs into .venv and runs the tests
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.install-stamp
PIP     := $(BIN)/python -m pip
DEMO    ?= demo_out

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

# Order matters (DESIGN.md section 6): torch pinned first (a CPU build on local disk;
# an unpinned torch pulls a multi-GB CUDA build), then the package, then lava-nc and
# norse without their declared dependencies (lava declares Python<3.11 and numpy<2,
# norse wants torchvision only for its datasets).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q 'asteval>=0.9.31,<0.10' 'networkx<=2.8.7'
	$(PIP) install -q --no-deps --ignore-requires-python lava-nc==0.10.0
	$(PIP) install -q --no-deps norse==1.1.0
	# lava-dl 0.6.0 (netx, Loihi 2's deployment format): declares Python < 3.11; our shim stubs the one
	# subpackage (slayer.object_detection) that needs cv2/torchvision
	$(PIP) install -q --no-deps --ignore-requires-python lava-dl==0.6.0
	$(PIP) install -q ninja
	# Ray: sweeps as tasks (--ray); optional at run time, installed for the tests
	$(PIP) install -q 'ray==2.60.0'
	# NeuroBench 2.3 for the metric cross-check: without its declared deps (they pull a CUDA torchaudio);
	# its metric and benchmark code needs only torch, tqdm and snntorch
	$(PIP) install -q --no-deps neurobench==2.3.0
	$(PIP) install -q snntorch==1.0.0
	# Xylo: rockpool (never samna: a stub that downloads at import) and xylosim built from source (~1 min)
	$(PIP) install -q rockpool==3.1.0 pybind11==3.1.0
	$(PIP) install -q --no-build-isolation xylosim==0.1.3
	$(BIN)/python -c "import snncompile.targets.lava.compat as c; c.require_lava(); import snncompile.targets.xylo.compat as x; x.require_xylosim(); import snncompile.targets.netx.compat as n; n.require_netx()"
	touch $(STAMP)

demo: install
	$(BIN)/snncompile train --dataset mnist5k --arch 784-340-10 --epochs 10 --seed 0 -o $(DEMO)/ann.onnx
	$(BIN)/snncompile compile $(DEMO)/ann.onnx --dataset mnist5k --profile loihi2 \
		--target reference --target fxsim --target lava --lava-samples 50 --steps 16 --seed 0 --out $(DEMO)/build
	@echo "report: $(DEMO)/build/report.md  (JSON: $(DEMO)/build/report.json)"

test: install
	$(BIN)/python -m pytest -q

# everything not marked slow (no vendor-simulator runs): under 2 minutes on 2 cores
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check snncompile tests benchmarks

bench: install
	$(BIN)/python benchmarks/fxsim_throughput.py
	$(BIN)/python benchmarks/lava_vs_fxsim.py

clean:
	rm -rf $(VENV) $(DEMO) build dist *.egg-info .pytest_cache .hypothesis
