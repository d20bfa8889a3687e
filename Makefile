# Two commands on a fresh machine:  make demo  (install + colourise the sample photos into out/)
#                                   make test  (install if missing + run the tests)
PY ?= python3
# Where pip looks for torch first. PyTorch's CPU wheel index by default: from PyPI alone, a Linux machine gets
# the CUDA build and its ~29 CUDA packages (GBs). Torch is installed on its own step, so only its lookup uses
# this index (where it cannot be reached pip warns, retries a few seconds and goes on with its other indexes).
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu128   # a CUDA build (pick the CUDA version)
#   make install TORCH_INDEX=                                          # pip's own configuration only
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps -c constraints.txt $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,onnx]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/polychrome demo out

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out
