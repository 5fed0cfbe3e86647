"""Off-screen rendering: the only module that imports pygame.

A `Canvas` is an 8-bit pygame surface of size x size pixels, white (255) on black (0).
Pixel (r, c) covers [c, c+1) x [r, r+1) in frame coordinates (x = column, y = row from the
top); its centre is (c + 0.5, r + 0.5). Static parts of a scene (walls) are drawn once and
baked into the background; each frame starts from a copy of it.
"""

from __future__ import annotations

import os

# Headless and quiet, whoever imports us first: no window, no audio device, no banner.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"

import numpy as np  # noqa: E402
import pygame  # noqa: E402

FOREGROUND = 255


class Canvas:
    """A square off-screen surface with a baked background; `pixels()` -> (H, W) uint8."""

    def __init__(self, size: int):
        self.size = size
        self.surface = pygame.Surface((size, size), depth=8)
        self.surface.set_palette([(i, i, i) for i in range(256)])
        self.background = self.surface.copy()

    def bake_background(self) -> None:
        """Keep what is drawn now as the background every frame starts from."""
        self.background = self.surface.copy()

    def reset(self) -> None:
        """Blank canvas, background included (call before drawing a new static scene)."""
        self.surface.fill(0)
        self.background = self.surface.copy()

    def clear(self) -> None:
        """Start a frame from the background."""
        self.surface.blit(self.background, (0, 0))

    def disc(self, x: float, y: float, radius: float) -> None:
        """Filled disc centred at (x, y) in frame coordinates.

        pygame centres a disc of integer centre (cx, cy) on the pixel corner (cx, cy), so its
        pixels' centroid is exactly (cx, cy): rounding the centre keeps the drawn ball within
        half a pixel of the physical one on each axis.
        """
        pygame.draw.circle(self.surface, FOREGROUND, (round(x), round(y)), round(radius))

    def line(self, p0: tuple[int, int], p1: tuple[int, int], width: int = 1) -> None:
        """Line between the centres of pixels p0 = (col, row) and p1."""
        pygame.draw.line(self.surface, FOREGROUND, p0, p1, width)

    def outline(self, points: list[tuple[int, int]]) -> None:
        """Closed 1-pixel outline through the centres of the given pixels (col, row)."""
        pygame.draw.lines(self.surface, FOREGROUND, True, points, 1)

    def rect(self, col: int, row: int, width: int, height: int) -> None:
        """Filled rectangle of pixels [col, col + width) x [row, row + height)."""
        pygame.draw.rect(self.surface, FOREGROUND, (col, row, width, height))

    def pixels(self, out: np.ndarray | None = None) -> np.ndarray:
        """The current frame as (H, W) uint8, copied into `out` if given."""
        if out is None:
            out = np.empty((self.size, self.size), dtype=np.uint8)
        pygame.pixelcopy.surface_to_array(out.T, self.surface)
        return out
