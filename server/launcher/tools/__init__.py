"""Model tools around serving: `launcher quantize` (llm-compressor FP8) and `launcher eval` (lm-eval)."""
