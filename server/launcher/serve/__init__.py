"""`launcher serve`: the check, then vLLM as a supervised child behind the front door (/v1/*, /health, /ready,
/metrics)."""
