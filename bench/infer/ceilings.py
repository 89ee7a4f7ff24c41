"""The GPU's two ceilings for the infer rooflines: device-to-device copy bandwidth
(bytes read + bytes written) and the bf16 GEMM rate at the prefill shapes of
bench-1b and bench-8b (8192 tokens per step), each the median of 20 timed runs
after warm-up, timed with CUDA events, on random (non-zero) data."""
import torch


def timed(fn, n=20):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return sorted(ts)[len(ts) // 2]


def main():
    n = 1 << 30  # 2 GiB of bf16 per buffer
    src = torch.randn(n, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src))
    print(f"copy: {2 * src.numel() * 2 / t / 1e12:.2f} TB/s (read + write, 2 GiB buffers)")
    del src, dst
    for name, (m, k, nn) in {"1b gate_up 8192x2048x16384": (8192, 2048, 16384),
                             "8b gate_up 8192x4096x28672": (8192, 4096, 28672),
                             "8b down 8192x14336x4096": (8192, 14336, 4096)}.items():
        a = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
        w = torch.randn(nn, k, dtype=torch.bfloat16, device="cuda")
        t = timed(lambda: a @ w.T)
        print(f"gemm {name}: {2 * m * k * nn / t / 1e12:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
