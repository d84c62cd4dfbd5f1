"""Execution providers by the short names users type, and the choice of what actually runs.

A registry maps each short name to onnxruntime's provider name, the friendly option names it
accepts, and its place in the ``auto`` order. Resolution never hands onnxruntime a provider its
build lacks: those are dropped with one :class:`ProviderFallbackWarning` that names what is
available (or raise :class:`ProviderUnavailableError` when ``strict``).

A provider the build lists can still be unusable: ``onnxruntime-gpu`` lists TensorRT whether or
not TensorRT is installed. onnxruntime then prints a dozen lines of errors, some of them to
standard output (where ``--format json`` writes), and falls back. So on Linux, where such a
provider is a library of its own, it is loaded here first, the way onnxruntime loads it; one
that cannot load is left out of ``auto`` and reported in one line with the loader's reason.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import plugins
from .errors import ProviderFallbackWarning, ProviderUnavailableError, UnknownNameError
from .plugins import Plugin
from .records import Record, field


class ProviderSpec(Record):
    """One execution provider: its short name, onnxruntime's name and option aliases."""

    short: str
    ort_name: str
    description: str
    auto_rank: int | None = None  # lower is preferred by ``auto``; None: only on request
    aliases: Mapping[str, str] = field(default_factory=dict)
    implied: Mapping[str, str] = field(default_factory=dict)  # set when their alias is used
    defaults: Mapping[str, Any] = field(default_factory=dict)  # unless the user sets them
    library: str | None = None  # onnxruntime/capi/libonnxruntime_providers_<library>.so
    needs: str = ""  # what to install when that library cannot load
    plugin: Plugin | None = None  # a package that brings the provider to the stock wheel
    # onnxruntime's option that makes the provider capture the graph's kernels on one run and
    # replay them on the next ones (CUDA graphs), and the device type its buffers then live on.
    # Such a session must run on buffers bound once in that device's memory (Model.bind()).
    graph_option: str | None = None
    device_type: str | None = None


PROVIDERS: dict[str, ProviderSpec] = {}


def register(spec: ProviderSpec) -> ProviderSpec:
    PROVIDERS[spec.short] = spec
    return spec


register(ProviderSpec(
    "tensorrt", "TensorrtExecutionProvider", "NVIDIA TensorRT (GPU, Jetson)", auto_rank=0,
    aliases={"fp16": "trt_fp16_enable", "int8": "trt_int8_enable",
             "cache": "trt_engine_cache_path", "device_id": "device_id",
             "workspace": "trt_max_workspace_size", "graph": "trt_cuda_graph_enable"},
    implied={"trt_engine_cache_path": "trt_engine_cache_enable"},
    graph_option="trt_cuda_graph_enable", device_type="cuda",
    library="tensorrt", needs="TensorRT and the CUDA libraries of this onnxruntime build"))
# onnxruntime's CUDA provider runs float32 MatMul/Conv in TF32 on Ampere and newer GPUs (Jetson
# Orin too) unless told not to: 10-bit mantissas, 3.2e-4 from the CPU's output on the digits cnn
# (H100), over the 1e-4 the export proves. Off by default here; MobileNetV2 at batch 64 lost 8%.
register(ProviderSpec("cuda", "CUDAExecutionProvider", "NVIDIA CUDA (GPU, Jetson)", auto_rank=1,
                      aliases={"device_id": "device_id", "memory_limit": "gpu_mem_limit",
                               "tf32": "use_tf32", "graph": "enable_cuda_graph"},
                      defaults={"use_tf32": 0},
                      graph_option="enable_cuda_graph", device_type="cuda",
                      library="cuda", needs="the CUDA and cuDNN libraries of this onnxruntime "
                                            "build"))
register(ProviderSpec("migraphx", "MIGraphXExecutionProvider", "AMD MIGraphX (GPU)", auto_rank=2,
                      aliases={"device_id": "device_id", "fp16": "migraphx_fp16_enable"},
                      library="migraphx", needs="MIGraphX and ROCm"))
register(ProviderSpec("rocm", "ROCMExecutionProvider", "AMD ROCm (GPU)", auto_rank=3,
                      aliases={"device_id": "device_id"}, library="rocm", needs="ROCm"))
register(ProviderSpec("dml", "DmlExecutionProvider", "DirectML (Windows GPU)", auto_rank=4,
                      aliases={"device_id": "device_id"}))
register(ProviderSpec("coreml", "CoreMLExecutionProvider", "Apple Core ML", auto_rank=5))
register(ProviderSpec("qnn", "QNNExecutionProvider", "Qualcomm AI Engine (NPU)", auto_rank=6,
                      aliases={"backend": "backend_path"}))
# OpenVINO also comes as a plugin package for the stock wheel (onnxruntime-ep-openvino). Its CPU
# plugin computes in bf16 on CPUs with AMX unless told otherwise: 7.7e-2 off onnxruntime's CPU
# output on the digits cifar_cnn (Xeon with AMX, plugin 1.8.1; `precision` did not change it),
# 7.6e-6 with float32 asked for through load_config, which edge-infer does by default.
register(ProviderSpec("openvino", "OpenVINOExecutionProvider", "Intel OpenVINO (CPU, GPU, NPU)",
                      auto_rank=7, aliases={"device": "device_type"}, library="openvino",
                      needs="OpenVINO",
                      plugin=Plugin("onnxruntime_ep_openvino", defaults={
                          "load_config": '{"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}'})))
register(ProviderSpec("nnapi", "NnapiExecutionProvider", "Android NNAPI"))
register(ProviderSpec("acl", "ACLExecutionProvider", "Arm Compute Library (arm64)", auto_rank=8))
register(ProviderSpec("armnn", "ArmNNExecutionProvider", "Arm NN (arm64)", auto_rank=9))
register(ProviderSpec("xnnpack", "XnnpackExecutionProvider", "XNNPACK (arm64/x86 CPU kernels)",
                      aliases={"threads": "intra_op_num_threads"}))
register(ProviderSpec("dnnl", "DnnlExecutionProvider", "Intel oneDNN (CPU)", library="dnnl",
                      needs="oneDNN"))
register(ProviderSpec("azure", "AzureExecutionProvider", "Azure remote endpoints (not local)"))
register(ProviderSpec("cpu", "CPUExecutionProvider", "onnxruntime's default CPU kernels",
                      auto_rank=100))

_BY_ORT_NAME = {spec.ort_name: spec for spec in PROVIDERS.values()}


def available() -> list[str]:
    """onnxruntime's names of the providers this build can use, with those a plugin package
    installed beside it brings (before CPU, which closes onnxruntime's list)."""
    import onnxruntime

    names = list(onnxruntime.get_available_providers())
    extra = [s.ort_name for s in PROVIDERS.values()
             if s.ort_name not in names and served_by_plugin(s, names)]
    at = names.index("CPUExecutionProvider") if "CPUExecutionProvider" in names else len(names)
    return names[:at] + extra + names[at:]


def served_by_plugin(spec: ProviderSpec, listed: Sequence[str] | None = None) -> bool:
    """Whether ``spec`` runs through its plugin package rather than the onnxruntime build
    (``listed``: onnxruntime's own provider list, when the caller has it)."""
    if spec.plugin is None:
        return False
    if plugins.registered(spec.ort_name):
        return True
    if listed is None:
        import onnxruntime

        listed = onnxruntime.get_available_providers()
    return spec.ort_name not in listed and plugins.installed(spec.plugin)


def short_name(ort_name: str) -> str:
    spec = _BY_ORT_NAME.get(ort_name)
    return spec.short if spec else ort_name


def graph_capture(session: Any) -> tuple[str, int] | None:
    """``(device type, device id)`` when ``session``'s first provider captures a CUDA graph
    (``cuda.graph=1``, ``tensorrt.graph=1``), else None. Such a session replays the kernels
    and buffers of its captured run: a ``run()`` that hands it new arrays gets the old
    buffers' results, so it must run through buffers bound once on that device."""
    spec = _BY_ORT_NAME.get(session.get_providers()[0])
    if spec is None or spec.graph_option is None or spec.device_type is None:
        return None
    options = session.get_provider_options().get(spec.ort_name, {})
    if str(options.get(spec.graph_option, "0")).lower() not in ("1", "true"):
        return None
    return spec.device_type, int(options.get("device_id", 0) or 0)


def without_graph_capture(options: Mapping[str, Mapping[str, Any]]
                          ) -> dict[str, dict[str, Any]]:
    """``options`` (by short provider name) less the options that turn on graph capture,
    under their friendly or onnxruntime names: for a session that must run ``run()``, such as
    the profiler's (which sees one node-less launch in a replayed graph)."""
    out: dict[str, dict[str, Any]] = {}
    for short, opts in options.items():
        spec = PROVIDERS.get(short)
        if spec is None or spec.graph_option is None:
            out[short] = dict(opts)
            continue
        out[short] = {k: v for k, v in opts.items()
                      if spec.aliases.get(k, k) != spec.graph_option}
    return out


def lookup(name: str) -> ProviderSpec:
    """The spec for a short name (or onnxruntime's full name); unknown names list the known."""
    key = name.strip().lower()
    if key in PROVIDERS:
        return PROVIDERS[key]
    if name in _BY_ORT_NAME:
        return _BY_ORT_NAME[name]
    raise UnknownNameError("execution provider", name, ["auto", *PROVIDERS])


LoadCheck = Callable[[ProviderSpec], "str | None"]


def load_failure(spec: ProviderSpec) -> str | None:
    """Why onnxruntime could not load ``spec``'s library here, or None when it can (or when it
    is not a separate library: built in, or not Linux, where this is not checked)."""
    if spec.plugin is not None and served_by_plugin(spec):
        why = plugins.register(spec.ort_name, spec.plugin.module)
        if why is None and not plugins.devices(spec.ort_name):
            why = f"its plugin package ({spec.plugin.module}) offers no device on this machine"
        return why
    if spec.library is None or not sys.platform.startswith("linux"):
        return None
    import onnxruntime

    return _library_failure(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"),
                            spec.library)


@functools.lru_cache(maxsize=None)
def _library_failure(capi: str, library: str) -> str | None:
    """Load the provider library as onnxruntime does (its shared helper first, global; then the
    library, resolving every symbol now). Cached: the answer holds for the process, and a
    library that loaded stays loaded, as it would for the session that uses it."""
    import ctypes

    path = os.path.join(capi, f"libonnxruntime_providers_{library}.so")
    if not os.path.exists(path):
        return None
    shared = os.path.join(capi, "libonnxruntime_providers_shared.so")

    def load() -> str | None:
        try:
            if os.path.exists(shared):
                ctypes.CDLL(shared, mode=ctypes.RTLD_GLOBAL)
            ctypes.CDLL(path)
        except OSError as exc:
            return str(exc).removeprefix(f"{path}: ").strip() or type(exc).__name__
        return None

    why = load()
    if why is not None and library in ("cuda", "tensorrt") and _preload_cuda_wheels():
        why = load()
    return why


def _preload_cuda_wheels() -> bool:
    """Load CUDA and cuDNN from NVIDIA's pip wheels (``pip install onnxruntime-gpu[cuda,cudnn]``)
    the way onnxruntime's documentation says to (``onnxruntime.preload_dlls()``): the loader
    does not search site-packages, so without this the CUDA provider cannot start. True when
    there were wheels to load from; what preload_dlls prints is dropped (the retry's reason is
    what gets reported)."""
    import contextlib
    import importlib.util
    import io

    import onnxruntime

    preload = getattr(onnxruntime, "preload_dlls", None)
    try:
        has_wheels = importlib.util.find_spec("nvidia") is not None
    except (ImportError, ValueError):
        has_wheels = False
    if preload is None or not has_wheels:
        return False
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            preload()
        except Exception:  # a failed preload leaves the first reason standing
            return False
    return True


def auto_order(available_names: Iterable[str],
               check: LoadCheck = load_failure) -> list[ProviderSpec]:
    """What ``auto`` picks: every available ranked provider that can load, best first, CPU
    last."""
    have = set(available_names)
    ranked = [s for s in PROVIDERS.values() if s.auto_rank is not None and s.ort_name in have
              and check(s) is None]
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
    """Translate friendly option names (``fp16``, ``cache``) to onnxruntime's, coercing values,
    over the provider's defaults (CUDA: no TF32)."""
    out: dict[str, Any] = dict(spec.defaults)
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
    missing: list[str]  # asked for, and not in this build or unable to load


def resolve(requested: Sequence[str] | str | None,
            options: Mapping[str, Mapping[str, Any]] | None = None,
            *, strict: bool = False,
            available_names: Sequence[str] | None = None,
            check: LoadCheck = load_failure) -> ProviderChoice:
    """Turn requested short names into onnxruntime's provider list (CPU always closes it).

    ``options`` maps a short name to its provider options (friendly or onnxruntime names).
    ``check`` says why a listed provider's library cannot load (tests pass their own).
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
    unloadable: dict[str, str] = {}
    for name in requested or ["auto"]:
        if name.strip().lower() == "auto":
            wanted.extend(auto_order(have, check))
            continue
        spec = lookup(name)
        if spec.ort_name not in have:
            missing.append(spec.short)
        elif (why := check(spec)) is not None:
            unloadable[spec.short] = why
        else:
            wanted.append(spec)

    problems = []
    if missing:
        shorts = [short_name(n) for n in have
                  if (s := _BY_ORT_NAME.get(n)) is None or check(s) is None]
        problems.append(f"execution provider {', '.join(missing)} is not available in this "
                        f"onnxruntime build (available: {', '.join(shorts)})")
    for short, why in unloadable.items():
        spec = PROVIDERS[short]
        if spec.plugin is not None and served_by_plugin(spec):
            problems.append(f"execution provider {short} (from the {spec.plugin.module} package) "
                            f"cannot load: {why}")
        else:
            problems.append(f"execution provider {short} is in this onnxruntime build but "
                            f"cannot load: {why} (install {spec.needs}, or put their folder on "
                            "LD_LIBRARY_PATH)")
    if problems:
        message = "; ".join(problems)
        if strict:
            raise ProviderUnavailableError(message)
        rest = dict.fromkeys([*(s.short for s in wanted), "cpu"])
        warnings.warn(f"{message}; falling back to {', '.join(rest)}", ProviderFallbackWarning,
                      stacklevel=3)

    cpu = PROVIDERS["cpu"]
    if cpu not in wanted:
        wanted.append(cpu)
    seen: set[str] = set()
    ordered = [s for s in wanted if not (s.ort_name in seen or seen.add(s.ort_name))]
    return ProviderChoice(
        providers=[s.ort_name for s in ordered],
        options=[expand_options(s, options.get(s.short, {})) for s in ordered],
        missing=missing + list(unloadable),
    )


def session_providers(session_options: Any, choice: ProviderChoice
                      ) -> tuple[list[str] | None, list[dict[str, Any]] | None]:
    """What to pass onnxruntime's ``InferenceSession`` as ``providers``/``provider_options``.

    Without a plugin provider: the choice as it is. With one, onnxruntime takes providers only
    from the session options (a plugin's name in ``providers`` runs on CPU without a word): the
    plugin's devices are added there, the built-in providers after it by name, CPU closing the
    list on its own; then ``(None, None)``. The session options given are changed: a
    ``SessionOptions`` passed to ``Model`` serves one session.
    """
    if not any(served_by_plugin(_BY_ORT_NAME[n]) for n in choice.providers if n in _BY_ORT_NAME):
        return choice.providers, choice.options
    for name, options in zip(choice.providers, choice.options):
        spec = _BY_ORT_NAME.get(name)
        if name == "CPUExecutionProvider":
            continue
        if spec is not None and spec.plugin is not None and served_by_plugin(spec):
            plugins.attach(session_options, name, spec.plugin, {**spec.plugin.defaults, **options})
        else:
            session_options.add_provider(name, {k: plugins.as_text(v) for k, v in options.items()})
    return None, None
