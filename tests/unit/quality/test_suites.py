"""Every shipped suite loads and runs with Great Expectations' own API, as it is."""

from __future__ import annotations

import json
from importlib.resources import files

import great_expectations as gx
import pytest

from pipelines.contracts import DATASETS, empty_frame
from pipelines.quality.gate import resolve_parameters, suite_parameters

SUITES = sorted(
    p.name.removesuffix(".json")
    for p in (files("pipelines") / "expectations").iterdir()
    if p.name.endswith(".json")
)


def test_every_canonical_dataset_ships_a_suite():
    assert sorted(DATASETS) == SUITES


@pytest.mark.parametrize("dataset", SUITES)
def test_suite_loads_and_runs_in_gx_as_it_is(dataset):
    raw = json.loads((files("pipelines") / "expectations" / f"{dataset}.json").read_text())
    context = gx.get_context(mode="ephemeral")
    suite = context.suites.add(gx.ExpectationSuite(**raw))  # GX's own constructor, the file untouched
    assert len(suite.expectations) == len(raw["expectations"])
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("b")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="v", data=batch, suite=suite)
    )
    parameters = {name: ["x"] for name in suite_parameters(raw)}  # what seam fills from tonight's data
    result = definition.run(
        batch_parameters={"dataframe": empty_frame(dataset)}, expectation_parameters=parameters
    )
    assert len(result.results) == len(raw["expectations"])
    assert not [r for r in result.results if (r.exception_info or {}).get("raised_exception")]


def test_parameters_are_filled_and_a_missing_one_is_named():
    raw = {
        "name": "s",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "sku", "value_set": {"$PARAMETER": "products__sku"}},
            }
        ],
    }
    assert suite_parameters(raw) == ["products__sku"]
    filled = resolve_parameters(raw, {"products__sku": {"b", "a"}})
    assert filled["expectations"][0]["kwargs"]["value_set"] == ["a", "b"]
    assert raw["expectations"][0]["kwargs"]["value_set"] == {"$PARAMETER": "products__sku"}  # untouched
    from pipelines.errors import ConfigError

    with pytest.raises(ConfigError, match="no value for the suite parameter 'products__sku'"):
        resolve_parameters(raw, {})
