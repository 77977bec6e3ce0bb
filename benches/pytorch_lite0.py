"""EfficientNet-Lite0 at 96x96 on the CPU, ours against PyTorch's, in one sitting.

Runs `cargo bench --bench model -- ours` (our figures, and the machine's matrix-product peak
timed in the same run), then measures PyTorch under the same shapes:
  - inference, batch 256, eval mode under torch.inference_mode();
  - a FixMatch-sized training step, 176 images (forward, cross-entropy, backward, SGD with
    Nesterov momentum and weight decay), as `benches/model.rs` runs it.
PyTorch runs in NCHW and in channels_last memory format. The table gives images/s, our ratio
to PyTorch's faster format, and each side's share of the peak. On an idle machine:

    pip install -r benches/requirements-pytorch.txt
    python3 benches/pytorch_lite0.py --threads 2 --seconds 8

The network is EfficientNet-Lite0 written with plain torch.nn layers, each convolution padding
itself (k // 2): the same layers and multiply-adds as ours, without the separate padding op
per convolution of the TensorFlow-style ports, which would slow PyTorch down (the port the
original AnomalyMatch uses ran at half this speed in channels_last). Weights are random:
speed does not depend on the values.
"""

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

import torch
from torch import nn

SIZE = 96
ROOT = Path(__file__).resolve().parents[1]
# Forward passes' worth of FLOPs per image: backward costs about two (gradients wrt the inputs
# and wrt the weights), as benches/model.rs counts them.
FIGURES = {"inference-256": 1.0, "train-step-176": 3.0}

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


def ours():
    """Our images/s per figure, GFLOP per image and the matmul peak, from the Rust bench."""
    done = subprocess.run(["cargo", "bench", "--bench", "model", "--", "ours"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    out = done.stdout
    rates = {}
    for figure in FIGURES:
        # criterion: "lite0-96px/<figure>/ours ... thrpt:  [low unit mid unit high unit]"
        m = re.search(rf"{figure}/ours\s.*?thrpt:\s+\[\S+\s+\S+\s+([\d.]+)\s+(K?)elem/s", out,
                      re.S)
        if m is None:
            raise SystemExit(f"no throughput of {figure}/ours in the bench's output:\n{out}")
        rates[figure] = float(m[1]) * (1000.0 if m[2] == "K" else 1.0)
    m = re.search(r"([\d.]+) GFLOP per image; matmul-2048 peak ([\d.]+) GFLOP/s", out)
    if m is None:
        raise SystemExit(f"no FLOP line in the bench's output:\n{out}")
    return rates, float(m[1]), float(m[2])


def theirs(threads, seconds):
    """PyTorch's images/s per figure and memory format."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rates = {}
    for fmt_name, fmt in [("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)]:
        model = lite0().to(memory_format=fmt)

        model.eval()
        x = torch.rand(256, 3, SIZE, SIZE).to(memory_format=fmt)

        def infer():
            with torch.inference_mode():
                model(x)

        rates[f"inference-256/{fmt_name}"] = rate(infer, 256, seconds)

        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.0075, momentum=0.9, nesterov=True,
                              weight_decay=7.5e-4)
        xt = torch.rand(176, 3, SIZE, SIZE).to(memory_format=fmt)
        yt = torch.arange(176) % 2

        def train():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()

        rates[f"train-step-176/{fmt_name}"] = rate(train, 176, seconds)
    return rates


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0, help="time per PyTorch measurement")
    args = p.parse_args()
    rust, gflop, peak = ours()
    torch_rates = theirs(args.threads, args.seconds)
    print(f"torch {torch.__version__}, {args.threads} threads; {gflop:.3f} GFLOP per image; "
          f"matmul peak {peak:.0f} GFLOP/s")
    print("| figure | ours | PyTorch NCHW | PyTorch channels_last | ours / PyTorch's best "
          "| ours, % of peak | PyTorch's best, % of peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    share = {f: 100.0 * passes * gflop / peak for f, passes in FIGURES.items()}
    for figure in FIGURES:
        nchw, last = torch_rates[f"{figure}/nchw"], torch_rates[f"{figure}/channels_last"]
        best = max(nchw, last)
        print(f"| {figure} | {rust[figure]:.0f} | {nchw:.0f} | {last:.0f} | "
              f"{rust[figure] / best:.2f} | {rust[figure] * share[figure]:.0f}% | "
              f"{best * share[figure]:.0f}% |")
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "ours": rust,
                      "pytorch": torch_rates, "gflop_per_image": gflop, "peak_gflops": peak}))


if __name__ == "__main__":
    main()
