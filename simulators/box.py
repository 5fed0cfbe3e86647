"""Bouncing ball in a box: a square 1-pixel wall two pixels inside the frame edge, no gravity.

Defaults follow the 2017 generator: start N((16, 16), 10^2) clipped inside, speed U[10, 15],
direction U[0, 360) degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.polygon import BallInPolygon, PolygonParams


@dataclass(frozen=True)
class BoxParams(PolygonParams):
    start_std: float = 10.0
    wall_inset: int = 2  # empty pixels between the frame edge and the wall line
    vertices: tuple[tuple[float, float], ...] = ()  # derived from size and wall_inset

    def check_walls(self) -> None:
        if self.vertices:
            raise ValueError("vertices: box walls follow size and wall_inset; use env polygon "
                             "for other walls")
        hi = self.size // 4
        if not 0 <= self.wall_inset <= hi:
            raise ValueError(f"wall_inset must be in [0, size/4] = [0, {hi}], "
                             f"got {self.wall_inset}")
        super().check_walls()

    def wall_pixels(self) -> list[tuple[int, int]]:
        lo, hi = self.wall_inset, self.size - 1 - self.wall_inset
        return [(lo, lo), (hi, lo), (hi, hi), (lo, hi)]


class Box(BallInPolygon):
    """states: x, y, vx, vy."""
