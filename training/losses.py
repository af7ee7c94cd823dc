"""Refiner loss: cross-entropy + soft Dice (+ boundary BCE on an edge head), and an optional temporal consistency."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term; 0 switches a term off. `temporal` needs pairs of adjacent frames."""

    ce: float = 1.0
    dice: float = 0.5
    boundary: float = 0.2
    temporal: float = 0.0


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − soft Dice of the softmax over foreground classes, per image and class, then averaged."""
    num_classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)[:, 1:]
    onehot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum(dim=(2, 3))
    total = probs.sum(dim=(2, 3)) + onehot.sum(dim=(2, 3))
    return 1.0 - ((2 * inter + smooth) / (total + smooth)).mean()


def edge_target(target: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float map, 1 where the class id changes inside a 3×3 neighbourhood."""
    t = target.float().unsqueeze(1)
    return (F.max_pool2d(t, 3, 1, 1) != -F.max_pool2d(-t, 3, 1, 1)).float()


def boundary_loss(edge_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the edge head against `edge_target`, positives up-weighted by their rarity."""
    edges = edge_target(target)
    positives = edges.sum()
    pos_weight = ((edges.numel() - positives) / positives.clamp(min=1.0)).clamp(max=50.0)
    return F.binary_cross_entropy_with_logits(edge_logits.float(), edges, pos_weight=pos_weight)


def temporal_consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the class probabilities of two adjacent frames."""
    return (logits_a.float().softmax(dim=1) - logits_b.float().softmax(dim=1)).pow(2).mean()


class RefinerLoss(nn.Module):
    """Weighted sum of the enabled terms; also returns each term (detached floats) for logging."""

    def __init__(self, weights: LossWeights) -> None:
        super().__init__()
        self.weights = weights

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        edge_logits: torch.Tensor | None = None,
        next_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.ce:
            terms["ce"] = F.cross_entropy(logits.float(), target.long())
        if w.dice:
            terms["dice"] = soft_dice_loss(logits, target)
        if w.boundary and edge_logits is not None:
            terms["boundary"] = boundary_loss(edge_logits, target)
        if w.temporal and next_logits is not None:
            terms["temporal"] = temporal_consistency_loss(logits, next_logits)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
