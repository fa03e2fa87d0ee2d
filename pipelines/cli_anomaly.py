"""`seam anomaly ...`: analysts' labels on anomaly incidents and points (see README, "Feedback")."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pipelines.config import Config


def add_anomaly_commands(
    sub: argparse._SubParsersAction,
    config_arg: Callable[[argparse.ArgumentParser], None],
    date_type: Callable[[str], date],
) -> None:
    """`seam anomaly label` and `seam anomaly labels`."""
    an = sub.add_parser("anomaly", help="analysts' labels on anomaly incidents")
    group = an.add_subparsers(dest="anomaly_command", required=True)
    lb = group.add_parser(
        "label",
        help="label an incident or a point: expected, false_positive, confirmed or fixed",
        description=(
            "Label an incident (--incident ID) or one day of a series (--metric M --entity E --date D). "
            "expected / false_positive: the days leave the baselines of the nights after today and the "
            "incident is neither alerted nor ranked as new again; confirmed: shown until labelled fixed."
        ),
    )
    config_arg(lb)
    lb.add_argument("--incident", default=None, help="incident_id (seam_v_open_incidents)")
    lb.add_argument("--metric", default=None)
    lb.add_argument("--entity", default=None)
    lb.add_argument("--date", type=date_type, default=None, help="the day of the point, YYYY-MM-DD")
    lb.add_argument("--label", default=None, help="expected | false_positive | confirmed | fixed")
    lb.add_argument("--author", default=None, help="who says so")
    lb.add_argument("--note", default=None)
    ls = group.add_parser("labels", help="list the labels in force (the latest per incident or point)")
    config_arg(ls)
    ls.add_argument("--date", type=date_type, default=None, help="as on this night (default: all labels)")


def run_anomaly_command(args: argparse.Namespace, cfg: Config) -> int:
    from pipelines import steps
    from pipelines.load.feedback import LabelTarget

    if args.anomaly_command == "label":
        target = LabelTarget(incident_id=args.incident, metric=args.metric, entity=args.entity, ds=args.date)
        today = datetime.now(ZoneInfo(cfg.timezone)).date()
        source, feedback_id = steps.run_label(
            cfg, target, label=args.label, author=args.author, note=args.note, valid_from=today
        )
        what = f"incident {args.incident}" if args.incident else f"{args.metric} {args.entity} on {args.date}"
        print(
            f"label {feedback_id}: {what} is {args.label} (by {args.author.strip()}), in source {source}'s "
            f"database; used from night {today} on"
        )
        return 0
    from pipelines.anomaly.feedback import summarize_labels
    from pipelines.load.feedback import read_all_labels

    labels = read_all_labels(cfg, args.date)
    if labels.empty:
        print("no labels" + (f" in force on night {args.date}" if args.date else ""))
        return 0
    for r in labels.itertuples(index=False):
        span = f"{r.start_ds:%Y-%m-%d}" + ("" if r.end_ds == r.start_ds else f"..{r.end_ds:%Y-%m-%d}")
        what = f"incident {r.incident_id}" if r.incident_id else "point"
        note = f"  {r.note}" if isinstance(r.note, str) and r.note else ""
        print(
            f"{r.feedback_id:>5} {r.label:<15} {what:<25} {r.metric} {r.entity} {span}  "
            f"by {r.author} from {r.valid_from:%Y-%m-%d} [{r.source}]{note}"
        )
    s = summarize_labels(labels)
    precision = "n/a" if s["precision"] is None else f"{s['precision']:.2f}"
    print(
        f"{s['targets']} labelled: {s['expected']} expected, {s['false_positive']} false positive, "
        f"{s['confirmed']} confirmed, {s['fixed']} fixed; precision from labels {precision}"
    )
    return 0
