import math

import pytest
import torch
import torch.nn.functional as F

from hypo.errors import ConfigError
from hypo.learn.losses import FocalLoss, make_loss


def batch(n=50, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, 3, generator=g), torch.randint(0, 3, (n,), generator=g)


def analytic_grad(logits, target, gamma, alpha=None):
    """dFL/dz_j = alpha_t [gamma (1 - p_t)^(gamma - 1) p_t log p_t - (1 - p_t)^gamma] (delta_tj - p_j) / N."""
    p = torch.softmax(logits.double(), 1)
    n = len(target)
    pt = p[torch.arange(n), target]
    coef = gamma * (1 - pt) ** (gamma - 1) * pt * torch.log(pt) - (1 - pt) ** gamma
    if alpha is not None:
        coef = coef * torch.tensor(alpha, dtype=torch.float64)[target]
    onehot = F.one_hot(target, 3).double()
    return coef[:, None] * (onehot - p) / n


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, y = batch()
    fl = FocalLoss(gamma=0.0)(logits, y)
    ce = F.cross_entropy(logits, y)
    assert fl.ndim == 0
    assert math.isclose(fl.item(), ce.item(), rel_tol=1e-6)
    assert math.isclose(make_loss("ce")(logits, y).item(), ce.item(), rel_tol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("alpha", [None, (0.25, 1.0, 2.0)])
def test_focal_gradient_matches_the_analytic_formula(gamma, alpha):
    logits, y = batch(seed=int(gamma * 10))
    z = logits.clone().requires_grad_(True)
    FocalLoss(gamma, alpha)(z, y).backward()
    torch.testing.assert_close(z.grad.double(), analytic_grad(logits, y, gamma, alpha), rtol=1e-4, atol=1e-6)


def test_focal_value_and_alpha_weighting():
    logits, y = batch(seed=4)
    gamma, alpha = 2.0, (0.5, 2.0, 3.0)
    p = torch.softmax(logits.double(), 1)[torch.arange(len(y)), y]
    a = torch.tensor(alpha, dtype=torch.float64)[y]
    expected = (-a * (1 - p) ** gamma * torch.log(p)).mean()
    assert math.isclose(FocalLoss(gamma, alpha)(logits, y).item(), expected.item(), rel_tol=1e-5)


def test_focal_down_weights_easy_examples():
    logits = torch.tensor([[6.0, 0.0, 0.0], [0.2, 0.0, 0.0]])
    y = torch.tensor([0, 0])
    per_ce = F.cross_entropy(logits, y, reduction="none")
    ratio = [FocalLoss(2.0)(logits[i : i + 1], y[i : i + 1]).item() / per_ce[i].item() for i in range(2)]
    assert ratio[0] < 1e-4 < 0.3 < ratio[1] < 1  # the easy example loses almost all its weight


def test_confident_logits_keep_finite_gradients():
    z = torch.tensor([[40.0, -40.0, -40.0], [0.0, 0.0, 30.0]], requires_grad=True)
    FocalLoss(0.5)(z, torch.tensor([0, 2])).backward()
    assert torch.isfinite(z.grad).all()


def test_make_loss():
    assert isinstance(make_loss("focal", 2.0), FocalLoss)
    assert isinstance(make_loss("ce"), torch.nn.CrossEntropyLoss)
    logits, y = batch(seed=5)
    w = (1.0, 2.0, 4.0)
    expected = F.cross_entropy(logits, y, weight=torch.tensor(w))
    assert math.isclose(make_loss("ce", alpha=w)(logits, y).item(), expected.item(), rel_tol=1e-6)
    with pytest.raises(ConfigError, match="focal loss only"):
        make_loss("ce", gamma=2.0)
    with pytest.raises(ConfigError, match="loss must be one of"):
        make_loss("hinge")
    with pytest.raises(ConfigError, match="gamma must be >= 0"):
        make_loss("focal", gamma=-1.0)
    with pytest.raises(ConfigError, match="alpha must be 3 positive"):
        make_loss("focal", 2.0, alpha=(1.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match="alpha must be 3 positive"):
        make_loss("focal", 2.0, alpha=(1.0, 1.0))
