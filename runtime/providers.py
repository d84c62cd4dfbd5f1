"""Execution providers by the short names users type, and the choice of what actually runs.

A registry maps each short name to onnxruntime's provider name, the friendly option names it
accepts, and its place in the ``auto`` order. Resolution never hands onnxruntime a provider its
build lacks: those are dropped with one :class:`ProviderFallbackWarning` that names what is
available (or raise :class:`ProviderUnavailableError` when ``strict``).
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping, Sequence

from .errors import ProviderFallbackWarning, ProviderUnavailableError, UnknownNameError
from .records import Record, field


class ProviderSpec(Record):
    """One execution provider: its short name, onnxruntime's name and option aliases."""

    short: str
    ort_name: str
    description: str
    auto_rank: int | None = None  # lower is preferred by ``auto``; None: only on request
    aliases: Mapping[str, str] = field(default_factory=dict)
    implied: Mapping[str, str] = field(default_factory=dict)  # set when their alias is used


PROVIDERS: dict[str, ProviderSpec] = {}


def register(spec: ProviderSpec) -> ProviderSpec:
    PROVIDERS[spec.short] = spec
    return spec


register(ProviderSpec(
    "tensorrt", "TensorrtExecutionProvider", "NVIDIA TensorRT (GPU, Jetson)", auto_rank=0,
    aliases={"fp16": "trt_fp16_enable", "int8": "trt_int8_enable",
             "cache": "trt_engine_cache_path", "device_id": "device_id",
             "workspace": "trt_max_workspace_size"},
    implied={"trt_engine_cache_path": "trt_engine_cache_enable"}))
register(ProviderSpec("cuda", "CUDAExecutionProvider", "NVIDIA CUDA (GPU, Jetson)", auto_rank=1,
                      aliases={"device_id": "device_id", "memory_limit": "gpu_mem_limit"}))
register(ProviderSpec("migraphx", "MIGraphXExecutionProvider", "AMD MIGraphX (GPU)", auto_rank=2,
                      aliases={"device_id": "device_id", "fp16": "migraphx_fp16_enable"}))
register(ProviderSpec("rocm", "ROCMExecutionProvider", "AMD ROCm (GPU)", auto_rank=3,
                      aliases={"device_id": "device_id"}))
register(ProviderSpec("dml", "DmlExecutionProvider", "DirectML (Windows GPU)", auto_rank=4,
                      aliases={"device_id": "device_id"}))
register(ProviderSpec("coreml", "CoreMLExecutionProvider", "Apple Core ML", auto_rank=5))
register(ProviderSpec("qnn", "QNNExecutionProvider", "Qualcomm AI Engine (NPU)", auto_rank=6,
                      aliases={"backend": "backend_path"}))
register(ProviderSpec("openvino", "OpenVINOExecutionProvider", "Intel OpenVINO (CPU, GPU, NPU)",
                      auto_rank=7, aliases={"device": "device_type"}))
register(ProviderSpec("nnapi", "NnapiExecutionProvider", "Android NNAPI"))
register(ProviderSpec("acl", "ACLExecutionProvider", "Arm Compute Library (arm64)", auto_rank=8))
register(ProviderSpec("armnn", "ArmNNExecutionProvider", "Arm NN (arm64)", auto_rank=9))
register(ProviderSpec("xnnpack", "XnnpackExecutionProvider", "XNNPACK (arm64/x86 CPU kernels)",
                      aliases={"threads": "intra_op_num_threads"}))
register(ProviderSpec("dnnl", "DnnlExecutionProvider", "Intel oneDNN (CPU)"))
register(ProviderSpec("azure", "AzureExecutionProvider", "Azure remote endpoints (not local)"))
register(ProviderSpec("cpu", "CPUExecutionProvider", "onnxruntime's default CPU kernels",
                      auto_rank=100))

_BY_ORT_NAME = {spec.ort_name: spec for spec in PROVIDERS.values()}


def available() -> list[str]:
    """onnxruntime's names of the providers this build can use."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def short_name(ort_name: str) -> str:
    spec = _BY_ORT_NAME.get(ort_name)
    return spec.short if spec else ort_name


def lookup(name: str) -> ProviderSpec:
    """The spec for a short name (or onnxruntime's full name); unknown names list the known."""
    key = name.strip().lower()
    if key in PROVIDERS:
        return PROVIDERS[key]
    if name in _BY_ORT_NAME:
        return _BY_ORT_NAME[name]
    raise UnknownNameError("execution provider", name, ["auto", *PROVIDERS])


def auto_order(available_names: Iterable[str]) -> list[ProviderSpec]:
    """What ``auto`` picks: every available ranked provider, best first, CPU last."""
    have = set(available_names)
    ranked = [s for s in PROVIDERS.values() if s.auto_rank is not None and s.ort_name in have]
    return sorted(ranked, key=lambda s: s.auto_rank)  # type: ignore[arg-type, return-value]


def _coerce(value: Any) -> Any:
    """Option values typed on a command line: booleans and numbers become what they say."""
    if not isinstance(value, str):
        return value
    low = value.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def expand_options(spec: ProviderSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """Translate friendly option names (``fp16``, ``cache``) to onnxruntime's, coercing values."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        real = spec.aliases.get(key, key)
        out[real] = _coerce(value)
        if real in spec.implied:
            out.setdefault(spec.implied[real], True)
    # onnxruntime's provider options accept strings for every key; booleans as "True"/"False".
    return out


class ProviderChoice(Record):
    """What to hand onnxruntime, and what was asked for but is not there."""

    providers: list[str]
    options: list[dict[str, Any]]
    missing: list[str]


def resolve(requested: Sequence[str] | str | None,
            options: Mapping[str, Mapping[str, Any]] | None = None,
            *, strict: bool = False,
            available_names: Sequence[str] | None = None) -> ProviderChoice:
    """Turn requested short names into onnxruntime's provider list (CPU always closes it).

    ``options`` maps a short name to its provider options (friendly or onnxruntime names).
    """
    if requested is None or isinstance(requested, str):
        requested = ["auto"] if requested is None else [requested]
    have = list(available() if available_names is None else available_names)
    options = options or {}
    unknown_opts = [k for k in options if k != "auto" and k not in PROVIDERS]
    if unknown_opts:
        lookup(unknown_opts[0])  # raises with the known names

    wanted: list[ProviderSpec] = []
    missing: list[str] = []
    for name in requested or ["auto"]:
        if name.strip().lower() == "auto":
            wanted.extend(auto_order(have))
            continue
        spec = lookup(name)
        if spec.ort_name in have:
            wanted.append(spec)
        else:
            missing.append(spec.short)

    if missing:
        shorts = [short_name(n) for n in have]
        message = (f"execution provider {', '.join(missing)} is not available in this onnxruntime "
                   f"build (available: {', '.join(shorts)})")
        if strict:
            raise ProviderUnavailableError(message)
        warnings.warn(message + "; falling back to cpu", ProviderFallbackWarning, stacklevel=3)

    cpu = PROVIDERS["cpu"]
    if cpu not in wanted:
        wanted.append(cpu)
    seen: set[str] = set()
    ordered = [s for s in wanted if not (s.ort_name in seen or seen.add(s.ort_name))]
    return ProviderChoice(
        providers=[s.ort_name for s in ordered],
        options=[expand_options(s, options.get(s.short, {})) for s in ordered],
        missing=missing,
    )
