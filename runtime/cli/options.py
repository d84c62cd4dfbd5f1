"""Options shared by the commands that create a session, and their parsing into library types."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..errors import UsageError


def provider_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--provider``, ``--provider-option``, ``--strict`` and ``--threads``."""
    decorators = [
        click.option("-p", "--provider", "providers", multiple=True, metavar="NAME",
                     help="Execution provider, repeatable in order of preference: auto, cpu, "
                          "cuda, tensorrt, openvino, xnnpack, acl, armnn, coreml, dml, qnn, "
                          "... (default: auto). See `edge-infer providers`."),
        click.option("-O", "--provider-option", "provider_option", multiple=True,
                     metavar="NAME.KEY=VALUE",
                     help="Pass an option to a provider, e.g. tensorrt.fp16=true, "
                          "tensorrt.cache=trt-cache/, cuda.device_id=1 (onnxruntime's own "
                          "option names work too)."),
        click.option("--strict", is_flag=True,
                     help="Fail instead of falling back to CPU when a provider is missing."),
        click.option("-t", "--threads", type=click.IntRange(min=0), default=None,
                     help="Intra-op threads (default: what `edge-infer tune` recorded in the "
                          "file for this machine, else onnxruntime decides; 0: onnxruntime "
                          "decides)."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def parse_provider_options(items: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``("tensorrt.fp16=true",)`` -> ``{"tensorrt": {"fp16": "true"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        provider, dot, option = key.partition(".")
        if not sep or not dot or not provider or not option:
            raise UsageError(f"--provider-option expects NAME.KEY=VALUE (like tensorrt.fp16=true),"
                             f" found {item!r}")
        out.setdefault(provider.strip().lower(), {})[option.strip()] = value.strip()
    return out
