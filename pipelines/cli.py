"""The `seam` command line: every nightly step without a scheduler, plus the demo generator."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipelines.errors import SeamError
from pipelines.process import set_up_process


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}; use YYYY-MM-DD, e.g. 2026-11-22") from None


CONFIG_HELP = "the YAML config file (default: the SEAM_CONFIG environment variable)"


def _config_arg(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get("SEAM_CONFIG")
    parser.add_argument("--config", type=Path, default=Path(env) if env else None, help=CONFIG_HELP)


def _parser() -> argparse.ArgumentParser:
    from pipelines import __version__

    p = argparse.ArgumentParser(prog="seam", description=__doc__)
    p.add_argument("--version", action="version", version=f"seam {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="create the demo ERP and CRM databases")
    g.add_argument("--erp-url", default="sqlite:///data/demo/erp.db")
    g.add_argument("--crm-url", default="sqlite:///data/demo/crm.db")
    g.add_argument("--days", type=int, default=730)
    g.add_argument("--skus", type=int, default=200)
    g.add_argument("--warehouses", type=int, default=5)
    g.add_argument("--customers", type=int, default=500)
    g.add_argument("--end-date", type=_date, default=None, help="last day of history (default 2026-11-22)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--no-anomalies", action="store_true", help="do not inject labelled anomalies")
    g.add_argument("--replace", action="store_true", help="drop and rebuild existing demo tables")

    steps = {
        "run": "all steps for one night",
        "extract": "snapshot the configured tables into the Parquet lake",
        "validate": "run the data-quality checks",
        "forecast": "forecast demand",
        "score": "score anomalies",
        "reconcile": "coherent forecasts of every level (total, category, ..., SKU x warehouse)",
        "adjust": "the final forecast: tonight's forecasts with the planners' overrides",
        "load": "write results back into the databases",
        "alert-incidents": "send the night's new and escalated incidents to notifications.incident_alerts",
        "report": "render the nightly report",
        "send-report": "e-mail the night's report to notifications.report_to",
    }
    for name, text in steps.items():
        s = sub.add_parser(name, help=text)
        _config_arg(s)
        if name == "run":  # one night, or a backfill of consecutive nights, oldest first
            s.add_argument("--date", type=_date, help="the night (logical date), YYYY-MM-DD")
            s.add_argument("--from", dest="date_from", type=_date, help="backfill: the first night")
            s.add_argument("--to", dest="date_to", type=_date, help="backfill: the last night")
        else:
            s.add_argument("--date", required=True, type=_date, help="the night (logical date), YYYY-MM-DD")
        if name == "extract":
            s.add_argument("--source", default=None)
            s.add_argument("--table", default=None)
        if name == "validate":
            s.add_argument("--dataset", default=None)
    m = sub.add_parser("migrate", help="create or upgrade the result tables in every target database")
    _config_arg(m)
    st = sub.add_parser("status", help="health of the last runs (from the run ledger)")
    _config_arg(st)
    st.add_argument("--days", type=int, default=7)
    pr = sub.add_parser("prune", help="remove lake partitions, reports and Data Docs past their retention")
    _config_arg(pr)
    pr.add_argument("--date", type=_date, default=None, help="the night to count from (default: today)")
    pr.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    _override_parser(sub)
    un = sub.add_parser("unlock", help="release a night left locked by a run that is gone")
    _config_arg(un)
    un.add_argument("--date", required=True, type=_date)
    from pipelines.cli_anomaly import add_anomaly_commands

    add_anomaly_commands(sub, _config_arg, _date)
    return p


def _override_parser(sub: Any) -> None:
    from pipelines.overrides.csvfile import CSV_COLUMNS

    ov = sub.add_parser(
        "override",
        help="planners' overrides of the forecast (table seam_forecast_overrides)",
        description="Add, list, remove or import planners' overrides. A batch is checked whole: one bad "
        "row (unknown series or category, overlapping dates, negative quantity, date in the past) and "
        "nothing is written.",
    )
    ops = ov.add_subparsers(dest="override_command", required=True)
    today = "the day past dates count from (default: today's date)"
    add = ops.add_parser("add", help="add one override (of a series, a category or the total)")
    _config_arg(add)
    level = add.add_mutually_exclusive_group(required=True)
    level.add_argument("--sku", help="a series override: the SKU")
    level.add_argument(
        "--category", help="a category override, shared over its series by their statistical forecast"
    )
    level.add_argument(
        "--total", action="store_true", help="a total override, shared over every series (of --warehouse)"
    )
    add.add_argument("--warehouse", default=None, help="default: every warehouse")
    add.add_argument("--from", dest="start_date", required=True, type=_date, help="first target date")
    add.add_argument("--to", dest="end_date", required=True, type=_date, help="last target date")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--value", type=float, help="units per day that replace the forecast")
    what.add_argument(
        "--change",
        type=_change,
        help="relative change: 0.2 or 20%% (+20 %%); negative with '=': --change=-50%% (half)",
    )
    add.add_argument("--author", required=True)
    add.add_argument("--reason", required=True)
    add.add_argument("--expires", type=_date, default=None, help="the last night it applies")
    add.add_argument("--today", type=_date, default=None, help=today)
    ls = ops.add_parser("list", help="the overrides in force (or all with --all)")
    _config_arg(ls)
    ls.add_argument("--all", action="store_true", help="also expired and removed ones")
    ls.add_argument(
        "--csv",
        type=Path,
        default=None,
        help="write them to this CSV file (for a spreadsheet; `import` reads the same columns)",
    )
    ls.add_argument("--today", type=_date, default=None, help=today)
    rm = ops.add_parser("remove", help="stop overrides from applying (their rows stay, for tracing)")
    _config_arg(rm)
    rm.add_argument("ids", nargs="+", type=int)
    rm.add_argument("--today", type=_date, default=None, help=today)
    imp = ops.add_parser("import", help="add every override of a CSV file, all or nothing")
    _config_arg(imp)
    imp.add_argument(
        "file", type=Path, help="columns: " + ", ".join(CSV_COLUMNS) + " (those `list --csv` writes)"
    )
    imp.add_argument("--today", type=_date, default=None, help=today)


def _change(text: str) -> float:
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a relative change: {text!r}; use e.g. 0.2 or 20%") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("great_expectations", "matplotlib", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    set_up_process()
    try:
        return _dispatch(args)
    except SeamError as err:
        print(f"seam {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "generate":
        from pipelines.demo import DemoSize, generate
        from pipelines.demo.build import DEFAULT_END

        size = DemoSize(
            days=args.days,
            skus=args.skus,
            warehouses=args.warehouses,
            customers=args.customers,
            end_date=args.end_date or DEFAULT_END,
            seed=args.seed,
            anomalies=not args.no_anomalies,
        )
        res = generate(args.erp_url, args.crm_url, size, replace=args.replace)
        print(
            f"demo ERP: {sum(res.erp_rows.values())} rows in {len(res.erp_rows)} tables; "
            f"CRM: {sum(res.crm_rows.values())} rows in {len(res.crm_rows)} tables; "
            f"history {size.start_date} .. {size.end_date}"
        )
        return 0

    from pipelines import steps
    from pipelines.config import load_config
    from pipelines.errors import ConfigError
    from pipelines.run_context import RunContext

    if args.config is None:
        raise ConfigError("no config file: pass --config FILE or set SEAM_CONFIG (see config/demo.yml)")
    cfg = load_config(args.config)
    if args.command == "migrate":
        for name, applied in steps.run_migrate(cfg).items():
            print(f"{name}: applied {applied or 'nothing (up to date)'}")
        return 0
    if args.command == "status":
        from pipelines.state import format_status, read_status

        print(format_status(read_status(cfg, days=args.days)))
        return 0
    if args.command == "prune":
        night = args.date or date.today()
        result = steps.run_prune(cfg, RunContext(run_date=night), dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for line in result.lake:
            print(f"{verb} lake {line}")
        for path in result.reports:
            print(f"{verb} report {path}")
        print(
            f"{verb} {len(result.lake)} lake partitions, {len(result.reports)} reports, "
            f"{len(result.data_docs)} Data Docs files"
        )
        return 0
    if args.command == "override":
        return _override(cfg, args)
    if args.command == "unlock":
        from pipelines.config import results_url
        from pipelines.db import make_engine
        from pipelines.state import release_night

        engine = make_engine(results_url(cfg.source(cfg.results.ledger)), write=True)
        try:
            released = release_night(engine, args.date)
        finally:
            engine.dispose()
        print(f"night {args.date}: {'released' if released else 'was not locked'}")
        return 0
    if args.command == "run":
        return _run_nights(cfg, _nights(args))
    if args.command == "anomaly":
        from pipelines.cli_anomaly import run_anomaly_command

        return run_anomaly_command(args, cfg)
    ctx = RunContext(run_date=args.date)
    if args.command == "extract":
        for r in steps.run_extract(cfg, ctx, source=args.source, table=args.table):
            print(f"{r.source}.{r.table}: {r.rows} rows -> {r.path}")
    elif args.command == "validate":
        results = steps.run_validate(cfg, ctx, dataset=args.dataset)
        failed = [r for r in results if not r.success]
        print(f"{len(results)} checks, {len(failed)} failed (warn only)")
        for check in failed:
            print(f"  warn: {check.describe()}")
    elif args.command == "forecast":
        print(steps.run_forecast(cfg, ctx))
    elif args.command == "score":
        print(steps.run_score(cfg, ctx))
    elif args.command == "reconcile":
        notes = steps.run_reconcile(cfg, ctx)
        print(
            f"forecast hierarchy: {notes['method']}, series per level {notes['series']}, "
            f"{notes['seconds']:.1f}s"
        )
    elif args.command == "adjust":
        notes = steps.run_adjust(cfg, ctx)
        print(
            f"final forecast: {len(notes['active'])} override(s) applied to {notes['rows_overridden']} rows, "
            f"{len(notes['skipped'])} skipped, {notes['fenced_rows']} rows inside the time fence; units "
            f"{notes['units_statistical']:.1f} statistical -> {notes['units_final']:.1f} final"
        )
    elif args.command == "load":
        for loaded in steps.run_load(cfg, ctx):
            print(f"{loaded.table}: {loaded.rows} rows {'(already loaded)' if loaded.skipped else 'loaded'}")
    elif args.command == "alert-incidents":
        if not cfg.notifications.incident_alerts:
            print("no incident alerts configured (notifications.incident_alerts)")
        else:
            from pipelines.airflow.alerts import incident_sender

            print(f"{steps.run_incident_alerts(cfg, ctx, incident_sender(cfg))} incident(s) alerted")
    elif args.command == "report":
        print(steps.run_report(cfg, ctx))
    elif args.command == "send-report":
        sent = steps.run_send_report(cfg, ctx)
        print("sent" if sent else "no recipients configured (notifications.report_to)")
    return 0


def _override(cfg: Any, args: argparse.Namespace) -> int:
    """`seam override add|list|remove|import` against the forecasts' results database."""
    from datetime import UTC, datetime

    import pandas as pd

    from pipelines.config import results_url
    from pipelines.db import make_engine
    from pipelines.errors import ConfigError
    from pipelines.overrides import (
        check_new_overrides,
        expire_overrides,
        insert_overrides,
        read_forecast_series,
        read_overrides,
    )
    from pipelines.overrides.csvfile import read_overrides_csv, write_overrides_csv

    today = args.today or date.today()
    name = cfg.results.forecasts
    engine = make_engine(results_url(cfg.source(name)), write=True, what=f"source {name!r}")
    try:
        op = args.override_command
        if op == "list":
            stored = read_overrides(engine)
            if not args.all:
                day = pd.Timestamp(today)
                stored = stored[
                    (stored["expires_on"].isna() | (stored["expires_on"] >= day))
                    & (stored["end_date"] >= day)
                ]
            if args.csv is not None:
                n = write_overrides_csv(stored, args.csv)
                print(f"wrote {n} override(s) to {args.csv}")
            else:
                print(_override_table(stored))
            return 0
        if op == "remove":
            missing = expire_overrides(engine, args.ids, last_night=today - timedelta(days=1))
            if missing:
                raise ConfigError(
                    f"no override with id {missing}; see `seam override list --all`; nothing was removed"
                )
            print(f"removed {len(args.ids)} override(s): {args.ids} (not applied from tonight's run on)")
            return 0
        if op == "add":
            rows = pd.DataFrame(
                [
                    {
                        "sku": args.sku,
                        "category": args.category,
                        "warehouse": args.warehouse,
                        "start_date": args.start_date,
                        "end_date": args.end_date,
                        "value": args.value,
                        "relative_change": args.change,
                        "author": args.author,
                        "reason": args.reason,
                        "expires_on": args.expires,
                    }
                ]
            )
        else:
            rows = read_overrides_csv(args.file)
        series = read_forecast_series(engine)
        categories = None
        if "category" in rows.columns and (rows["category"].fillna("").astype(str).str.strip() != "").any():
            from pipelines.inputs import product_categories

            if len(series):  # the products of the latest forecast night name the categories
                night = pd.Timestamp(series["run_date"].max()).date()
                categories = product_categories(cfg, night, without="category overrides cannot be checked")
        checked = check_new_overrides(
            rows, series=series, existing=read_overrides(engine), today=today, categories=categories
        )
        ids = insert_overrides(engine, checked, created_at=datetime.now(UTC))
        print(f"added {len(ids)} override(s): ids {ids}")
        return 0
    finally:
        engine.dispose()


def _override_table(rows: Any) -> str:
    if not len(rows):
        return "no overrides"
    lines = []
    for r in rows.itertuples(index=False):
        effect = f"= {r.value:g}/day" if r.value == r.value else f"{r.relative_change:+.0%}"
        expires = f" expires {r.expires_on.date()}" if r.expires_on == r.expires_on else ""
        # the level: `SKU x ...` (series), `category C x ...`, `total x ...`
        what = (
            r.sku if r.sku is not None else (f"category {r.category}" if r.category is not None else "total")
        )
        lines.append(
            f"#{r.override_id}  {what} x {r.warehouse or 'all warehouses'}  "
            f"{r.start_date.date()}..{r.end_date.date()}  {effect}  by {r.author} "
            f"at {r.created_at:%Y-%m-%d %H:%M}{expires}: {r.reason}"
        )
    return "\n".join(lines)


def _nights(args: argparse.Namespace) -> list[date]:
    from pipelines.errors import ConfigError

    if args.date and (args.date_from or args.date_to):
        raise ConfigError("give either --date D, or --from D1 --to D2 for a backfill, not both")
    if args.date:
        return [args.date]
    if not (args.date_from and args.date_to):
        raise ConfigError("give --date D for one night, or --from D1 --to D2 for a backfill")
    if args.date_to < args.date_from:
        raise ConfigError(f"--to {args.date_to} is before --from {args.date_from}")
    return [args.date_from + timedelta(days=i) for i in range((args.date_to - args.date_from).days + 1)]


def _run_nights(cfg: Any, nights: list[date]) -> int:
    """Run nights oldest first; a failed night does not stop the later ones (each is independent
    and idempotent); exits with the first failure's code after naming every failed night.

    As the DAG does, each night's incidents go to `notifications.incident_alerts`, and a failed
    night sends one alert to `notifications.alerts` (through `pipelines.airflow.alerts`, imported
    only when the config has such channels)."""
    from pipelines.run_context import RunContext
    from pipelines.steps import run_all

    send_incidents = None
    if cfg.notifications.incident_alerts:
        from pipelines.airflow.alerts import incident_sender

        send_incidents = incident_sender(cfg)
    failed: list[tuple[date, SeamError]] = []
    for night in nights:
        try:
            path = run_all(cfg, RunContext(run_date=night), send_incidents)
            print(f"night {night}: done; report at {path}")
        except SeamError as err:
            print(f"night {night}: failed: {err}", file=sys.stderr)
            failed.append((night, err))
            if cfg.notifications.alerts:
                from pipelines.airflow.alerts import send_night_failed

                sent = send_night_failed(cfg, night, err)
                if sent < len(cfg.notifications.alerts):
                    print(
                        f"night {night}: the failure alert reached {sent} of "
                        f"{len(cfg.notifications.alerts)} channel(s); the log says why",
                        file=sys.stderr,
                    )
    if not failed:
        return 0
    if len(nights) > 1:
        print(
            f"seam run: {len(failed)} of {len(nights)} nights failed: {', '.join(str(n) for n, _ in failed)}",
            file=sys.stderr,
        )
    return failed[0][1].exit_code


if __name__ == "__main__":
    sys.exit(main())
