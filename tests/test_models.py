import numpy as np
import pytest
import torch

from hypo.config import from_dict, to_dict
from hypo.errors import ConfigError
from hypo.learn.models import MODELS, ModelConfig, build_model, count_parameters, predict_proba

from param_counts import MEAN, STD, conv, dense, lstm

torch.set_num_threads(2)


def expected_params(name, k):
    if name == "lstm":
        return lstm(7, k) + dense(k, 3)
    if name == "cnn":
        return conv(7, k) + dense(k, 7) + dense(7, 3)
    if name == "cnn_cnn":
        c1, c2, d = k, round(1.5 * k), round(50 * k / 42)
        return conv(7, c1) + conv(c1, c2) + dense(c2 * 3, d) + dense(d, 3)
    return conv(7, 21) + lstm(21, k) + dense(k, 3)


def windows(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(MEAN) + torch.tensor(STD) * torch.randn(n, 60, 7, generator=g)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("k", [42, 10])
def test_output_shape_and_parameter_count(name, k):
    model = build_model(ModelConfig(name, k), MEAN, STD)
    out = model(windows())
    assert out.shape == (5, 3) and out.dtype == torch.float32
    assert count_parameters(model) == expected_params(name, k)


def test_paper_widths_and_shapes():
    # cnn_cnn at k = 42 is the paper's Conv(42) -> Conv(63) -> Dense(50); valid padding: 60 -> 58 -> 14 -> 12 -> 3
    m = build_model(ModelConfig("cnn_cnn", 42), MEAN, STD)
    body = m.body
    assert (body.conv1.out_channels, body.conv2.out_channels, body.dense.out_features) == (42, 63, 50)
    assert body.dense.in_features == 63 * 3
    z = m.zscore(windows(2))
    h1 = torch.relu(body.conv1(z.transpose(1, 2)))
    assert h1.shape == (2, 42, 58) and body.pool(h1).shape == (2, 42, 14)
    assert body.conv2(body.pool(h1)).shape == (2, 63, 12)
    assert body.features(z).shape == (2, 63, 3)
    # cnn_lstm: Conv(3, 21, stride 3) gives 20 steps, MaxPool(4) gives 5
    m = build_model(ModelConfig("cnn_lstm", 42), MEAN, STD)
    z = m.zscore(windows(2))
    assert m.body.conv(z.transpose(1, 2)).shape == (2, 21, 20)
    assert m.body.features(z).shape == (2, 5, 21)
    assert m.body.lstm.hidden_size == 42
    # cnn: 58 steps pooled globally, then Dense(7)
    m = build_model(ModelConfig("cnn", 42), MEAN, STD)
    assert m.body.dense.out_features == 7


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name, 12), MEAN, STD)
    loss = torch.nn.functional.cross_entropy(model(windows(64)), torch.randint(0, 3, (64,)))
    assert loss.ndim == 0
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", MODELS)
def test_zscore_is_a_fixed_first_layer(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name, 8), MEAN, STD)
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("zscore") for n in names)
    state = model.state_dict()
    assert torch.equal(state["zscore.mean"], torch.tensor(MEAN)) and torch.equal(state["zscore.std"], torch.tensor(STD))
    assert not model.zscore.mean.requires_grad and not model.zscore.std.requires_grad
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == count_parameters(model)
    # applied: the body sees standardised windows
    x = windows(4)
    expected = model.body((x - torch.tensor(MEAN)) / torch.tensor(STD))
    torch.testing.assert_close(model(x), expected)
    # and not trained
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 1])).backward()
        opt.step()
    assert torch.equal(model.zscore.mean, torch.tensor(MEAN)) and torch.equal(model.zscore.std, torch.tensor(STD))


def test_zero_std_only_centres():
    std = list(STD)
    std[5] = 0.0
    model = build_model(ModelConfig("cnn", 4), MEAN, std)
    assert model.zscore.std[5] == 1.0
    assert torch.isfinite(model(windows())).all()


def test_keras_initialisation():
    torch.manual_seed(0)
    m = build_model(ModelConfig("lstm", 16), MEAN, STD)
    b_ih, b_hh = m.body.lstm.bias_ih_l0, m.body.lstm.bias_hh_l0
    assert torch.equal(b_ih[16:32], torch.ones(16)) and b_ih[:16].abs().sum() == 0 and b_hh.abs().sum() == 0
    w_hh = m.body.lstm.weight_hh_l0.detach()  # [64, 16], orthonormal columns
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(16), atol=1e-5, rtol=0)
    assert m.body.head.bias.abs().sum() == 0


def test_config_round_trip_and_validation():
    cfg = ModelConfig("cnn_lstm", 21)
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    assert ModelConfig().name == "cnn_cnn" and ModelConfig().k == 42
    with pytest.raises(ConfigError, match="model must be one of"):
        ModelConfig("transformer", 8)
    with pytest.raises(ConfigError, match="k must be"):
        ModelConfig("cnn", 0)
    with pytest.raises(ConfigError, match="at least 26"):
        ModelConfig("cnn_cnn", 8, window_s=20)
    with pytest.raises(ConfigError, match="unknown field"):
        from_dict(ModelConfig, {"name": "cnn", "width": 3})


def test_predict_proba_matches_forward_and_sums_to_one():
    torch.manual_seed(0)
    model = build_model(ModelConfig("cnn_cnn", 8), MEAN, STD)
    x = windows(37).numpy()
    probs = predict_proba(model, x, batch_size=10)
    assert probs.shape == (37, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert model.training  # mode restored
