"""Off-screen rendering: the module that imports pygame (simulators/preset2017.py also draws
with pygame, pymunk's debug_draw as the 2017 generators did, through the pygame this imports).

A `Canvas` is a size x size uint8 frame, white (255) on black (0). Pixel (r, c) covers
[c, c+1) x [r, r+1) in frame coordinates (x = column, y = row from the top); its centre is
(c + 0.5, r + 0.5). Static parts of a scene (walls) are drawn once and baked into the
background; each frame starts from a copy of it.

Everything is drawn in one colour, so a frame is the union of its shapes' pixels, whatever the
order. Lines are pygame's (drawn on a scratch surface and added to the frame); discs and
rectangles, drawn every frame, are numpy stamps of exactly the pixels pygame's `draw.circle`
and `draw.rect` set (tests compare them at every position, clipped at the frame edge too).
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


def disc_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) offsets from the centre pixel corner of the pixels pygame's
    `draw.circle(surface, colour, (cx, cy), radius)` sets, drawn once far from any edge."""
    size = 4 * radius + 4
    surface = pygame.Surface((size, size), depth=8)
    surface.set_palette([(i, i, i) for i in range(256)])
    centre = size // 2
    pygame.draw.circle(surface, FOREGROUND, (centre, centre), radius)
    pixels = np.empty((size, size), dtype=np.uint8)
    pygame.pixelcopy.surface_to_array(pixels.T, surface)
    rows, cols = np.nonzero(pixels)
    return rows - centre, cols - centre


class Canvas:
    """Draws a scene's static background once, then the frames of a video over it.

    Static parts are drawn after `reset()` and kept by `bake_background()`. `video(T)` starts
    T frames (T, H, W) uint8, each the background; `discs` draws one disc in every frame at
    once, and `select(t)` picks the frame that the other draws go to. `clear()` and
    `pixels()` draw a single frame: a video of one.
    """

    def __init__(self, size: int):
        self.size = size
        self.background = np.zeros((size, size), dtype=np.uint8)
        self.frames = self.background[None].copy()  # (T, H, W): the video being drawn
        self.t = 0  # the frame that disc, rect, line and outline draw to
        self.scene = None  # whose static scene the background is, for whoever bakes it
        self._stamps = {}  # radius -> (rows, cols, flat offsets, lo, hi); see _stamp
        self._scratch = pygame.Surface((size, size), depth=8)
        self._scratch.set_palette([(i, i, i) for i in range(256)])

    def reset(self) -> None:
        """Blank canvas, background included (call before drawing a new static scene)."""
        self.background = np.zeros((self.size, self.size), dtype=np.uint8)
        self.scene = None
        self.clear()

    def bake_background(self) -> None:
        """Keep what is drawn now as the background every frame starts from."""
        self.background = self.frames[self.t].copy()

    def video(self, steps: int) -> np.ndarray:
        """Start `steps` frames (T, H, W), each the background, drawing to frame 0."""
        self.frames = np.empty((steps, self.size, self.size), dtype=np.uint8)
        self.frames[...] = self.background
        self.t = 0
        return self.frames

    def select(self, t: int) -> None:
        """Draw to frame t of the video from now on."""
        self.t = t

    def clear(self) -> None:
        """Start a single frame from the background."""
        self.video(1)

    def pixels(self, out: np.ndarray | None = None) -> np.ndarray:
        """The current frame as (H, W) uint8, copied into `out` if given."""
        if out is None:
            return self.frames[self.t].copy()
        np.copyto(out, self.frames[self.t])
        return out

    def disc(self, x: float, y: float, radius: float) -> None:
        """Filled disc centred at (x, y) in frame coordinates.

        pygame centres a disc of integer centre (cx, cy) on the pixel corner (cx, cy), so its
        pixels' centroid is exactly (cx, cy): rounding the centre keeps the drawn ball within
        half a pixel of the physical one on each axis.
        """
        rows, cols, _, _, _ = self._stamp(radius)
        self._clipped(self.t, rows + round(y), cols + round(x))

    def discs(self, xy: np.ndarray, radius: float) -> None:
        """`disc(x, y, radius)` in every frame t of the video, (x, y) = xy[t]; xy (T, 2)
        float64. np.rint rounds halves to even, as round() does."""
        rows, cols, flat, lo, hi = self._stamp(radius)
        size = self.size
        c = np.rint(xy).astype(np.intp)  # (T, 2) centre pixel corners (col, row)
        if c.min() >= lo and c.max() <= size - hi:  # every disc wholly inside its frame
            centres = c @ np.array([1, size]) + np.arange(0, len(c) * size * size, size * size)
            self.frames.reshape(-1)[centres[:, None] + flat] = FOREGROUND
            return
        for t, (cx, cy) in enumerate(c.tolist()):  # some near the frame edge: clipped
            self._clipped(t, rows + cy, cols + cx)

    def _clipped(self, t: int, rows: np.ndarray, cols: np.ndarray) -> None:
        inside = (rows >= 0) & (rows < self.size) & (cols >= 0) & (cols < self.size)
        self.frames[t, rows[inside], cols[inside]] = FOREGROUND

    def _stamp(self, radius: float):
        """The disc's pixel offsets, their flat offsets in a frame, and the range [lo, size -
        hi] of centres whose disc lies wholly in the frame."""
        stamp = self._stamps.get(radius)
        if stamp is None:
            rows, cols = disc_offsets(round(radius))
            lo = -int(min(rows.min(), cols.min()))
            hi = int(max(rows.max(), cols.max())) + 1
            stamp = self._stamps[radius] = (rows, cols, rows * self.size + cols, lo, hi)
        return stamp

    def rect(self, col: int, row: int, width: int, height: int) -> None:
        """Filled rectangle of pixels [col, col + width) x [row, row + height), clipped to the
        frame; nothing if width or height is not positive (as pygame.draw.rect)."""
        if width <= 0 or height <= 0:
            return
        self.frames[self.t, max(row, 0):max(row + height, 0),
                    max(col, 0):max(col + width, 0)] = FOREGROUND

    def line(self, p0: tuple[int, int], p1: tuple[int, int], width: int = 1) -> None:
        """Line between the centres of pixels p0 = (col, row) and p1."""
        self._scratch.fill(0)
        pygame.draw.line(self._scratch, FOREGROUND, p0, p1, width)
        self._add_scratch()

    def outline(self, points: list[tuple[int, int]]) -> None:
        """Closed 1-pixel outline through the centres of the given pixels (col, row)."""
        self._scratch.fill(0)
        pygame.draw.lines(self._scratch, FOREGROUND, True, points, 1)
        self._add_scratch()

    def _add_scratch(self) -> None:
        drawn = np.empty((self.size, self.size), dtype=np.uint8)
        pygame.pixelcopy.surface_to_array(drawn.T, self._scratch)
        frame = self.frames[self.t]
        np.maximum(frame, drawn, out=frame)
