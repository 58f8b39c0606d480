"""The README documents every setting a function reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.build import FUNCTIONS
from tests.support.functions import load_module

README = Path(__file__).resolve().parents[2] / "README.md"


def configuration_section() -> str:
    text = README.read_text()
    return text[text.index("## Configuration") : text.index("## Operate it")]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_setting_is_in_the_configuration_table(name: str) -> None:
    """Each variable the function's Settings accept appears, in backticks, under Configuration."""
    settings = load_module(name, "func").new().settings_type
    section = configuration_section()
    undocumented = [field.upper() for field in settings.model_fields if f"`{field.upper()}`" not in section]
    assert undocumented == [], f"{name}: add these to README.md's Configuration table"
