"""llm-compressor's oneshot, run in the interpreter that has it (`make quantize-env`: .venv-quant).

`launcher quantize` starts this file with that Python (`python -P .../quantize_worker.py ...`); it imports
nothing from the launcher, so it runs next to llm-compressor's own pins (transformers, compressed-tensors) that
conflict with vLLM's. The recipe is the vLLM FP8 guide's: every Linear layer except the ignored ones, no
calibration data. It writes the checkpoint and tokenizer to --output and a JSON result (which Linear layers were
quantized, which were kept, versions, seconds) to --result; the launcher writes the report from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a Hugging Face checkpoint directory (BF16/FP16)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--scheme", required=True, help="a compressed-tensors preset scheme, e.g. FP8_DYNAMIC")
    parser.add_argument("--ignore", action="append", default=[], help="module names or re: patterns to keep")
    parser.add_argument("--result", required=True, help="where to write the JSON result")
    options = parser.parse_args(argv)
    started = time.monotonic()
    try:
        import torch
        from llmcompressor import oneshot
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        print(f"quantize-worker: {exc.name or exc} is not installed in {sys.executable}", file=sys.stderr)
        return 3

    model = AutoModelForCausalLM.from_pretrained(options.model, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(options.model)
    source_dtype = str(model.dtype).removeprefix("torch.")
    recipe = QuantizationModifier(targets="Linear", scheme=options.scheme, ignore=options.ignore)
    oneshot(model=model, recipe=recipe)
    quantized: list[str] = []
    kept: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            (quantized if getattr(module, "quantization_scheme", None) is not None else kept).append(name)
    model.save_pretrained(options.output, save_compressed=True)
    tokenizer.save_pretrained(options.output)
    result = {
        "quantized": quantized,
        "kept": kept,
        "source_dtype": source_dtype,
        "seconds": round(time.monotonic() - started, 1),
        "python": sys.executable,
        "versions": {
            name: metadata.version(name) for name in ("llmcompressor", "compressed-tensors", "transformers", "torch")
        },
    }
    with open(options.result, "w") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
