"""seam: nightly ERP/CRM snapshots, quality gates, forecasts and anomaly scores written back."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seam")  # one source of truth: pyproject.toml (see CHANGELOG.md)
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
