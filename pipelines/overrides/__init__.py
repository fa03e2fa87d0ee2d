"""Overrides stage: planners adjust the statistical forecast; each night produces the final forecast.

Public functions:
    check_new_overrides(rows, *, series, existing, today, categories)
                                                           refuse a batch of new overrides whole
                                                           (unknown series or category, overlaps,
                                                           negative quantities, past dates): DataError
    split_stored_overrides(stored, *, series, run_date, categories)
                                                           the stored overrides in force tonight,
                                                           and those skipped with the reason
    build_final_forecast(forecasts, overrides, previous, *, run_date, fence_days, categories)
                                                           statistical rows -> rows with
                                                           `yhat_final` and `override_ids`
    adjust_forecasts(forecasts, stored, previous, *, run_date, fence_days, categories) -> Adjusted
    NightAdjustment(stored, series, *, run_date, fence_days, categories)  the same, a shard at a
                                       time, when every override in force is a series override
                                                           the night's whole stage: final rows,
                                                           active and skipped overrides, notes
    describe_override(row)                                 `#7 category C x WH-A 2026-12-01..2026-12-07`
    summarize_overrides(final, overrides)                  each override's rows and effect on units
    read_value_added(engine) -> build_value_added(by_lag)    forecast value added by lag week:
                                                           naive vs statistical vs final
    read_overrides / insert_overrides / expire_overrides / read_forecast_series
                                                           `seam_forecast_overrides` in a results
                                                           database (planners' input, not a result)

Contract: an override covers the target dates start_date .. end_date of one series (a SKU in one
warehouse or, warehouse NULL, in every warehouse), of a category (in every warehouse or in one) or
of the total (every series, or every SKU of one warehouse); `value` replaces the forecast (units/day)
and `relative_change` multiplies it by (1 + relative_change).  Overrides nest: the most specific
applies first and keeps its rows (series, category x warehouse, category or a warehouse's total,
total); a wider override's `value` (or its statistical sum times 1 + `relative_change`) becomes the
sum of its SKU x warehouse rows on each date, the rows no nested override set sharing what is left
in proportion to their statistical forecast, so the hierarchy stays coherent and a planner's change
to one SKU is made up by its siblings.  Two overrides that cover a common series on a common date
without one holding the other (two of one SKU, two of one scope, crossing scopes) are refused or
skipped.  Inside the time fence (the first `fence_days`
target dates after the night) the final forecast is last night's final forecast, whatever changed
since.
"""

from pipelines.overrides.apply import (
    Adjusted,
    NightAdjustment,
    adjust_forecasts,
    build_final_forecast,
    build_value_added,
    summarize_overrides,
)
from pipelines.overrides.rules import OVERRIDE_COLUMNS, check_new_overrides, split_stored_overrides
from pipelines.overrides.rules import describe as describe_override
from pipelines.overrides.store import (
    expire_overrides,
    insert_overrides,
    read_forecast_series,
    read_overrides,
    read_value_added,
)

__all__ = [
    "OVERRIDE_COLUMNS",
    "Adjusted",
    "NightAdjustment",
    "adjust_forecasts",
    "build_final_forecast",
    "build_value_added",
    "check_new_overrides",
    "describe_override",
    "expire_overrides",
    "insert_overrides",
    "read_forecast_series",
    "read_overrides",
    "read_value_added",
    "split_stored_overrides",
    "summarize_overrides",
]
