"""The file format a figure is written in, read from the name the user gave it.

``bench --plot`` (the runtime) and ``evaluate --plot`` (the train extra) share it, so that both
write what the suffix says and refuse, before any work, a suffix matplotlib cannot write.
"""

from __future__ import annotations

import os

from .errors import UsageError


def figure_format(path: str | os.PathLike[str]) -> str:
    """``svg`` for ``latency.svg``, ``png`` for a name without a suffix."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UsageError(f"writing {os.fspath(path)} needs matplotlib: pip install matplotlib "
                         "(the train extra has it)") from None
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise UsageError(f"cannot write a figure to {os.fspath(path)}: expected a file name "
                         f"ending in .{', .'.join(sorted(supported))}, found .{fmt}")
    return fmt
