"""seam: nightly ERP/CRM snapshots, quality gates, forecasts and anomaly scores written back."""

__version__ = "0.1.0"
