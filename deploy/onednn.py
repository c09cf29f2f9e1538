"""PyTorch's fp32 linear layers on oneDNN, for prediction on the CPU. PyTorch multiplies fp32
matrices with MKL, which on the 2-core AMD EPYC of this workplace ran MiniLM's linear layers at
about half the speed of oneDNN (and of ONNX Runtime's own kernels): MiniLM on 32 texts of 50
tokens, 0.120 s a batch instead of 0.200 s, of 300 tokens 0.98 s instead of 1.33 s, logits within
2e-6 (2 threads). torch.compile with frozen weights reaches oneDNN too, but costs 12 to 15 s first;
this costs nothing. `torch.utils.mkldnn` does the same with TorchScript, which torch deprecates."""

import torch
from torch import nn


class OneDNNLinear(nn.Module):
    """An `nn.Linear` for inference on the CPU whose weights are oneDNN tensors, run by ATen's
    `mkldnn_linear`; they are plain attributes, outside `state_dict()` and `.to()`."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = linear.weight.detach().to_mkldnn()
        self.bias = None if linear.bias is None else linear.bias.detach().to_mkldnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.mkldnn_linear(x.to_mkldnn(), self.weight, self.bias).to_dense()


def onednn_linears(module: nn.Module) -> nn.Module:
    """`module` with every fp32 `nn.Linear` swapped for a `OneDNNLinear`, where PyTorch has oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return module
    for name, child in module.named_children():
        if type(child) is nn.Linear and child.weight.dtype == torch.float32:
            setattr(module, name, OneDNNLinear(child))
        else:
            onednn_linears(child)
    return module
