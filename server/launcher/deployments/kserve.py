"""KServe InferenceService: the Hugging Face runtime (modelFormat huggingface), which serves with vLLM, and custom
predictor containers (read as a pod).

The Hugging Face runtime (kserve/python/huggingfaceserver/__main__.py) takes `--model_id` (else the model that
storageUri downloads to --model_dir, /mnt/models), `--max_length` as vLLM's max_model_len, `--backend`
(auto and vllm use vLLM), its own server flags, and every vLLM engine argument. Its ClusterServingRuntime
mounts a memory emptyDir at /dev/shm. Multi-node (workerSpec) runs pipelineParallelSize pods of
tensorParallelSize GPUs each.
"""

from __future__ import annotations

from .located import Doc, Loc, get, loc
from .pods import apply_pod, pod_workloads
from .workload import Token, Workload, as_int, tokens_of

# Flags of the KServe model server and of the Hugging Face runtime that are not vLLM's (dashes, as canonical()).
KSERVE_FLAGS = {
    "model-name",
    "model-id",
    "model-dir",
    "model-revision",
    "tokenizer-revision",
    "max-length",
    "backend",
    "task",
    "tensor-input-names",
    "max-log-len",
    "http-port",
    "grpc-port",
    "workers",
    "max-threads",
    "max-asyncio-workers",
    "log-config-file",
    "access-log-format",
    "predictor-host",
    "predictor-protocol",
    "predictor-request-timeout-seconds",
}
KSERVE_SWITCHES = {
    "disable-lower-case",
    "disable-special-tokens",
    "return-token-type-ids",
    "return-probabilities",
    "disable-log-requests",
    "enable-grpc",
    "enable-docs-url",
    "enable-latency-logging",
    "configure-logging",
    "predictor-use-ssl",
}
NOT_VLLM_BACKENDS = ("huggingface", "triton")


def inference_service(doc: Doc, name: str, file: str) -> list[Workload]:
    predictor = get(doc, "spec", "predictor")
    if not isinstance(predictor, dict):
        return []
    found = pod_workloads(predictor, "InferenceService", name, file)  # custom containers
    model = predictor.get("model")
    if isinstance(model, dict) and _is_huggingface(model):
        workload = _huggingface(model, predictor, name, file)
        if workload:
            found.append(workload)
    return found


def _is_huggingface(model: Doc) -> bool:
    return str(get(model, "modelFormat", "name") or "").lower() == "huggingface" or "huggingface" in str(
        model.get("runtime") or ""
    )


def _huggingface(model: Doc, predictor: Doc, name: str, file: str) -> Workload | None:
    from ..check.arguments import canonical

    tokens = tokens_of(model.get("args"), loc(model, "args"))
    options: dict[str, Token] = {}
    argv: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        flag, eq, inline = token.text.partition("=")
        key = canonical(flag) if flag.startswith("-") else ""
        if key in KSERVE_SWITCHES:
            i += 1
            continue
        if key in KSERVE_FLAGS:
            if eq:
                options[key] = Token(inline, token.at)
                i += 1
            else:
                has_value = i + 1 < len(tokens) and not tokens[i + 1].text.startswith("-")
                options[key] = Token(tokens[i + 1].text if has_value else "", token.at)
                i += 2 if has_value else 1
            continue
        argv.append(token)
        i += 1
    backend = options.get("backend")
    if backend and backend.text in NOT_VLLM_BACKENDS:
        return None
    model_ref = (
        options.get("model-id")
        or _from_storage_uri(model)
        or options.get("model-dir")
        or Token("/mnt/models", loc(model))
    )
    head = [Token("--model", model_ref.at), model_ref]
    if "max-length" in options:
        head += [Token("--max-model-len", options["max-length"].at), options["max-length"]]
    workload = Workload(
        file,
        loc(predictor, "model", fallback=Loc(file, 0)),
        "InferenceService",
        name,
        "kserve-container",
        head + argv,
        image=Token(str(model["image"]), loc(model, "image")) if model.get("image") else None,
    )
    workload.env = {
        str(e["name"]): Token(str(e["value"]), loc(e, "value"))
        for e in model.get("env") or []
        if isinstance(e, dict) and e.get("name") and e.get("value") is not None
    }
    apply_pod(workload, model, predictor)
    if not workload.shm_present:
        workload.shm_present, workload.shm_gib = True, None  # the runtime's own memory emptyDir at /dev/shm
    _multi_node(workload, predictor)
    return workload


def _from_storage_uri(model: Doc) -> Token | None:
    uri = str(model.get("storageUri") or "")
    if uri.startswith("hf://"):
        repo = uri.removeprefix("hf://").split(":", 1)[0]
        return Token(repo, loc(model, "storageUri"))
    return None


def _multi_node(workload: Workload, predictor: Doc) -> None:
    worker = predictor.get("workerSpec")
    if not isinstance(worker, dict):
        return
    tp, pp = as_int(worker.get("tensorParallelSize", 1)) or 1, as_int(worker.get("pipelineParallelSize", 1)) or 1
    for flag, key, value in (
        ("--tensor-parallel-size", "tensorParallelSize", tp),
        ("--pipeline-parallel-size", "pipelineParallelSize", pp),
    ):
        if key in worker:
            at = loc(worker, key)
            workload.argv += [Token(flag, at), Token(str(value), at)]
    workload.group_size, workload.group_at = pp, loc(worker, "pipelineParallelSize")
    per_pod = workload.gpus or tp
    workload.group_gpus = per_pod * pp
