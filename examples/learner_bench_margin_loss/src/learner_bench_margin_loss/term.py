"""``margin``: embeddings should rank batch neighbours by score distance.

For every anchor i and every two others j, k with |y_i - y_j| < |y_i - y_k|, the similarity
to the nearer one should exceed the similarity to the farther one by a margin:
``mean relu(MARGIN - (s_ij - s_ik))``. Written only against learner-bench's documented
interface: ``term(u, y, sim)`` and ``bench.similarity.similarity(u, sim)``.
"""
import torch

from bench.similarity import similarity

MARGIN = 0.1


def margin(u: torch.Tensor, y: torch.Tensor, sim: str) -> torch.Tensor:
    b = u.shape[0]
    s = similarity(u, sim)                                   # [B, B] in (0, 1]
    d = (y[:, None] - y[None, :]).abs()
    others = ~torch.eye(b, dtype=torch.bool, device=u.device)
    # ordered[i, j, k]: j is nearer to anchor i than k (both others)
    ordered = (d[:, :, None] < d[:, None, :]) & others[:, :, None] & others[:, None, :]
    hinge = torch.relu(MARGIN - (s[:, :, None] - s[:, None, :]))
    return (hinge * ordered).sum() / ordered.sum().clamp_min(1)


margin.label = "MSE + Margin"
