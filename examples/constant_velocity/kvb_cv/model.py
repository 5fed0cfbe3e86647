"""A model from outside kvae-bench: the moving object keeps its last velocity.

No latent space and no learned dynamics: per sequence, the static scene is what every observed
frame shows; the object is the rest. Its centroid at a missing frame is extrapolated at
constant velocity from the last two observed frames before it, and a soft disc of the object's
observed size is drawn there over the static scene. The one learned parameter is the disc's
edge sharpness, fitted by the Bernoulli likelihood of predicting each observed frame from the
two before it. It knows nothing of walls or bounces: a baseline that any model of the dynamics
should beat on long gaps.

The kvae-bench protocol, for x (B, T, H, W) in [0, 1] and mask (B, T) in {0, 1}:
loss(x, mask), impute(x, mask), generate(x, n_observed, steps). Built as
ConstantVelocity(image_size=H, sharpness=...).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ConstantVelocity(nn.Module):
    def __init__(self, image_size: int, sharpness: float = 2.0):
        super().__init__()
        if not sharpness > 0:
            raise ValueError(f"sharpness must be > 0, got {sharpness}")
        self.image_size = image_size
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(sharpness)))
        r = torch.arange(image_size, dtype=torch.float32) + 0.5
        self.register_buffer("grid_x", r.expand(image_size, image_size).clone())
        self.register_buffer("grid_y", r[:, None].expand(image_size, image_size).clone())

    # ---- pieces -------------------------------------------------------------------------

    def _scene(self, x: Tensor, mask: Tensor):
        """Static scene (B, H, W), object centroids (B, T, 2) and mean object area (B,)."""
        observed = mask[:, :, None, None] > 0.5
        lit = x > 0.5
        static = (lit | ~observed).all(1)  # lit in every observed frame
        obj = (lit & ~static[:, None]).float()  # (B, T, H, W)
        count = obj.sum((-2, -1))  # (B, T)
        cx = (obj * self.grid_x).sum((-2, -1)) / count.clamp_min(1)
        cy = (obj * self.grid_y).sum((-2, -1)) / count.clamp_min(1)
        seen = (mask > 0.5) & (count > 0)
        area = (count * seen).sum(1) / seen.sum(1).clamp_min(1)
        return static.float(), torch.stack([cx, cy], -1), seen, area

    def _extrapolate(self, centres: Tensor, seen: Tensor) -> Tensor:
        """(B, T, 2): observed centroids where seen, else constant-velocity extrapolation
        from the last two seen before t (no motion with fewer than two)."""
        B, T = seen.shape
        out = centres.clone()
        last = torch.zeros(B, 2, device=centres.device)
        prev = torch.zeros(B, 2, device=centres.device)
        n_seen = torch.zeros(B, device=centres.device)
        gap = torch.zeros(B, device=centres.device)
        for t in range(T):
            s = seen[:, t]
            velocity = torch.where((n_seen >= 2)[:, None], last - prev, torch.zeros_like(last))
            guess = last + velocity * (gap + 1)[:, None]
            out[:, t] = torch.where(s[:, None], centres[:, t], guess)
            prev = torch.where(s[:, None], last, prev)
            last = torch.where(s[:, None], centres[:, t], last)
            n_seen = n_seen + s.float()
            gap = torch.where(s, torch.zeros_like(gap), gap + 1)
        return out

    def _draw(self, static: Tensor, centres: Tensor, area: Tensor) -> Tensor:
        """Probabilities (B, T, H, W): a soft disc of the given area at each centre, over the
        static scene."""
        radius = (area / math.pi).sqrt()[:, None, None, None]
        dx = self.grid_x - centres[..., 0, None, None]
        dy = self.grid_y - centres[..., 1, None, None]
        disc = torch.sigmoid(self.log_sharpness.exp() * (radius - (dx**2 + dy**2).sqrt()))
        return torch.maximum(disc, static[:, None])

    # ---- the kvae-bench protocol --------------------------------------------------------

    def loss(self, x: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Bernoulli negative log-likelihood per frame of each observed frame t >= 2 predicted
        from the frames before it."""
        static, centres, seen, area = self._scene(x, mask)
        T = x.shape[1]
        preds = []
        for t in range(2, T):
            hidden = seen.clone()
            hidden[:, t:] = False
            preds.append(self._extrapolate(centres, hidden)[:, t])
        p = self._draw(static, torch.stack(preds, 1), area).clamp(1e-4, 1 - 1e-4)
        target = x[:, 2:]
        ll = (target * p.log() + (1 - target) * (1 - p).log()).sum((-2, -1))  # (B, T - 2)
        weight = mask[:, 2:]
        log_px = (ll * weight).sum() / weight.sum().clamp_min(1)
        return -log_px, {"log_px": log_px.item()}

    @torch.no_grad()
    def impute(self, x: Tensor, mask: Tensor) -> dict[str, Tensor]:
        static, centres, seen, area = self._scene(x, mask)
        drawn = self._draw(static, self._extrapolate(centres, seen), area)
        observed = mask[:, :, None, None] > 0.5
        return {"extrapolated": torch.where(observed, x, drawn)}

    @torch.no_grad()
    def generate(self, x: Tensor, n_observed: int, steps: int) -> Tensor:
        B, _, H, W = x.shape
        xs = torch.cat([x[:, :n_observed], x.new_zeros(B, steps, H, W)], 1)
        mask = torch.zeros(B, n_observed + steps, device=x.device)
        mask[:, :n_observed] = 1
        return self.impute(xs, mask)["extrapolated"][:, n_observed:]
