"""Execution providers that come as packages of their own (onnxruntime's plugin EP API).

``pip install onnxruntime-ep-openvino`` puts OpenVINO beside the stock ``onnxruntime`` wheel,
with no second onnxruntime build to swap in. onnxruntime knows nothing of such a provider until
its library is registered, and then only runs it when the session options name its devices:
once registered, onnxruntime lists the name among its providers, yet a session given that name
in ``providers=`` silently runs on CPU (onnxruntime 1.30 and 1.32, OpenVINO plugin 1.8.1). This
module finds the package a registry entry names, registers its library once per process, and
adds the chosen devices to a session's options.

Registration is process state inside onnxruntime (a second registration under the same name is
an error), so what was registered is remembered here for the life of the process too.
"""

from __future__ import annotations

from typing import Any, Mapping

from .records import Record, field


class Plugin(Record):
    """A provider's plugin package: the module that knows where its library is, and options
    edge-infer sets unless the user does (the plugin's own defaults can differ from the
    built-in provider's)."""

    module: str
    defaults: Mapping[str, str] = field(default_factory=dict)
    device_option: str = "device_type"  # the option that picks CPU, GPU or NPU


def installed(plugin: Plugin) -> bool:
    """Whether the package is importable; found without importing it (it loads no library)."""
    import importlib.util

    try:
        return importlib.util.find_spec(plugin.module) is not None
    except (ImportError, ValueError):
        return False


# onnxruntime's registry of plugin libraries lives as long as the process; so does this record
# of what was asked of it: provider name -> None (registered) or why registration failed.
_OUTCOMES: dict[str, str | None] = {}


def register(ort_name: str, module: str) -> str | None:
    """Register the package's library with onnxruntime under ``ort_name``: None once it is
    registered (by this call or an earlier one), otherwise why it could not be."""
    if ort_name in _OUTCOMES:
        return _OUTCOMES[ort_name]
    import importlib

    import onnxruntime

    outcome = None
    try:
        path = importlib.import_module(module).get_library_path()
        onnxruntime.register_execution_provider_library(ort_name, path)
    except Exception as exc:  # an import error, a missing library, onnxruntime's own errors
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "already registered" not in message.lower():
            outcome = message.split(" : FAIL : ", 1)[-1]
    _OUTCOMES[ort_name] = outcome
    return outcome


def registered(ort_name: str) -> bool:
    """Whether this process registered a plugin under that name."""
    return ort_name in _OUTCOMES and _OUTCOMES[ort_name] is None


def devices(ort_name: str) -> list[Any]:
    """onnxruntime's devices for a registered provider (``OrtEpDevice``s)."""
    import onnxruntime

    return [d for d in onnxruntime.get_ep_devices() if d.ep_name == ort_name]


def device_kind(device: Any) -> str:
    """``CPU``, ``GPU`` or ``NPU`` for an ``OrtEpDevice``."""
    kind = device.device.type
    return str(getattr(kind, "name", kind)).rsplit(".", 1)[-1].upper()


def choose(found: list[Any], wanted: str | None) -> list[Any]:
    """The devices a session gets: those of the kind asked for, else the CPU's when the plugin
    offers one (the built-in providers' default), else all of them."""
    if wanted:
        return [d for d in found if device_kind(d) == str(wanted).upper()]
    cpu = [d for d in found if device_kind(d) == "CPU"]
    return cpu or list(found)


def attach(session_options: Any, ort_name: str, plugin: Plugin,
           options: Mapping[str, Any]) -> list[Any]:
    """Add the provider's chosen devices, with its options as strings, to the session options;
    returns the devices (empty: none of the kind asked for, nothing added)."""
    options = dict(options)
    wanted = options.pop(plugin.device_option, None)
    chosen = choose(devices(ort_name), wanted)
    if chosen:
        session_options.add_provider_for_devices(
            chosen, {k: as_text(v) for k, v in options.items()})
    return chosen


def as_text(value: Any) -> str:
    """A provider option as onnxruntime's session options take it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
