"""Config-only model directories for the ground-truth cases: a real config.json, shrunk to fit one GPU.

Shrinking keeps what the rules look at. A case removes layers and experts (they change nothing a rule reads)
and sets each per-rank size to the value it has on the big setup: a TP 8 model's 128 heads become 16 heads
on one GPU, a Qwen3-30B-A3B-FP8 expert dimension of 768 at TP 4 becomes 192 at TP 1. The shrunk config.json
of every case is committed under bench/gpu/models/<case-id>/ (`--prepare` writes them, deterministically),
so `launcher check` can be re-run on it anywhere (tests/check/test_gpu_ground_truth.py).

On the GPU machine `materialize` copies a case's directory to scratch space and adds what vLLM needs to start
with `--load-format dummy` (random weights, never downloaded): a small byte-level BPE tokenizer trained
offline, and for vision-language models the image and video processor configs.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
MODELS = ROOT / "bench" / "gpu" / "models"
CASES = ROOT / "bench" / "gpu" / "cases.yaml"

# Token ids 0..6 of the trained tokenizer; vision-language configs point their token ids at 3..6.
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
VISION_TOKEN_IDS = {"vision_start_token_id": 3, "vision_end_token_id": 4, "image_token_id": 5, "video_token_id": 6}
TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model predicts the next token from the previous ones.",
    "Paged attention stores the key value cache in fixed size blocks.",
    "Random weights measure whether the engine starts, not what it answers.",
    "0123456789 !?,.;:'\"()[]{}<>/\\|@#$%^&*-_=+~`",
] * 20


def load_cases(path: Path = CASES) -> list[dict[str, Any]]:
    with open(path) as handle:
        data = yaml.safe_load(handle)
    defaults = data.get("defaults", {})
    cases = [{**defaults, **case} for case in data["cases"]]
    ids = [case["id"] for case in cases]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"duplicate case ids in {path}: {sorted(duplicated)}")
    return cases


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _drop(config: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node.get(key, {})
    node.pop(last, None)


def shrunk_config(case: dict[str, Any]) -> dict[str, Any]:
    """The fixture's config.json with the case's `drop` keys removed and its `set` keys (dotted paths) set."""
    source = json.loads((FIXTURES / case["source"] / "config.json").read_text())
    config = copy.deepcopy(source)
    for key in case.get("drop", []):
        _drop(config, key)
    for key, value in (case.get("set") or {}).items():
        _set(config, key, value)
    if case.get("vision"):
        config.update(VISION_TOKEN_IDS)
    config["_ground_truth"] = {
        "source": f"tests/fixtures/models/{case['source']}",
        "case": case["id"],
        "shrink": case.get("note", ""),
    }
    return config


def model_dir(case: dict[str, Any]) -> Path:
    return MODELS / case["id"]


def prepare(cases: list[dict[str, Any]]) -> list[Path]:
    """Write bench/gpu/models/<id>/config.json (and the fixture's hf_quant_config.json) for every case."""
    written = []
    for case in cases:
        out = model_dir(case)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(shrunk_config(case), indent=2) + "\n")
        extra = FIXTURES / case["source"] / "hf_quant_config.json"
        if extra.is_file():
            shutil.copyfile(extra, out / "hf_quant_config.json")
        written.append(out)
    return written


# -- on the GPU machine ------------------------------------------------------------------------------


def build_tokenizer(out: Path, max_length: int = 1 << 20) -> None:
    """A byte-level BPE tokenizer trained here on a few sentences (no network); ids 0..6 are SPECIAL_TOKENS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=max_length
    )
    # A plain chat template that vLLM classifies as "string" content: it puts the image placeholders itself.
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    fast.save_pretrained(out)


def build_wide_tokenizer(out: Path, vocab_size: int, max_length: int = 1 << 20) -> None:
    """A word-level tokenizer with the model's whole vocabulary (`t<id>` words, ids 0..2 special), for load
    benchmarks: vLLM's random dataset (benchmarks/datasets.py generate_token_sequence) takes input_len consecutive ids
    from a random offset, so over build_tokenizer's ~450 ids every prompt is a shift of the same cycle and the
    prefix cache answers almost all of it (97.7% hits on the H200, 2026-12-02); over 128k ids prompts are distinct.
    Decoding joins the words with spaces and encoding splits them again: the round trip keeps every id."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>"]
    vocab = {token: index for index, token in enumerate(special)}
    vocab.update({f"t{index}": index for index in range(len(special), vocab_size)})
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=max_length
    )
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    fast.save_pretrained(out)


def build_vision_processor(out: Path, config: dict[str, Any], max_pixels: int) -> None:
    """Qwen3-VL processor configs as the real checkpoints ship them, sized to the vision tower's patches."""
    vision = config["vision_config"]
    common = {
        "patch_size": vision["patch_size"],
        "merge_size": vision["spatial_merge_size"],
        "temporal_patch_size": vision["temporal_patch_size"],
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "Qwen3VLProcessor",
    }
    image = {
        **common,
        "image_processor_type": "Qwen2VLImageProcessorFast",
        "size": {"shortest_edge": 64 * 64, "longest_edge": max_pixels},
    }
    video = {
        **common,
        "video_processor_type": "Qwen3VLVideoProcessor",
        "size": {"shortest_edge": 64 * 64, "longest_edge": max_pixels * 2},
    }
    (out / "preprocessor_config.json").write_text(json.dumps(image, indent=2) + "\n")
    (out / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2) + "\n")
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    tokenizer_config["processor_class"] = "Qwen3VLProcessor"
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")


def materialize(case: dict[str, Any], scratch: Path, tokenizer_cache: Path) -> Path:
    """Copy the committed directory of a case to scratch and add a tokenizer (and processor): what vLLM loads."""
    source = model_dir(case)
    target = scratch / case["id"]
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    if not (tokenizer_cache / "tokenizer.json").is_file():
        build_tokenizer(tokenizer_cache)
    for item in tokenizer_cache.iterdir():
        shutil.copyfile(item, target / item.name)
    if case.get("vision"):
        config = json.loads((target / "config.json").read_text())
        build_vision_processor(target, config, int(case.get("vision_max_pixels", 2048 * 1024)))
    return target
