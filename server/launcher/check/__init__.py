"""The check: vLLM serve arguments, the model's config.json, the platform and the vLLM version, judged by the
compatibility table (data/compatibility.yaml) before any weight loads."""
