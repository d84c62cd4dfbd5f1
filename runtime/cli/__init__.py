"""The ``edge-infer`` command line.

The root group imports nothing heavy: each command lives in its own module and is imported only
when it is invoked (click's lazily loaded subcommands), so ``edge-infer info`` never loads
onnxruntime and ``edge-infer run`` never loads Pillow unless an image is given. Domain errors
become one line on standard error with exit status 2 (usage) or 1 (failure); ``--debug`` (or
``EDGE_INFER_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from typing import Any

import click

from ..errors import EdgeInferError

# name -> "module:attribute"; the train/export commands join here as their issues land.
COMMANDS: dict[str, str] = {
    "run": "edge_infer.runtime.cli.run:run",
    "info": "edge_infer.runtime.cli.info:info",
    "providers": "edge_infer.runtime.cli.providers:providers",
    "bench": "edge_infer.runtime.cli.bench:bench",
    "tune": "edge_infer.runtime.cli.tune:tune",
    "train": "edge_infer.train.cli:train",
    "export": "edge_infer.export.cli:export",
    "quantize": "edge_infer.export.cli:quantize",
    "evaluate": "edge_infer.export.cli:evaluate",
    "devices": "edge_infer.devices.cli:devices",
    "pipeline": "edge_infer.export.cli:pipeline",
}
SHORT_HELP: dict[str, str] = {
    "run": "Run a model on .npy/.npz/.json/image/text inputs.",
    "info": "Show a model's inputs, outputs, opsets, size, quantization and operators.",
    "providers": "List execution providers and what 'auto' picks.",
    "bench": "Latency percentiles, throughput and memory of models, side by side.",
    "tune": "Find this machine's fastest threads/spinning for a model; record them in it.",
    "train": "Train a zoo model (cnn, lstm, gan, ...) on a dataset [train extra].",
    "export": "Convert a trained Keras model to ONNX with a parity proof [train extra].",
    "quantize": "INT8/FP16 quantization with an accuracy report and guard [train extra].",
    "evaluate": "Accuracy, per-class precision/recall, confusion matrix, throughput [train extra].",
    "devices": "List device profiles (x86, Raspberry Pi, Jetson) and detect this machine's.",
    "pipeline": "Train, export, quantize, evaluate, benchmark and report in one go [train extra].",
}
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CLIError(click.ClickException):
    """A one-line error with the exit status of the domain error behind it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def debug_enabled(ctx: click.Context | None = None) -> bool:
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is not None and ctx.find_root().meta.get("edge_infer.debug"):
        return True
    return os.environ.get("EDGE_INFER_DEBUG", "") not in ("", "0")


def _enable_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().meta["edge_infer.debug"] = True
    return value


def debug_option(fn: Any) -> Any:
    """``--debug`` on every command, so it works wherever the user types it."""
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=_enable_debug,
                        help="Show full tracebacks instead of one-line errors.")(fn)


def _show_warning(message: Any, category: type, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    click.echo(f"warning: {message}", err=True)


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing help must not import every command module.
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except EdgeInferError as exc:
                if debug_enabled(ctx):
                    raise
                raise CLIError(str(exc), exc.exit_code) from None
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except OSError as exc:
                if debug_enabled(ctx):
                    raise
                raise CLIError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                               1) from None
            except Exception as exc:  # an unexpected failure still gets one line by default
                if debug_enabled(ctx):
                    raise
                raise CLIError(f"{type(exc).__name__}: {exc} (rerun with --debug for the "
                               "traceback)", 1) from None


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ..versions import installed_versions

    found = installed_versions("edge-infer", "onnxruntime", "onnxruntime-gpu",
                               "onnxruntime-openvino")
    ort_version = next((v for d, v in found.items() if d.startswith("onnxruntime")),
                       "not installed")
    click.echo(f"edge-infer {found.get('edge-infer', 'unknown')} (onnxruntime {ort_version}, "
               f"Python {sys.version.split()[0]})")
    ctx.exit()


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and exit.")
@debug_option
def cli() -> None:
    """edge-infer: run ONNX models anywhere onnxruntime runs.

    \b
    Examples:
      edge-infer run model.onnx digit.png --top-k 3
      edge-infer run model.onnx batch.npz --format json
      edge-infer info model.onnx
      edge-infer providers
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="edge-infer")
