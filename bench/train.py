"""Training throughput of the four models at the paper's width (k = 42), on synthetic in-memory windows.

    python bench/train.py             # about 2 minutes on a 2-core CPU
    python bench/train.py --quick     # a few seconds
    python bench/train.py --models cnn_cnn --batch-size 4096 --steps 10

For each model and device (CPU, and the GPU when there is one) it prints: training windows/s through the
same step as ``hypo.learn.train`` (on-device permutation, gather, bf16 autocast on CUDA, Adam); the share of the
step spent outside forward/backward (gather, loss bookkeeping, optimizer; goal < 10%); and on CPU the
achieved FLOP rate of the step as a fraction of this machine's measured fp32 matmul rate. Model FLOPs come
from ``torch.utils.flop_counter.FlopCounterMode``; LSTM layers, which it does not see, are counted by hand.
"""

import argparse
import os
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from hypo.learn.losses import make_loss  # noqa: E402
from hypo.learn.models import MODELS, ModelConfig, build_model  # noqa: E402
from hypo.learn.train import TrainStep, epoch_generator, keep_freed_memory, train_epoch  # noqa: E402

MEAN = [0.0, 120.0, 85.0, 70.0, 50.0, 1.0, 45.0]
STD = [0.4, 15.0, 10.0, 9.0, 14.0, 0.2, 8.0]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device, n=2048, seconds=1.0):
    """Measured fp32 matmul FLOP/s (TF32 off) on ``device``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
        sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def lstm_flops(model, batch):
    """Forward + backward FLOPs of the LSTM layers (backward = 2 x forward), which FlopCounterMode misses."""
    total = 0
    for m in model.modules():
        if isinstance(m, torch.nn.LSTM):
            steps = 60 if m.input_size == 7 else 5  # lstm runs over the window, cnn_lstm over 5 pooled steps
            total += 3 * 2 * batch * steps * 4 * m.hidden_size * (m.input_size + m.hidden_size)
    return total


def step_flops(model, loss_fn, x, y):
    """Forward + backward FLOPs of one training step on the batch ``x``."""
    with FlopCounterMode(display=False) as fc:
        loss_fn(model(x).float(), y).backward()
    model.zero_grad(set_to_none=True)
    counted = fc.get_total_flops()
    probe = torch.nn.LSTM(3, 4, batch_first=True).to(x.device)
    with FlopCounterMode(display=False) as fc_probe:
        probe(torch.zeros(2, 3, 3, device=x.device))
    return counted + (lstm_flops(model, len(x)) if fc_probe.get_total_flops() == 0 else 0)


def bench_model(name, device, batch, steps, amp):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name, 42), MEAN, STD).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, fused=device.type == "cuda")
    loss_fn = make_loss("focal", 2.0).to(device)
    n = batch * steps
    x = (torch.tensor(MEAN) + torch.tensor(STD) * torch.randn(n, 60, 7)).to(device)
    y = torch.randint(0, 3, (n,)).to(device)

    # the full step, as hypo.learn.train runs it (one warm-up epoch first)
    step = TrainStep(model, opt, loss_fn, amp)
    train_epoch(step, x[: batch * min(steps, 2)], y[: batch * min(steps, 2)], batch, epoch_generator(0, 0, device))
    sync(device)
    t0 = time.perf_counter()
    train_epoch(step, x, y, batch, epoch_generator(0, 1, device))
    sync(device)
    t_step = (time.perf_counter() - t0) / steps

    # forward + backward alone, on a batch already in place
    xb, yb = x[:batch].contiguous(), y[:batch].contiguous()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb)
        loss_fn(logits.float(), yb).backward()
        model.zero_grad(set_to_none=True)
    sync(device)
    t_fb = (time.perf_counter() - t0) / steps
    flops = step_flops(model, loss_fn, xb, yb)
    return {"windows_per_s": batch / t_step, "step_ms": 1e3 * t_step, "outside": max(0.0, 1 - t_fb / t_step),
            "flops_per_step": flops, "flop_rate": flops / t_step}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small batches, 2 steps: a few seconds")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--batch-size", type=int, default=None, help="default 4096 (the paper), 512 with --quick")
    p.add_argument("--steps", type=int, default=None, help="timed steps per model (default 8, 2 with --quick)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--glibc-default", action="store_true",
                   help="keep glibc's malloc thresholds (hypo.learn.train raises them on CPU; see keep_freed_memory)")
    args = p.parse_args()
    kept = False if args.glibc_default else keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch_size or (512 if args.quick else 4096)
    steps = args.steps or (2 if args.quick else 8)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {batch}, {steps} timed steps, "
          f"glibc malloc thresholds {'raised' if kept else 'default'}")
    for device in devices:
        amp = device.type == "cuda"
        peak = matmul_peak(device, n=1024 if args.quick else 2048, seconds=0.3 if args.quick else 1.0)
        if device.type == "cuda":  # as hypo.learn.train sets them
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"\n{name}: fp32 matmul peak {peak / 1e9:,.1f} GFLOP/s" + (" (training in bf16 autocast)" if amp else ""))
        print(f"{'model':<10} {'windows/s':>11} {'step ms':>9} {'outside f/b':>12} {'GFLOP/step':>11} {'of peak':>8}")
        for m in args.models:
            r = bench_model(m, device, batch, steps, amp)
            frac = f"{100 * r['flop_rate'] / peak:7.1f}%" if device.type == "cpu" else f"{'-':>8}"
            print(f"{m:<10} {r['windows_per_s']:>11,.0f} {r['step_ms']:>9.1f} {100 * r['outside']:>11.1f}% "
                  f"{r['flops_per_step'] / 1e9:>11.3f} {frac}", flush=True)


if __name__ == "__main__":
    main()
