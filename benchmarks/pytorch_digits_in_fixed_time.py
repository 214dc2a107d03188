"""PyTorch side of `benchmark_fixed_time.py`: the quick-start recipe, trained for a fixed time.

diffusers' `UNet2DModel` built as the U-Net of `examples/train_digits.py` (the `quickstart`
network of `benchmark_pytorch_reference.py`, 701,345 parameters) trains on the digits the
driver wrote as a `.npy` file with the quick-start recipe: batches of 128 in a fresh random
order every epoch (the last batch of 5 kept, as `keras_ddpm.data.load_digits` does), t uniform,
the linear schedule, the epsilon MSE, Adam at 2e-3, and an EMA of decay 0.999 with the warm-up
`min(0.999, (1 + n) / (10 + n))` that `keras_ddpm.DDPM` uses by default. Training stops at the
first step that ends after `--seconds`, counted from before the network is built (as the
Keras side counts from before its model is built). Then `--num` images are drawn with the EMA
weights by diffusers' DPM-Solver++(2M) in 20 steps and saved channels-last in [-1, 1].

It imports neither TensorFlow nor keras_ddpm. Prints one JSON line.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import torch
import torch.nn.functional as F

from benchmark_pytorch_reference import NUM_TIMESTEPS, alphas_cumprod, build_network, sample


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("digits", help=".npy of the training images, (N, 8, 8, 1) in [-1, 1]")
    parser.add_argument("out", help=".npy for the generated images")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count())
    images = torch.from_numpy(np.load(args.digits).transpose(0, 3, 1, 2).copy())
    start = time.perf_counter()
    network = build_network("quickstart")
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    params = [p for p in network.parameters() if p.requires_grad]
    ema = [p.detach().clone() for p in params]
    abar = alphas_cumprod()
    generator = torch.Generator().manual_seed(args.seed)
    steps = epochs = seen = 0
    losses = []
    while time.perf_counter() - start < args.seconds:
        order = torch.randperm(len(images), generator=generator)
        for batch in order.split(128):
            x0 = images[batch]
            t = torch.randint(0, NUM_TIMESTEPS, (len(x0),), generator=generator)
            eps = torch.randn(x0.shape, generator=generator)
            a = abar[t].view(-1, 1, 1, 1)
            loss = F.mse_loss(network(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample, eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            seen += len(x0)
            decay = min(0.999, (1 + steps) / (10 + steps))
            with torch.no_grad():
                torch._foreach_mul_(ema, decay)
                torch._foreach_add_(ema, params, alpha=1 - decay)
            losses.append(loss.item())
            if time.perf_counter() - start >= args.seconds:
                break
        epochs += 1
    train_s = time.perf_counter() - start

    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    network.eval()
    start = time.perf_counter()
    generated = sample(network, args.num, 20, torch.Generator().manual_seed(args.seed))
    sample_s = time.perf_counter() - start
    np.save(args.out, generated.clamp(-1, 1).numpy().transpose(0, 2, 3, 1))
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "train_s": round(train_s, 1),
        "steps": steps, "epochs_started": epochs, "images_per_s": round(seen / train_s, 1),
        "last_100_loss": round(float(np.mean(losses[-100:])), 4), "sample_s": round(sample_s, 2),
        "parameters": sum(p.numel() for p in network.parameters()),
    }))


if __name__ == "__main__":
    main()
