"""PyTorch eager baseline for tools/gpu/cuda_bench.cc.

The same MLP 784-512-512-10 (ReLU), cross-entropy from logits, Adam(lr=1e-3,
eps=1e-7), one train step per iteration at batch 128 and 8192, f32 (TF32 off,
as sequent's cuBLASLt calls compute in plain f32). The batch is already on the
GPU (no host-to-device copy, unlike sequent's step, which uploads its feeds).
Also the CNN conv32-pool-conv64-pool-dense128-dense10 of cuda_bench (28x28x1
input, 3x3 ReLU convolutions, 2x2 max pooling; PyTorch's NCHW layout, cuDNN
autotuning on, TF32 off) at batch 256.
Prints lines in cuda_bench's format:
  bench torch_eager_train_step batch <B> ms_per_step <t> samples_per_s <s>
  bench torch_eager_cnn_train_step batch 256 ms_per_step <t> samples_per_s <s>
"""

import sys

import torch


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 10))


def cnn() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 5 * 5, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10))


def bench(batch: int, steps: int, name: str = "torch_eager_train_step",
          make=mlp, sample_shape=(784,)) -> None:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = make().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs = [torch.rand(batch, *sample_shape, device=dev) for _ in range(2)]
    ys = [torch.randint(0, 10, (batch,), device=dev) for _ in range(2)]

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[i % 2]), ys[i % 2])
        loss.backward()
        opt.step()
        loss.item()  # sequent's Run returns the loss to the host every step

    for i in range(10):
        step(i)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
        enable_timing=True)
    start.record()
    for i in range(steps):
        step(i)
    stop.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(stop) / steps
    print(f"bench {name} batch {batch} ms_per_step {ms:.4f} "
          f"samples_per_s {batch / (ms / 1e3):.0f}", flush=True)


def main() -> int:
    if not torch.cuda.is_available():
        print("error: torch sees no GPU", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"# torch {torch.__version__} on {torch.cuda.get_device_name()}",
          flush=True)
    bench(128, 500)
    bench(8192, 100)
    torch.backends.cudnn.benchmark = True
    bench(256, 200, "torch_eager_cnn_train_step", cnn, (1, 28, 28))
    return 0


if __name__ == "__main__":
    sys.exit(main())
