"""Domain errors, turned into one-line messages with an exit status at the CLI boundary.

Two families, following the CLI's contract:

* :class:`UsageError` (exit status 2): what the user passed is wrong: a missing file, a file that
  is not an ONNX model, an unknown provider, an input whose name, shape or dtype does not fit.
* :class:`EdgeInferError` itself and its other subclasses (exit status 1): a correct request that
  failed while running: onnxruntime rejected the graph, a strict provider is not usable, a write
  failed.

Every message is one sentence that names the bad value, what was expected and what was found.
"""

from __future__ import annotations


class EdgeInferError(Exception):
    """Base class; a failure while doing what was asked (exit status 1)."""

    exit_code = 1


class UsageError(EdgeInferError):
    """What the user passed is wrong (exit status 2)."""

    exit_code = 2


class ModelFileError(UsageError):
    """The model path is missing, unreadable, truncated, or not an ONNX model."""


class InputError(UsageError):
    """An input does not fit the model's signature, or cannot be read."""


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``" (did you mean 'keras:mnist'?)"`` for a missing prefix, a typo or the start of
    a name (``rpi`` -> ``'rpi4' or 'rpi5'``), else ``""``."""
    import difflib

    key = name.strip().lower()
    by_lower = {k.lower(): k for k in known}
    matches = [k for low, k in by_lower.items() if low.rpartition(":")[2] == key]
    if not matches:
        matches = [k for low, k in by_lower.items() if low.startswith(key)] if key else []
    if not matches or len(matches) > 3:
        scores = {low: difflib.SequenceMatcher(None, key, low).ratio() for low in by_lower}
        best = max(scores.values(), default=0.0)
        matches = [by_lower[low] for low, v in scores.items() if v == best and v >= 0.75]
    matches = [m for m in matches if m != name][:3]
    if not matches:
        return ""
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)"


class UnknownNameError(UsageError):
    """A name typed by the user (provider, format, loader) is not one we know."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} {name!r}{did_you_mean(name, self.known)}; known: "
                         f"{', '.join(self.known)}")


class ProviderUnavailableError(EdgeInferError):
    """A requested execution provider is not usable and fallback was refused (``--strict``)."""


class ExtraMissingError(UsageError):
    """An optional dependency is missing; says which extra installs it."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra, self.module = extra, module
        super().__init__(
            f"{what} needs the {module!r} module from the {extra} extra: "
            f"pip install 'edge-infer[{extra}]'"
        )


    @classmethod
    def require(cls, what: str, extra: str, *modules: str) -> None:
        """Raise for the first of ``modules`` that is not installed (found without importing)."""
        from importlib.util import find_spec

        for module in modules:
            if find_spec(module) is None:
                raise cls(what, extra, module)


class ModelRunError(EdgeInferError):
    """onnxruntime failed to create a session or to run the model."""


class OlderRuntimeWarning(UserWarning):
    """The model loads on the installed onnxruntime, but needs a later one for the speed it
    was measured at (``compat.py``)."""


class ProviderFallbackWarning(UserWarning):
    """A requested execution provider is not available; the model runs on another one."""
