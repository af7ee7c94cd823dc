"""Loss terms on hand-made cases: perfect predictions cost little, edges sit on class changes."""

from __future__ import annotations

import pytest
import torch

from surgseg.training.losses import LossWeights, RefinerLoss, edge_target, soft_dice_loss, temporal_consistency_loss


def square_target() -> torch.Tensor:
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, 4:12, 4:12] = 1
    return target


def confident_logits(target: torch.Tensor, margin: float = 20.0) -> torch.Tensor:
    return torch.stack([(target == 0).float(), (target == 1).float()], dim=1) * margin


def test_soft_dice_loss_is_near_zero_when_perfect_and_near_one_when_inverted() -> None:
    target = square_target()
    assert soft_dice_loss(confident_logits(target), target) < 1e-3
    assert soft_dice_loss(confident_logits(1 - target), target) > 0.95


def test_edge_target_marks_both_sides_of_the_square_outline() -> None:
    edges = edge_target(square_target())[0, 0]
    assert edges.sum() == 10 * 10 - 6 * 6  # a 2-pixel ring: rows/cols 3..12 minus the 5..10 interior
    assert edges[8, 8] == 0 and edges[4, 8] == 1 and edges[3, 8] == 1


def test_temporal_consistency_is_zero_for_identical_frames() -> None:
    logits = torch.randn(2, 3, 8, 8)
    assert temporal_consistency_loss(logits, logits) == 0
    assert temporal_consistency_loss(logits, -logits) > 0


def test_refiner_loss_sums_the_weighted_enabled_terms() -> None:
    target = square_target()
    logits = torch.randn(1, 2, 16, 16)
    edges = torch.randn(1, 1, 16, 16)
    total, parts = RefinerLoss(LossWeights(ce=1.0, dice=0.5, boundary=0.2))(logits, target, edges)
    assert set(parts) == {"ce", "dice", "boundary"}
    assert float(total) == pytest.approx(parts["ce"] + 0.5 * parts["dice"] + 0.2 * parts["boundary"], rel=1e-5)
