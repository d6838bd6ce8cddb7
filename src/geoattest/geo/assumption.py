"""Where a policy assumes chips are: a small module, so that commands can name the choice
without loading the geometry libraries."""

from __future__ import annotations

from enum import StrEnum


class LocationAssumption(StrEnum):
    """Where a policy assumes chips are; this decides what the feasible region is cut to."""

    LAND = "land"
    """Chips are on land: the feasible region is cut to the land of all countries first
    (a point at sea belongs to no country). The default; a ship-borne chip breaks it."""
    TERRITORIAL_WATERS = "territorial_waters"
    """Chips are on land or within 12 nautical miles of it; a point in the territorial sea
    of a licensed country counts only if it is not also within 12 nmi of foreign land."""
    ANYWHERE = "anywhere"
    """No assumption: the whole feasible region must lie inside the licensed region, so a
    disk that reaches the sea is never ALLOWED for a country region."""
