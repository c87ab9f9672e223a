# vrnkit: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
PYTHON ?= python3
# CPU build of torch on machines without one (Colab and GPU boxes keep the torch they have).
TORCH_CPU ?= torch==2.13.0

.PHONY: install demo test lab bench clean

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "$(TORCH_CPU)"
	$(PYTHON) -m pip install -q -e ".[notebooks,dev]"

demo: install
	$(PYTHON) -m vrnkit demo --out out/demo

test: install
	$(PYTHON) -m pytest -q

lab: install
	$(PYTHON) -m jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

clean:
	rm -rf out/ .pytest_cache build *.egg-info
