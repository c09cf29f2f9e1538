"""OneDNNLinear, the linear layer of the CPU path "fp32 (oneDNN linear layers)": it gives nn.Linear's
outputs and runs oneDNN's kernel for fp32 inference, and elsewhere is the plain layer it replaces,
the same parameters, state_dict, gradients and autocast; onednn_linears swaps fp32 nn.Linear only."""

import copy

import pytest
import torch
from torch import nn

from deploy import onednn
from deploy.onednn import OneDNNLinear, onednn_linears
from tests.deploy_helpers import one_torch_thread  # noqa: F401 (autouse)

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch has no oneDNN")


def layers(bias: bool = True) -> tuple[nn.Linear, OneDNNLinear]:
    """A plain linear layer and a OneDNNLinear made from a copy of it."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 8, bias=bias)
    return linear, OneDNNLinear(copy.deepcopy(linear))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 16), (3, 7, 16)])
def test_a_onednn_linear_layer_gives_the_linear_layers_outputs(bias, shape):
    linear, layer = layers(bias)
    x = torch.randn(shape)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), linear(x), rtol=0, atol=1e-6)


def counted(monkeypatch) -> dict[str, int]:
    """How often the layers call functional.linear and ATen's mkldnn_linear, counted from now on."""
    calls = {"linear": 0, "mkldnn_linear": 0}
    linear, mkldnn_linear = onednn.functional.linear, torch.ops.aten.mkldnn_linear

    def count(name, function):
        def counting(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return counting

    monkeypatch.setattr(onednn.functional, "linear", count("linear", linear))
    monkeypatch.setattr(torch.ops.aten, "mkldnn_linear", count("mkldnn_linear", mkldnn_linear))
    return calls


def test_inference_runs_onednns_kernel_and_training_the_plain_layers(monkeypatch):
    _, layer = layers()
    x = torch.randn(4, 16)
    calls = counted(monkeypatch)
    with torch.inference_mode():
        layer(x)
    assert calls == {"linear": 0, "mkldnn_linear": 1}
    layer(x.requires_grad_())
    assert calls == {"linear": 1, "mkldnn_linear": 1}


def test_its_parameters_and_state_dict_are_the_original_layers():
    linear = nn.Linear(16, 8)
    layer = OneDNNLinear(linear)
    assert layer.weight is linear.weight and layer.bias is linear.bias
    assert list(layer.parameters()) == list(linear.parameters())
    mine, original = layer.state_dict(), linear.state_dict()
    assert list(mine) == list(original) == ["weight", "bias"]
    assert all(torch.equal(mine[key], original[key]) for key in original)


def test_backward_gives_the_linear_layers_gradients():
    linear, layer = layers()
    x = torch.randn(3, 5, 16)
    grads = []
    for model in (linear, layer):
        xs = x.clone().requires_grad_()
        (model(xs) ** 2).sum().backward()
        grads.append([xs.grad, model.weight.grad, model.bias.grad])
    for mine, expected in zip(grads[1], grads[0]):
        torch.testing.assert_close(mine, expected, rtol=0, atol=1e-6)


def test_under_bf16_autocast_it_computes_as_the_linear_layer_does():
    linear, layer = layers()
    x = torch.randn(5, 16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        mine, expected = layer(x), linear(x)
    assert mine.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(mine, expected, rtol=0, atol=0)


def test_layers_of_other_types_and_dtypes_stay_as_they_are():
    model = nn.Sequential(nn.Linear(4, 4).to(torch.bfloat16), nn.Embedding(3, 4), nn.Linear(4, 2))
    onednn_linears(model)
    assert [type(m) for m in model] == [nn.Linear, nn.Embedding, OneDNNLinear]
