"""PyTorch's EfficientNet-Lite0 at 96x96 on the CPU: the baseline of `cargo bench --bench model`.

Measures the two figures the Rust bench prints, under the same shapes:
  - inference, batch 256, eval mode under torch.inference_mode();
  - a FixMatch-sized training step, 176 images (forward, cross-entropy, backward, SGD with
    Nesterov momentum and weight decay), as `benches/model.rs` runs it.
Each in NCHW and in channels_last memory format. Run it right before or after the Rust bench,
on the same idle machine, and compare images/s:

    pip install -r benches/requirements-pytorch.txt
    python3 benches/pytorch_lite0.py --threads 2

The network is EfficientNet-Lite0 written with plain torch.nn layers, each convolution padding
itself (k // 2): the same layers and multiply-adds as ours, without the separate padding op
per convolution of the TensorFlow-style ports, which would slow PyTorch down (the port the
original AnomalyMatch uses ran at half this speed in channels_last). Weights are random:
speed does not depend on the values.
"""

import argparse
import json
import time

import torch
from torch import nn

SIZE = 96

# EfficientNet-B0's stages (Tan & Le 2019, table 1): kernel, repeats, stride, expansion, width.
STAGES = [(3, 1, 1, 1, 16), (3, 2, 2, 6, 24), (5, 2, 2, 6, 40), (3, 3, 2, 6, 80),
          (5, 3, 1, 6, 112), (5, 4, 2, 6, 192), (3, 1, 1, 6, 320)]


def conv_bn(cin, cout, k=1, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = conv_bn(cin, hidden) if expand != 1 else []
        layers += conv_bn(hidden, hidden, k, stride, groups=hidden)
        layers += conv_bn(hidden, cout, act=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def lite0(num_classes=2):
    """EfficientNet-Lite0: no squeeze-and-excitation, ReLU6, 32-wide stem, 1280-wide head."""
    layers, cin = conv_bn(3, 32, 3, 2), 32
    for k, repeats, stride, expand, cout in STAGES:
        for r in range(repeats):
            layers.append(MBConv(cin, cout, k, stride if r == 0 else 1, expand))
            cin = cout
    layers += conv_bn(cin, 1280) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                    nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


def rate(step, n, seconds):
    """Images per second of `step` (n images a call): best of repeated timed windows."""
    step()  # warm-up: first-call allocations and kernel selection
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        step()
        best = max(best, n / (time.perf_counter() - t))
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0, help="time per measurement")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"torch": torch.__version__, "threads": args.threads}
    for fmt_name, fmt in [("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)]:
        model = lite0().to(memory_format=fmt)

        model.eval()
        x = torch.rand(256, 3, SIZE, SIZE).to(memory_format=fmt)

        def infer():
            with torch.inference_mode():
                model(x)

        results[f"inference-256/{fmt_name}"] = rate(infer, 256, args.seconds)

        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.0075, momentum=0.9, nesterov=True,
                              weight_decay=7.5e-4)
        xt = torch.rand(176, 3, SIZE, SIZE).to(memory_format=fmt)
        yt = torch.arange(176) % 2

        def train():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()

        results[f"train-step-176/{fmt_name}"] = rate(train, 176, args.seconds)
    for k, v in results.items():
        print(f"{k}: {v:.1f} images/s" if isinstance(v, float) else f"{k}: {v}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
