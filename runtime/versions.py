"""Installed package versions, for ``--version`` and the provenance written with models."""

from __future__ import annotations


def installed_versions(*dists: str) -> dict[str, str]:
    """``{distribution: version}`` for those of ``dists`` that are installed, in order."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in dists:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found
