# vrnkit: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
PYTHON ?= python3
# CPU build of torch on machines without one (Colab and GPU boxes keep the torch they have).
TORCH_CPU ?= torch==2.13.0

.PHONY: install demo test lab bench weights weights-192 clean

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "$(TORCH_CPU)"
	$(PYTHON) -m pip install -q -e ".[notebooks,dev,photos]"

demo: install
	$(PYTHON) -m vrnkit demo --out out/demo

test: install
	$(PYTHON) -m pytest -q

lab: install
	$(PYTHON) -m jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

# Rebuild the shipped model vrnkit/weights/vrn-cpu.pt (about an hour on 2 CPU cores): data,
# training, then the weights with their training curve and validation table.
weights: install
	$(PYTHON) -m vrnkit synth --protocol synth-300wlp --preset cpu --n 20000 --out data/synth-300wlp-quick
	$(PYTHON) -m vrnkit synth --protocol synth-aflw2000 --preset cpu --n 500 --out data/synth-aflw2000-quick
	$(PYTHON) -m vrnkit synth --protocol synth-florence --preset cpu --n 300 --out data/synth-florence-quick
	$(PYTHON) -m vrnkit synth --protocol synth-bu4dfe --preset cpu --n 252 --out data/synth-bu4dfe-quick
	OMP_NUM_THREADS=1 $(PYTHON) -m vrnkit train --model vrn --preset cpu --data data/synth-300wlp-quick \
		--out runs/vrn-cpu --epochs 8 --no-progress
	$(PYTHON) -m vrnkit export runs/vrn-cpu --name vrn-cpu --eval data/synth-aflw2000-quick \
		data/synth-florence-quick data/synth-bu4dfe-quick

# Rebuild vrnkit/weights/vrn-192.pt and vrn-guided-192.pt: needs one CUDA GPU with 16 CPU cores
# (about 10 minutes on an H100: 8,192 paper-size faces, both models side by side for 7 minutes),
# then a 3-minute fine-tune of the guided model on 8,192 new faces; the CPU part evaluates them.
weights-192: install
	$(PYTHON) benchmarks/gpu_train_192.py --out runs/gpu192 --seconds 415
	$(PYTHON) benchmarks/gpu_train_192.py --out runs/gpu192-ft --models vrn-guided-192 \
		--init-dir runs/gpu192/export --seed 7 --lr 1e-4 --seconds 165 --workers 10
	$(PYTHON) -m vrnkit synth --protocol synth-aflw2000 --preset paper --n 256 --out data/synth-aflw2000-paper
	$(PYTHON) -m vrnkit synth --protocol synth-florence --preset paper --n 60 --out data/synth-florence-paper
	$(PYTHON) -m vrnkit export runs/gpu192/vrn-192 --name vrn-192 --half --n 48 \
		--eval data/synth-aflw2000-paper data/synth-florence-paper
	$(PYTHON) -m vrnkit export runs/gpu192-ft/vrn-guided-192 --name vrn-guided-192 --half --n 48 \
		--eval data/synth-aflw2000-paper data/synth-florence-paper

clean:
	rm -rf out/ .pytest_cache build *.egg-info
