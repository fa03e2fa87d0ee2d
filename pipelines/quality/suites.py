"""The expectation suites: one Great Expectations 1.x suite per canonical dataset, shipped in the
package (`pipelines/expectations/<dataset>.json`, the repository's top-level `expectations/`), or
a file named by the table's `suite:` setting."""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError


def packaged_suite(dataset: str) -> Traversable:
    """The suite file seam ships for a canonical dataset."""
    return files("pipelines") / "expectations" / f"{dataset}.json"


def load_suite(
    dataset: str, setting: str = "default", directory: Path | None = None
) -> dict[str, Any] | None:
    """The suite of `dataset` as JSON, or None when its table says `suite: none`.

    `setting`: "default" (the packaged suite, or `directory/<dataset>.json` when a directory is
    given), "none", or the path of a suite file.  A suite that should exist and does not is a
    configuration error naming the file: a dataset is never silently left unchecked.
    """
    if setting == "none":
        return None
    source: Traversable | Path
    if setting != "default":
        source = Path(setting)
    elif directory is not None:
        source = directory / f"{dataset}.json"
    else:
        source = packaged_suite(dataset)
    if not source.is_file():
        raise ConfigError(
            f"no expectation suite for dataset {dataset!r}: {source} does not exist; write one there, "
            f"point the table's `suite:` setting at a suite file, or set `suite: none` to validate "
            f"only freshness and volume"
        )
    try:
        data: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source}: not valid JSON ({err}); fix the expectation suite file") from None
    return data
