"""Beyond-paper losses (Rank-N-Contrast, y-aware InfoNCE, SupCon) on hand-computed cases.

Three samples u0 = (1,0), u1 = (0,1), u2 = (-1,0) with tau = 1 and cosine logits:
l01 = 0, l02 = -1, l12 = 0; scores y = (0, 1, 3) so d01 = 1, d02 = 3, d12 = 2.
"""
import math

import pytest
import torch

from bench.losses import LossSpec, rnc_loss, supcon_loss, yaware_loss

U = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
Y = torch.tensor([0.0, 1.0, 3.0])
Z0 = math.log(1 + math.exp(-1))  # log-partition of anchor 0 (and 2) over the others
Z1 = math.log(2.0)               # anchor 1 sees two logits of 0


def test_rnc_hand_case():
    # anchor 0: j=1 denominators {1,2} -> -Z0 ; j=2 denominator {2} -> 0  => Z0 / 2
    # anchor 1: j=0 denominators {0,2} -> -Z1 ; j=2 denominator {2} -> 0  => Z1 / 2
    # anchor 2: j=0 denominator {0} -> 0 ; j=1 denominators {0,1} -> -Z0  => Z0 / 2
    expected = (Z0 / 2 + Z1 / 2 + Z0 / 2) / 3
    assert rnc_loss(U, Y, "cos", tau=1.0).item() == pytest.approx(expected, rel=1e-5)


def test_yaware_hand_case():
    e = math.exp
    b = e(-4.5) / (e(-0.5) + e(-4.5))   # anchor 0's normalised weight on sample 2
    c = e(-4.5) / (e(-4.5) + e(-2.0))   # anchor 2's normalised weight on sample 0
    expected = ((Z0 + b) + Z1 + (Z0 + c)) / 3
    assert yaware_loss(U, Y, "cos", tau=1.0, sigma=1.0).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_hand_case_and_anchor_without_positive():
    groups = torch.tensor([0, 0, 1])  # anchor 2 has no positive: left out of the mean
    expected = (Z0 + Z1) / 2
    assert supcon_loss(U, groups, "cos", tau=1.0).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_no_positive_at_all_is_zero_with_finite_gradient():
    u = U.clone().requires_grad_(True)
    loss = supcon_loss(u, torch.tensor([0, 1, 2]), "cos")
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(u.grad).all()


@pytest.mark.parametrize("name", ["rnc", "yaware", "supcon"])
@pytest.mark.parametrize("sim", ["cos", "l2"])
def test_loss_spec_runs_and_gradients_finite(name, sim):
    torch.manual_seed(0)
    u = torch.randn(8, 5, requires_grad=True)
    u_same = torch.ones(8, 5, requires_grad=True)  # identical embeddings: distance 0 everywhere
    y = torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for emb in (u, u_same):
        out = LossSpec(name, sim)(torch.zeros(8), emb, y, groups)
        (g,) = torch.autograd.grad(out["loss"], emb)
        assert torch.isfinite(out["loss"]) and torch.isfinite(g).all()
        assert out["contrastive"].item() > 0


def test_supcon_requires_groups():
    with pytest.raises(ValueError, match="score bins"):
        LossSpec("supcon")(torch.zeros(3), U, Y)
