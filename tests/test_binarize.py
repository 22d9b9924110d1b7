"""Values and gradients of every binarization primitive and method part, on hand-checked tensors."""
from __future__ import annotations

import math

import pytest
import torch

from frb import binarize as B
from frb.layers import set_progress

X = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0])


def close(a, b, tol: float = 1e-6) -> bool:
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol)


def grad_of(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = fn(x)
    y.sum().backward()
    return y.detach(), x.grad


def test_sign_of_zero_is_plus_one():
    assert B.sign(X).tolist() == [-1, -1, -1, 1, 1, 1, 1]
    assert torch.sign(torch.tensor(0.0)) == 0  # the reason for our own sign


@pytest.mark.parametrize(
    "fn, expected_grad",
    [
        (B.sign_ste, [1, 1, 1, 1, 1, 1, 1]),
        (B.sign_clipped_ste, [0, 1, 1, 1, 1, 1, 0]),
        # ApproxSign: max(0, 2 - 2|x|)
        (B.approx_sign, [0, 0, 1, 2, 1.5, 0, 0]),
    ],
)
def test_sign_surrogate_gradients(fn, expected_grad):
    y, g = grad_of(fn, X)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    assert g.tolist() == pytest.approx(expected_grad)


def test_ede_schedule_endpoints_and_gradient():
    assert B.ede_parameters(0.0) == pytest.approx((0.1, 10.0))
    assert B.ede_parameters(1.0) == pytest.approx((10.0, 1.0))
    t, k = B.ede_parameters(0.5)
    assert t == pytest.approx(1.0) and k == pytest.approx(1.0)
    y, g = grad_of(lambda x: B.ede_sign(x, 0.5), X)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    expected = [1 - math.tanh(v) ** 2 for v in X.tolist()]  # k t (1 - tanh^2(t x)) with t = k = 1
    assert close(g, expected, tol=1e-6)


W = torch.tensor([[0.5, -0.25, 0.0, 1.5], [-0.1, -0.2, 0.3, -0.4]])  # 2 output channels


def test_plain_sign_weights():
    y, g = grad_of(B.PlainSign(), W)
    assert y.tolist() == [[1, -1, 1, 1], [-1, -1, 1, -1]]
    assert g.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]  # clipped at |w| > 1


def test_layer_mean_sign_weights():
    y, g = grad_of(B.LayerMeanSign(), W)
    mean = W.abs().mean().item()  # 3.25 / 8
    assert mean == pytest.approx(0.40625)
    assert close(y, mean * B.sign(W))
    assert close(g, mean * torch.ones_like(W))


def test_channel_mean_sign_weights():
    y, g = grad_of(B.ChannelMeanSign(), W)
    a = [0.5625, 0.25]  # (0.5+0.25+0+1.5)/4, (0.1+0.2+0.3+0.4)/4
    assert close(y, [[a[0], -a[0], a[0], a[0]], [-a[1], -a[1], a[1], -a[1]]])
    assert close(g, [[a[0], a[0], a[0], 0], [a[1]] * 4])


def test_second_order_residual_sign_matches_the_formula():
    q = B.SecondOrderResidualSign()
    y, g = grad_of(q, W)
    a1 = torch.tensor([[0.5625], [0.25]])
    r = W - a1 * B.sign(W)
    a2 = r.abs().mean(dim=1, keepdim=True)
    # channel 0: r = [-0.0625, 0.3125, -0.5625, 0.9375] -> a2 = 1.875 / 4
    assert a2[0].item() == pytest.approx(0.46875)
    expected = a1 * B.sign(W) + a2 * B.sign(r)
    assert close(y, expected)
    assert g.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    # the second base strictly reduces the approximation error on every channel
    first = a1 * B.sign(W)
    assert ((W - y).abs().sum(1) < (W - first).abs().sum(1)).all()


def test_second_order_latent_binarizes_back_into_the_same_bases():
    torch.manual_seed(0)
    w = torch.randn(16, 60) * 0.01
    w[:8, 0] = 3.0  # heavy-tailed channels: alpha2 > alpha1, where W_b itself re-binarizes wrongly
    q = B.SecondOrderResidualSign()
    (b1, a1), (b2, a2) = bases = q.bases(w)
    assert (a2[:8] > a1[:8]).all()
    naive = a1.view(-1, 1) * b1 + a2.view(-1, 1) * b2
    assert not torch.equal(B.sign(naive), b1)
    (c1, s1), (c2, s2) = q.bases(q.latent(bases))
    assert torch.equal(c1, b1) and torch.equal(c2, b2)
    torch.testing.assert_close(s1, a1, rtol=1e-5, atol=0)
    torch.testing.assert_close(s2, a2, rtol=1e-4, atol=0)


@pytest.mark.parametrize("method", sorted(B.METHODS))
def test_every_weight_quantizer_rebuilds_latent_weights_that_binarize_back_into_its_bases(method):
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3) * 0.05
    w[:2, 0, 0, 0] = 2.0  # heavy-tailed channels
    q = B.get_method(method).weight_quantizer(8)
    q.reset_from_weight(w)
    bases = q.bases(w)
    again = q.bases(q.latent(bases))
    assert len(again) == len(bases) == q.num_bases
    for (signs, scale), (signs_again, scale_again) in zip(bases, again):
        assert torch.equal(signs_again, signs)
        torch.testing.assert_close(scale_again, scale, rtol=1e-4, atol=0)


def test_first_order_srb_is_channel_mean_sign():
    q = B.SecondOrderResidualSign(second_order=False)
    assert q.num_bases == 1
    assert torch.equal(q(W), B.ChannelMeanSign()(W))


def test_bases_reconstruct_the_forward_weights():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3)
    quantizers = [B.PlainSign(), B.LayerMeanSign(), B.ChannelMeanSign(), B.SecondOrderResidualSign(), B.LibraSign()]
    learned = B.LearnedScaleSign(8)
    learned.reset_from_weight(w)
    for q in quantizers + [learned]:
        bases = q.bases(w)
        assert len(bases) == q.num_bases
        rebuilt = sum(scale.view(-1, 1, 1, 1) * b for b, scale in bases)
        assert torch.allclose(rebuilt, q(w), atol=1e-6), type(q).__name__
        for b, _ in bases:
            assert set(b.unique().tolist()) <= {-1.0, 1.0}


def test_libra_sign_is_balanced_with_power_of_two_scale():
    w = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # mean 3, centred [-2, -1, 0, 3]
    q = B.LibraSign()
    (b, s), = q.bases(w)
    assert b.tolist() == [[-1, -1, 1, 1]]
    assert s.item() == 2.0  # 2^round(log2(mean|centred| = 1.5))
    assert q(w).tolist() == [[-2, -2, 2, 2]]
    wg = w.clone().requires_grad_(True)
    set_progress(q, 0.0)
    (q(wg) * torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()
    assert torch.isfinite(wg.grad).all() and wg.grad.abs().sum() > 0


def test_learned_scale_sign_gradient_reaches_the_scale():
    q = B.LearnedScaleSign(2)
    q.reset_from_weight(W)
    assert q.scale.tolist() == pytest.approx([0.5625, 0.25])
    q(W).sum().backward()
    assert q.scale.grad.tolist() == pytest.approx([2.0, -2.0])  # sum of signs per channel


def test_rsign_threshold_shifts_the_sign_and_learns():
    rs = B.RSign(2, channel_dim=1)
    with torch.no_grad():
        rs.threshold.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[[[0.4]], [[-0.4]]]])  # (1, 2, 1, 1)
    out = rs(x)
    assert out.flatten().tolist() == [-1, 1]
    out.sum().backward()
    # d/dbeta sign(x - beta) ~ -ApproxSign'(x - beta) = -(2 - 2*0.1)
    assert rs.threshold.grad.tolist() == pytest.approx([-1.8, -1.8])


def test_mean_centred_sign_uses_per_channel_spatial_mean():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 10.0]]]])  # mean 4
    assert B.MeanCenteredSign(channel_dim=1)(x).flatten().tolist() == [-1, -1, -1, 1]
    tokens = torch.tensor([[[1.0, -5.0], [3.0, -1.0]]])  # (B=1, N=2, C=2): channel means 2, -3
    assert B.MeanCenteredSign(channel_dim=-1)(tokens).tolist() == [[[-1, -1], [1, 1]]]


def test_output_parts():
    y = torch.tensor([[[[-2.0]], [[1.0]]]])
    x = torch.tensor([[[[10.0]], [[20.0]]]])
    assert B.PlainOutput()(y, x).flatten().tolist() == [-2, 1]
    assert B.ShortcutOutput(1)(y, x).flatten().tolist() == [8, 21]
    assert B.PReLUShortcutOutput(2, 1)(y, x).flatten().tolist() == [9.5, 21]
    rp = B.RPReLUShortcutOutput(2, 1)
    with torch.no_grad():
        rp.shift_in.copy_(torch.tensor([-1.0, 2.0]))
        rp.shift_out.copy_(torch.tensor([0.5, 0.5]))
    # channel 0: y - gamma = -1 -> 0.25 * -1 + 0.5 = 0.25; channel 1: 1 - 2 = -1 -> -0.25 + 0.5 = 0.25
    assert rp(y, x).flatten().tolist() == [10.25, 20.25]


def test_match_channels_expands_and_averages():
    x = torch.arange(4.0).view(1, 1, 4)  # (B, N, C=4)
    assert B.match_channels(x, 8, -1).flatten().tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert B.match_channels(x, 2, -1).flatten().tolist() == [1, 2]  # mean of [0,2] and [1,3]
    with pytest.raises(ValueError, match="divide"):
        B.check_shortcut_widths(6, 4)


def test_registry_has_the_eight_methods_and_clear_errors():
    assert list(B.METHODS) == ["bnn", "dorefa", "bireal", "irnet", "bam", "btm", "reactnet", "frb"]
    for name, cls in B.METHODS.items():
        assert cls.__doc__ and cls.citation, name
    assert B.get_method("frb", second_order=False).second_order is False
    with pytest.raises(ValueError, match="unknown binarization method 'xnor'.*frb"):
        B.get_method("xnor")
