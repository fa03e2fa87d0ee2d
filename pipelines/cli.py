"""The `seam` command line: every nightly step without a scheduler, plus the demo generator."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from pipelines.errors import SeamError


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}; use YYYY-MM-DD, e.g. 2026-11-22") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seam", description=__doc__)
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
        "load": "write results back into the databases",
        "report": "render the nightly report",
        "send-report": "e-mail the night's report to notifications.report_to",
    }
    for name, text in steps.items():
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", required=True, type=Path, help="the YAML config file")
        s.add_argument("--date", required=True, type=_date, help="the night (logical date), YYYY-MM-DD")
        if name == "extract":
            s.add_argument("--source", default=None)
            s.add_argument("--table", default=None)
        if name == "validate":
            s.add_argument("--dataset", default=None)
    m = sub.add_parser("migrate", help="create or upgrade the result tables in every target database")
    m.add_argument("--config", required=True, type=Path)
    st = sub.add_parser("status", help="health of the last runs (from the run ledger)")
    st.add_argument("--config", required=True, type=Path)
    st.add_argument("--days", type=int, default=7)
    un = sub.add_parser("unlock", help="release a night left locked by a run that is gone")
    un.add_argument("--config", required=True, type=Path)
    un.add_argument("--date", required=True, type=_date)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("great_expectations", "matplotlib", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
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
    from pipelines.run_context import RunContext

    cfg = load_config(args.config)
    if args.command == "migrate":
        for name, applied in steps.run_migrate(cfg).items():
            print(f"{name}: applied {applied or 'nothing (up to date)'}")
        return 0
    if args.command == "status":
        from pipelines.state import format_status, read_status

        print(format_status(read_status(cfg, days=args.days)))
        return 0
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
    ctx = RunContext(run_date=args.date)
    if args.command == "run":
        path = steps.run_all(cfg, ctx)
        print(f"night {args.date}: done; report at {path}")
    elif args.command == "extract":
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
    elif args.command == "load":
        for loaded in steps.run_load(cfg, ctx):
            print(f"{loaded.table}: {loaded.rows} rows {'(already loaded)' if loaded.skipped else 'loaded'}")
    elif args.command == "report":
        print(steps.run_report(cfg, ctx))
    elif args.command == "send-report":
        sent = steps.run_send_report(cfg, ctx)
        print("sent" if sent else "no recipients configured (notifications.report_to)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
