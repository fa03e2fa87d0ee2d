"""Deterministic demo ERP and CRM databases with labelled anomalies."""

from pipelines.demo.build import DemoSize, build_crm, build_erp, build_order_lines
from pipelines.demo.write import generate

__all__ = ["DemoSize", "build_crm", "build_erp", "build_order_lines", "generate"]
