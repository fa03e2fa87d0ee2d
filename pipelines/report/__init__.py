"""Report stage: the nightly report (HTML with charts and plain text) and its delivery.

Public functions:
    write_report(cfg, ctx) -> Path          render `<report.directory>/<night>/report.html|.txt`
    build_report_message(html, text, ...)   the e-mail (inline images), `send_message(spec, msg)`

Templates ship in the package (`pipelines/report/templates/`) and are found with
`importlib.resources`.
"""

from pipelines.report.notify import build_report_message, send_message
from pipelines.report.render import write_report

__all__ = ["build_report_message", "send_message", "write_report"]
