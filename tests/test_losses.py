"""Loss formulas against hand-computed cases and a loop-by-loop reference."""
import math

import pytest
import torch

from bench.losses import LossSpec, contrastive_loss, positive_negative_masks
from bench.similarity import SIM_FLOOR, similarity

# Four samples, scores y = [0, 1, 3, 7], k = 2: one positive, two negatives per anchor.
#   anchor 0: d = (1, 3, 7) to (1, 2, 3)  -> P = {1}, N = {2, 3}
#   anchor 1: d = (1, 2, 6) to (0, 2, 3)  -> P = {0}, N = {2, 3}
#   anchor 2: d = (3, 2, 4) to (0, 1, 3)  -> P = {1}, N = {0, 3}
#   anchor 3: d = (7, 6, 4) to (0, 1, 2)  -> P = {2}, N = {0, 1}
Y = torch.tensor([0.0, 1.0, 3.0, 7.0])
# u0 = (1,0), u1 = (0,1), u2 = (-1,0), u3 = (1,0): cos01 = 0, cos02 = -1, cos03 = 1,
# cos12 = 0, cos13 = 0, cos23 = -1  ->  s = (1+cos)/2 = .5, floor, 1, .5, .5, floor.
U = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
LF, LH = math.log(SIM_FLOOR), math.log(0.5)


def test_masks_hand_case():
    pos, neg = positive_negative_masks(Y)
    assert pos.int().tolist() == [[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert neg.int().tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0]]


def test_masks_batch_of_eight_ties_by_index():
    y = torch.tensor([0.0, 0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 5.0])
    pos, neg = positive_negative_masks(y)
    assert pos.sum(1).tolist() == [3] * 8 and neg.sum(1).tolist() == [4] * 8
    assert not (pos & neg).any() and not pos.diagonal().any() and not neg.diagonal().any()
    # anchor 0: the three other zeros are its positives, the four fives its negatives.
    assert pos[0].nonzero().flatten().tolist() == [1, 2, 3]
    assert neg[0].nonzero().flatten().tolist() == [4, 5, 6, 7]
    # all-equal scores: ties broken by index -> lowest-index others are positives.
    pos, neg = positive_negative_masks(torch.zeros(8))
    assert pos[5].nonzero().flatten().tolist() == [0, 1, 2]
    assert neg[5].nonzero().flatten().tolist() == [3, 4, 6, 7]


def test_similarities_hand_values():
    s = similarity(U, "cos")
    assert s[0, 1].item() == pytest.approx(0.5)
    assert s[0, 2].item() == pytest.approx(SIM_FLOOR)
    assert s[0, 3].item() == pytest.approx(1.0)
    l2 = similarity(U, "l2")  # 1 - ||a-b||/2: orthogonal -> 1 - sqrt(2)/2, opposite -> 0 -> floor
    assert l2[0, 1].item() == pytest.approx(1 - math.sqrt(2) / 2, abs=1e-6)
    assert l2[0, 2].item() == pytest.approx(SIM_FLOOR)
    assert l2[0, 3].item() == pytest.approx(1.0, abs=1e-5)


def test_cl_hand_case():
    expected = ((LF + 0) / 2 - LH            # anchor 0
                + LH - LH                    # anchor 1
                + LF - LH                    # anchor 2
                + (LH + 0) / 2 - LF) / 4     # anchor 3
    assert contrastive_loss(U, Y, "cl", "cos").item() == pytest.approx(expected, rel=1e-5)


def test_wcl_hand_case():
    e = 0.1
    L = math.log
    expected = ((LF + L(3 + e) + 0 + L(7 + e)) / 2 - LH / (1 + e)
                + (LH + L(2 + e) + LH + L(6 + e)) / 2 - LH / (1 + e)
                + (LF + L(3 + e) + LF + L(4 + e)) / 2 - LH / (2 + e)
                + (LH + L(6 + e) + 0 + L(7 + e)) / 2 - LF / (4 + e)) / 4
    assert contrastive_loss(U, Y, "wcl", "cos", eps=e).item() == pytest.approx(expected, rel=1e-5)


def test_wcl_out_hand_case():
    e = 0.1
    expected = (((3 + e) * LF + 0) / 2 - LH / (1 + e)
                + ((2 + e) * LH + (6 + e) * LH) / 2 - LH / (1 + e)
                + ((3 + e) * LF + (4 + e) * LF) / 2 - LH / (2 + e)
                + ((6 + e) * LH + 0) / 2 - LF / (4 + e)) / 4
    assert contrastive_loss(U, Y, "wcl_out", "cos", eps=e).item() == pytest.approx(expected, rel=1e-5)


def _reference(u, y, kind, sim, eps):
    """Loop-by-loop Algorithm 1: sort all j (self first), first B/2 positive, last B/2 negative."""
    b, k = len(y), len(y) // 2
    s = similarity(u, sim)
    total = 0.0
    for i in range(b):
        order = sorted(range(b), key=lambda j: (j != i, abs(y[i] - y[j]).item(), j))
        pos, neg = order[1:k], order[b - k:]
        def w(j):
            return abs(y[i] - y[j]).item() + eps
        if kind == "cl":
            n = [torch.log(s[i, j]) for j in neg]
            p = [torch.log(s[i, j]) for j in pos]
        else:
            n = [torch.log(s[i, j] * w(j)) for j in neg]
            p = [torch.log(s[i, j]) / w(j) for j in pos]
        total = total + sum(n) / len(n) - (sum(p) / len(p) if p else 0.0)
    return total / b


@pytest.mark.parametrize("kind", ["cl", "wcl"])
@pytest.mark.parametrize("sim", ["cos", "l2"])
@pytest.mark.parametrize("b", [8, 7, 5])
def test_matches_loop_reference(kind, sim, b):
    g = torch.Generator().manual_seed(b)
    u = torch.randn(b, 6, generator=g)
    y = torch.randint(0, 4, (b,), generator=g).float()  # many ties
    got = contrastive_loss(u, y, kind, sim, eps=0.1)
    assert got.item() == pytest.approx(_reference(u, y, kind, sim, 0.1).item(), rel=1e-5, abs=1e-6)


def test_weight_inside_log_does_not_change_negative_gradient():
    # B = 3 -> k = 1: no positives, so wcl and cl differ only by the constant log(d + eps).
    u = torch.randn(3, 5, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 2.5])
    g_cl = torch.autograd.grad(contrastive_loss(u, y, "cl"), u)[0]
    g_wcl = torch.autograd.grad(contrastive_loss(u, y, "wcl"), u)[0]
    torch.testing.assert_close(g_cl, g_wcl)
    assert contrastive_loss(u, y, "cl").item() != pytest.approx(contrastive_loss(u, y, "wcl").item())
    g_out = torch.autograd.grad(contrastive_loss(u, y, "wcl_out"), u)[0]
    assert not torch.allclose(g_cl, g_out)


@pytest.mark.parametrize("sim", ["cos", "l2"])
@pytest.mark.parametrize("kind", ["cl", "wcl", "wcl_out"])
def test_gradients_finite_with_identical_embeddings(sim, kind):
    u = torch.ones(8, 4, requires_grad=True)  # every distance is exactly 0
    loss = contrastive_loss(u, torch.arange(8.0), kind, sim)
    (g,) = torch.autograd.grad(loss, u)
    assert torch.isfinite(loss) and torch.isfinite(g).all()


def test_gradient_step_pulls_positives_and_pushes_negatives():
    torch.manual_seed(0)
    y = torch.tensor([0.0, 0.1, 0.2, 0.3, 3.0, 3.1, 3.2, 3.3])
    u = torch.randn(8, 16, requires_grad=True)
    pos, neg = positive_negative_masks(y)
    before = similarity(u, "cos").detach()
    opt = torch.optim.SGD([u], lr=0.5)
    for _ in range(60):
        opt.zero_grad()
        contrastive_loss(u, y, "cl", "cos").backward()
        opt.step()
    after = similarity(u, "cos").detach()
    assert after[pos].mean() > before[pos].mean() + 0.05
    assert after[neg].mean() < before[neg].mean() - 0.05


def test_loss_spec_total_and_validation():
    pred, y = torch.tensor([0.0, 1.0, 2.0, 3.0]), Y
    out = LossSpec("mse")(pred, U, y)
    assert out["loss"].item() == pytest.approx(((pred - y) ** 2).mean().item())
    out = LossSpec("cl", lam=0.5)(pred, U, y)
    assert out["loss"].item() == pytest.approx(out["mse"].item() + 0.5 * out["contrastive"].item())
    with pytest.raises(ValueError, match="valid: mse"):
        LossSpec("mse+cl")
    with pytest.raises(ValueError, match="valid: cos, l2"):
        LossSpec("cl", sim="dot")
