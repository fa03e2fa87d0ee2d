"""The README's contract reference is the one the code generates; every column is described."""

from __future__ import annotations

from pathlib import Path

from pipelines.contract_reference import BEGIN, END, reference
from pipelines.contracts import DATASETS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_is_generated_from_the_contracts():
    text = README.read_text()
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == reference(), "run: python -m pipelines.contract_reference --write README.md"


def test_every_column_has_a_meaning():
    assert not [f"{d.name}.{c.name}" for d in DATASETS.values() for c in d.columns if not c.meaning]
