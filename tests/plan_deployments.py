"""A small deployment the planning and cost tests share: quick to study, real geography."""

from __future__ import annotations

from pathlib import Path

TAIWAN_DEPLOYMENT = """
name = "Taiwan test deployment"
landmarks_per_chip = 3
quorum = 3

[policy]
id = "tw-test"
version = 1
embargo = ["KP"]

[policy.regions]
TW = { countries = ["TW"] }

[plan]
budget = 1

[[plan.candidates]]
id = "khh"
name = "Kaohsiung"
lat = 22.6273
lon = 120.3014

[[landmarks]]
id = "lm-tpe"
name = "Taipei"
lat = 25.0330
lon = 121.5654

[[landmarks]]
id = "lm-hkg"
name = "Hong Kong"
lat = 22.3193
lon = 114.1694

[[landmarks]]
id = "lm-tyo"
name = "Tokyo"
lat = 35.6762
lon = 139.6503
"""
"""Taiwan licensed, three landmarks (Taipei, Hong Kong, Tokyo), one candidate site."""


def write_taiwan(directory: Path) -> Path:
    """The Taiwan deployment as a file in ``directory``."""
    path = directory / "tw.toml"
    path.write_text(TAIWAN_DEPLOYMENT, encoding="utf-8")
    return path
