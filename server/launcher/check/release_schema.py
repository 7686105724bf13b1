"""The shape of data/vllm/<release>.json (written by tools/derive_vllm_facts.py), checked when a release is loaded.

Only the sections the check and the planner read are typed field by field; the others (the attention samples, the
checkpoint table) must be maps. A file that does not fit is refused with the path of the first problem and what
to do, before any rule reads it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import LauncherError

SCHEMA_VERSION = 1


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str


class ParserAction(BaseModel):
    model_config = ConfigDict(extra="allow")
    dest: str
    option_strings: list[str]
    action: str
    nargs: int | str | None
    choices: list[Any] | None
    required: bool


class Parser(_Section):
    allow_abbrev: bool
    prefix_chars: str
    actions: list[ParserAction] = Field(min_length=1)
    config_fields: dict[str, Any] = Field(default_factory=dict)


class Quantization(_Section):
    methods: dict[str, dict[str, Any]]


class Activation(_Section):
    mlp_keeps_gate_up: list[str]
    out_of_place_norm: list[str]


class RunnerBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")
    graphs_estimated: bool
    offloader: bool


class ModelRunner(_Section):
    default: Literal["v1", "v2", "v2_unless_moe_or_hybrid"]
    default_v2_architectures: list[str]
    v1: RunnerBehaviour
    v2: RunnerBehaviour | None = None


class ReleaseFacts(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_version: Literal[1] = Field(alias="schema")
    vllm_version: str
    origin: dict[str, Any]
    parser: Parser
    model_config_facts: dict[str, Any] = Field(alias="model_config")
    max_len: dict[str, Any] | None = None
    quantization: Quantization
    checkpoint_quantization: dict[str, Any] | None = None
    attention: dict[str, Any] | None = None
    activation: Activation | None = None
    model_runner: ModelRunner | None = None


def validate_release_facts(facts: Any, where: str) -> None:
    """LauncherError naming the first field of `where` that is not what the check reads."""
    try:
        ReleaseFacts.model_validate(facts)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "(the file)"
        raise LauncherError(
            f"{where}: {path}: {first['msg']} ({exc.error_count()} problem(s)); the derived vLLM facts are not what "
            "this launcher reads: regenerate them with tools/derive_vllm_facts.py"
        ) from None
