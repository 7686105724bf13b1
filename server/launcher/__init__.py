"""vllm-launch: check vLLM serve arguments before any weight loads, then serve vLLM behind a front door."""

__version__ = "0.1.0"
