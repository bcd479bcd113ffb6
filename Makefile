# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# ComfyUI owns torch; this is the pair that works with ComfyUI on our machines.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: venv test test-py test-js lint demo clean bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .

test-py: venv
	$(PY) -m pytest -q -p no:cacheprovider

test-js:
	node --test web_tests/

test: lint test-py test-js

# make demo: LTX-2 (tiny-ltx2, video + sound); make demo FAMILY=ltxv: LTX-Video (tiny, video only).
FAMILY ?= ltx2
demo: venv
	$(PY) scripts/demo.py --family $(FAMILY)

bench: venv
	$(PY) bench/train_step.py --model tiny

clean:
	rm -rf $(VENV) demo_work
