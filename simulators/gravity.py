"""Ball in the box with gravity pulling toward the bottom of the frame (as in the 2017 data).

Defaults follow the 2017 generator: gravity of magnitude 5, start std 8, speed U[5, 10].
Unlike the 2017 data, the ball never falls out of the box (substeps, see polygon.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.box import Box, BoxParams


@dataclass(frozen=True)
class GravityParams(BoxParams):
    gravity: tuple[float, float] = (0.0, 5.0)
    start_std: float = 8.0
    speed_min: float = 5.0
    speed_max: float = 10.0


class Gravity(Box):
    """states: x, y, vx, vy."""
