"""Schemas of the demo ERP and CRM databases (one definition, any dialect)."""

from __future__ import annotations

import sqlalchemy as sa

ERP = sa.MetaData()
CRM = sa.MetaData()


def _labels(md: sa.MetaData) -> sa.Table:
    # Ground truth of injected anomalies, kept apart from the business tables.
    return sa.Table(
        "seam_demo_labels",
        md,
        sa.Column("label_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("magnitude", sa.Float, nullable=False),
    )


sa.Table(
    "warehouses",
    ERP,
    sa.Column("warehouse_code", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
)
sa.Table(
    "products",
    ERP,
    sa.Column("sku", sa.String(16), primary_key=True),
    sa.Column("product_name", sa.String(128), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("list_price", sa.Numeric(12, 2), nullable=False),
    sa.Column("launch_date", sa.Date, nullable=True),  # NULL: on sale since before the history
    sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)
sa.Table(
    "customers",
    ERP,
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_name", sa.String(128), nullable=False),
    sa.Column("region", sa.String(32), nullable=False),
    sa.Column("segment", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)
sa.Table(
    "sales_orders",
    ERP,
    sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.customer_id"), nullable=False),
    sa.Column("warehouse_code", sa.String(8), sa.ForeignKey("warehouses.warehouse_code"), nullable=False),
    sa.Column("order_date", sa.Date, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
    sa.Index("ix_sales_orders_updated_at", "updated_at"),
)
sa.Table(
    "sales_order_lines",
    ERP,
    sa.Column(
        "order_id", sa.Integer, sa.ForeignKey("sales_orders.order_id"), primary_key=True, autoincrement=False
    ),
    sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sku", sa.String(16), sa.ForeignKey("products.sku"), nullable=False),
    sa.Column("qty", sa.Numeric(12, 3), nullable=False),
    sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
    sa.Column("discount_rate", sa.Numeric(5, 4), nullable=False),
    sa.Column("returned_qty", sa.Numeric(12, 3), nullable=False),
    sa.Column("line_status", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
    sa.Index("ix_sales_order_lines_updated_at", "updated_at"),
)
sa.Table(
    "promotions",
    ERP,
    sa.Column("promo_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sku", sa.String(16), sa.ForeignKey("products.sku"), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("discount_rate", sa.Numeric(5, 4), nullable=False),
)
sa.Table(
    "stock_outs",
    ERP,
    sa.Column("sku", sa.String(16), primary_key=True),
    sa.Column("warehouse_code", sa.String(8), primary_key=True),
    sa.Column("stockout_date", sa.Date, primary_key=True),
)
_labels(ERP)

sa.Table(
    "accounts",
    CRM,
    sa.Column("account_id", sa.String(16), primary_key=True),
    sa.Column("account_name", sa.String(128), nullable=False),
    sa.Column("erp_customer_id", sa.String(16), nullable=True),
    sa.Column("industry", sa.String(32), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)
sa.Table(
    "contacts",
    CRM,
    sa.Column("contact_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.String(16), sa.ForeignKey("accounts.account_id"), nullable=False),
    sa.Column("full_name", sa.String(128), nullable=False),
    sa.Column("email", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)
sa.Table(
    "opportunities",
    CRM,
    sa.Column("opportunity_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.String(16), sa.ForeignKey("accounts.account_id"), nullable=False),
    sa.Column("stage", sa.String(24), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("close_date", sa.Date, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)
sa.Table(
    "support_tickets",
    CRM,
    sa.Column("ticket_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.String(16), sa.ForeignKey("accounts.account_id"), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)
_labels(CRM)
