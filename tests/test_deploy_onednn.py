"""predict.py's PyTorch runtime on the CPU runs every linear layer on oneDNN, to the same outputs."""

import pytest
import torch
from torch import nn

from deploy.onednn import OneDNNLinear, onednn_linears
from deploy.runtimes import TorchRuntime
from tests.deploy_helpers import one_torch_thread, tiny_classifier  # noqa: F401 (autouse)

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch has no oneDNN")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 16), (3, 7, 16)])
def test_a_onednn_linear_layer_gives_the_linear_layers_outputs(bias, shape):
    torch.manual_seed(0)
    linear, x = nn.Linear(16, 8, bias=bias), torch.randn(shape)
    with torch.inference_mode():
        torch.testing.assert_close(OneDNNLinear(linear)(x), linear(x), rtol=0, atol=1e-6)


def test_the_cpu_runtime_runs_every_linear_layer_on_onednn(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    export = tiny_classifier(tiny_bert, tmp_path / "hf_model")
    model = TorchRuntime(export, 0, 32).model
    assert not [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert any(isinstance(m, OneDNNLinear) for m in model.modules())


def test_layers_of_other_types_and_dtypes_stay_as_they_are():
    model = nn.Sequential(nn.Linear(4, 4).to(torch.bfloat16), nn.Embedding(3, 4), nn.Linear(4, 2))
    onednn_linears(model)
    assert [type(m) for m in model] == [nn.Linear, nn.Embedding, OneDNNLinear]
