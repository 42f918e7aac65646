"""Where the digits demo's data is: scikit-learn's bundled digits.csv.gz (1797 images of
8x8 digits), found without importing scikit-learn or torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path


class DataMissing(RuntimeError):
    """The demo's bundled data is not installed."""


def digits_file() -> Path:
    """scikit-learn's bundled digits data, found without importing scikit-learn (its import
    costs a second and SciPy). The frozen build carries the file alone in resources/data."""
    from importlib import resources

    shipped = resources.files("resources").joinpath("data").joinpath("digits.csv.gz")
    if shipped.is_file():
        return Path(str(shipped))
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing("the digits demo reads scikit-learn's bundled digits data: "
                          "install scikit-learn (pip install scikit-learn)")
    for root in spec.submodule_search_locations:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    raise DataMissing("scikit-learn is installed but its digits.csv.gz is missing")
