"""PyTorch's fp32 linear layers on oneDNN, one of the paths `deploy/cpu_paths.py` measures for
prediction on the CPU. PyTorch multiplies fp32 matrices with MKL, which on the 2-core AMD EPYC of
this workplace ran MiniLM's linear layers at about half the speed of oneDNN (and of ONNX Runtime's
own kernels): MiniLM on 32 texts of 50 tokens, 0.120 s a batch instead of 0.200 s, of 300 tokens
0.98 s instead of 1.33 s, logits within 2e-6 (2 threads). On an Intel CPU, where MKL is Intel's
own, it gained nothing; so the path is taken only where a probe on the machine at hand finds it
faster. `torch.utils.mkldnn` does the same with TorchScript, which torch deprecates."""

import torch
from torch import nn
from torch.nn import functional


class OneDNNLinear(nn.Linear):
    """An `nn.Linear` whose inference on fp32 CPU tensors runs ATen's `mkldnn_linear` on a oneDNN
    copy of its weights; its parameters, `state_dict`, gradients and autocast are the plain layer's
    (where gradients or autocast are on, it runs as one)."""

    def __init__(self, linear: nn.Linear):
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)
        self.weight, self.bias = linear.weight, linear.bias
        with torch.no_grad():
            self.packed_weight = self.weight.detach().to_mkldnn()
            self.packed_bias = None if self.bias is None else self.bias.detach().to_mkldnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = (x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_autocast_enabled("cpu")
                 or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)))
        if plain:
            return functional.linear(x, self.weight, self.bias)
        return torch.ops.aten.mkldnn_linear(x.to_mkldnn(), self.packed_weight, self.packed_bias).to_dense()


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
