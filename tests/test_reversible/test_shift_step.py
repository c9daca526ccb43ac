import pytest
import torch

from mmrevode.models.reversible import ShiftStep, shift, unshift

COEFFICIENTS = [(1.0, 0.0, 0.1), (1.0, 0.0, -0.1), (-1.0, 2.0, -0.0025),
                (2.0, 0.5, 0.3)]


def test_alpha_zero_is_rejected():
    with pytest.raises(ValueError, match='alpha != 0'):
        ShiftStep(torch.tanh, 0.0, 1.0, 1.0)


@pytest.mark.parametrize('alpha,beta,gamma', COEFFICIENTS)
def test_shift_then_unshift_recovers_input(alpha, beta, gamma):
    step = ShiftStep(torch.tanh, alpha, beta, gamma)
    a, b = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    f = step.fn(b)
    c = shift(step, a, b, f)
    torch.testing.assert_close(
        c, alpha * a + beta * b + gamma * f, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(
        unshift(step, b, c, f), a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('alpha,beta,gamma', COEFFICIENTS)
def test_inplace_matches_out_of_place_bitwise(alpha, beta, gamma):
    step = ShiftStep(torch.tanh, alpha, beta, gamma)
    a, b = torch.randn(2, 4, 6, 6)
    f = step.fn(b)
    expected = shift(step, a, b, f)
    a_buffer = a.clone()
    result = shift(step, a_buffer, b, f, inplace=True)
    assert result.data_ptr() == a_buffer.data_ptr()
    assert torch.equal(result, expected)
    rebuilt = unshift(step, b, expected, f)
    c_buffer = expected.clone()
    assert torch.equal(unshift(step, b, c_buffer, f, inplace=True), rebuilt)
