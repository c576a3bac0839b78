"""The package version, and the versions a run records beside its results."""

from __future__ import annotations

import platform

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    import numpy
    import torch

    return {
        "setae": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
