#!/usr/bin/env python3
"""The PyTorch side of `deno task bench`: the same model shapes, timed on the CPU.

Builds PixArt-α in plain PyTorch with the shapes of configs/small_stage2.yaml and
configs/pixart_alpha.yaml, as `deno task bench` runs them (stage 2:
adaLN-single, self-attention, cross-attention over the caption with its key mask, tanh-GELU MLP,
drop-path; the byte-level text encoder and the caption MLP) and times

  train_step/small_stage2, train_step/pixart_alpha    forward, ε-MSE loss, backward,
                                                      global-norm clipping, Adam
  sample_step/small_stage2, sample_step/pixart_alpha  one guided step at batch 64 (both branches
                                                      in one batch)
  matmul/MxKxN                         the square product and the lesson's 384-wide ones (A·B)

printing one JSON line per measurement with the bench's names and fields (`ms` the median,
`gflops` from the same FLOP count) plus `"impl": "pytorch"`. Weights are random: only the shapes
and the work matter. Not part of the test suite; needs PyTorch (Debian: python3-torch, with
libopenblas0-pthread for a threaded BLAS).

  python3 bench/pytorch_compare.py [--only NAME]... [--reps N] [--skip-slow] [--threads N]
"""

import argparse
import json
import math
import os
import sys
import time

# OpenMP's default spin-waiting collapses when another process holds a core (a step took 8×
# longer on a loaded 2-core machine); sleeping waiters cost little when the machine is idle.
# Read once when the runtime starts, so it must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ---- the shipped configs the bench runs (configs/*.yaml; min-SNR weighting left out) ---------

BASE = dict(image_size=32, in_channels=1, mlp_ratio=4, num_classes=10, stage=2, text_depth=2,
            text_heads=4)
MODELS = {
    "small_stage2": dict(config=dict(BASE, patch_size=4, hidden_size=128, depth=4, num_heads=4,
                                     drop_path=0.0, text_len=16, text_width=64),
                         batch=32, lr=1e-3, warmup=500),
    "pixart_alpha": dict(config=dict(BASE, patch_size=8, hidden_size=384, depth=12, num_heads=6,
                                     drop_path=0.1, text_len=16, text_width=128),
                         batch=128, lr=2e-4, warmup=1000),
}
MATMULS = [(1024, 1024, 1024), (2048, 384, 1152), (2048, 1536, 384), (2048, 1152, 384),
           (384, 2048, 1152), (2048, 384, 1536), (1536, 2048, 384)]
SAMPLE_BATCH = 64
GUIDANCE = 4.5
SEED_STEPS = ["train_step/pixart_alpha", "sample_step/pixart_alpha"]


def num_tokens(c):
    return (c["image_size"] // c["patch_size"]) ** 2


def forward_flops(c, B):
    """Multiply-adds ×2 of one forward on a batch of B: linear layers and attention (as bench.ts)."""
    D, N = c["hidden_size"], num_tokens(c)
    T, H = B * N, D * c["mlp_ratio"]
    pp = c["patch_size"] ** 2 * c["in_channels"]

    def lin(rows, inp, out):
        return 2 * rows * inp * out

    other = lin(T, pp, D) + lin(B, 256, D) + lin(B, D, D) + lin(B, D, 6 * D) + lin(T, D, pp)
    blocks = cross_kv = text = att = 0
    L, E = c["text_len"], c["text_width"]
    TL = B * L
    for _ in range(c["text_depth"]):
        text += lin(TL, E, 3 * E) + lin(TL, E, E) + lin(TL, E, 4 * E) + lin(TL, 4 * E, E)
        att += 4 * B * L * L * E
    text += lin(TL, E, D) + lin(TL, D, D)
    for _ in range(c["depth"]):
        blocks += lin(T, D, 3 * D) + lin(T, D, D) + lin(T, D, H) + lin(T, H, D)
        att += 4 * B * N * N * D
        blocks += lin(T, D, D) + lin(T, D, D)
        cross_kv += lin(TL, D, 2 * D)
        att += 4 * B * N * L * D
    return other + blocks + cross_kv + text + att


# ---- the model ----------------------------------------------------------------------------------

def attention(q, k, v, heads, mask=None):
    """Multi-head attention on [B, N, D] tensors; mask [B, Nk] (1 = attend)."""
    B, Nq, D = q.shape
    Nk, dh = k.shape[1], D // heads
    q = q.view(B, Nq, heads, dh).transpose(1, 2)
    k = k.view(B, Nk, heads, dh).transpose(1, 2)
    v = v.view(B, Nk, heads, dh).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(dh))
    if mask is not None:
        s = s.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    o = s.softmax(-1) @ v
    return o.transpose(1, 2).reshape(B, Nq, D)


class TextLayer(nn.Module):
    def __init__(self, E, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.qkv, self.proj = nn.Linear(E, 3 * E), nn.Linear(E, E)
        self.fc1, self.fc2 = nn.Linear(E, 4 * E), nn.Linear(4 * E, E)

    def forward(self, h, mask):
        q, k, v = self.qkv(self.norm1(h)).chunk(3, -1)
        h = h + self.proj(attention(q, k, v, self.heads, mask))
        return h + self.fc2(F.gelu(self.fc1(self.norm2(h))))


class TextEncoder(nn.Module):
    """Pre-LN transformer over UTF-8 bytes (257 ids: byte + 1, 0 = padding)."""

    def __init__(self, c):
        super().__init__()
        E, L = c["text_width"], c["text_len"]
        self.token_embedding = nn.Embedding(257, E)
        self.position_embedding = nn.Parameter(torch.randn(L, E) * 0.02)
        self.layers = nn.ModuleList(TextLayer(E, c["text_heads"]) for _ in range(c["text_depth"]))
        self.norm = nn.LayerNorm(E)

    def forward(self, tokens, mask):
        h = self.token_embedding(tokens) + self.position_embedding
        for layer in self.layers:
            h = layer(h, mask)
        return self.norm(h)


class Block(nn.Module):
    """adaLN-single block: gated self-attention, ungated cross-attention, gated MLP."""

    def __init__(self, D, heads, mlp_ratio):
        super().__init__()
        self.heads = heads
        self.scale_shift_table = nn.Parameter(torch.randn(6, D) / math.sqrt(D))
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.q_linear, self.kv_linear = nn.Linear(D, D), nn.Linear(D, 2 * D)
        self.cross_proj = nn.Linear(D, D)
        self.fc1, self.fc2 = nn.Linear(D, D * mlp_ratio), nn.Linear(D * mlp_ratio, D)

    def forward(self, x, t0, y, key_mask, keep=None):
        D = x.shape[-1]
        mod = self.scale_shift_table[None] + t0  # [B, 6, D]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, 1)
        h = F.layer_norm(x, (D,), eps=1e-6) * (1 + scale_msa) + shift_msa
        q, k, v = self.qkv(h).chunk(3, -1)
        a = gate_msa * self.proj(attention(q, k, v, self.heads))
        x = x + (a if keep is None else a * keep[0][:, None, None])
        ca = attention(self.q_linear(x), *self.kv_linear(y).chunk(2, -1), self.heads, key_mask)
        x = x + self.cross_proj(ca)
        h = F.layer_norm(x, (D,), eps=1e-6) * (1 + scale_mlp) + shift_mlp
        m = gate_mlp * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))
        return x + (m if keep is None else m * keep[1][:, None, None])


class PixArt(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D, p, C = c["hidden_size"], c["patch_size"], c["in_channels"]
        self.x_proj = nn.Linear(C * p * p, D)
        self.register_buffer("pos_embed", torch.randn(1, num_tokens(c), D))
        self.t_fc1, self.t_fc2 = nn.Linear(256, D), nn.Linear(D, D)
        self.t_block = nn.Linear(D, 6 * D)
        self.text_encoder = TextEncoder(c)
        self.y_fc1, self.y_fc2 = nn.Linear(c["text_width"], D), nn.Linear(D, D)
        self.y_embedding = nn.Parameter(torch.randn(c["text_len"], c["text_width"]))
        self.blocks = nn.ModuleList(
            Block(D, c["num_heads"], c["mlp_ratio"]) for _ in range(c["depth"]))
        self.final_table = nn.Parameter(torch.randn(2, D) / math.sqrt(D))
        self.final_linear = nn.Linear(D, p * p * C)

    def forward(self, x, t, tokens, mask, drop, keeps=None):
        c = self.c
        B, C, S, _ = x.shape
        p, D, g = c["patch_size"], c["hidden_size"], S // c["patch_size"]
        # patchify: [B, C, S, S] → [B, N, C·p·p], then the patch embedding as one linear map
        patches = x.view(B, C, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, C * p * p)
        h = self.x_proj(patches) + self.pos_embed
        half = 128
        f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t.float()[:, None] * f[None]
        t_freq = torch.cat([torch.cos(args), torch.sin(args)], -1)
        c_vec = self.t_fc2(F.silu(self.t_fc1(t_freq)))
        # caption: text features, or the learned null caption where dropped
        dropf = drop.float()[:, None, None]
        features = self.text_encoder(tokens, mask) * (1 - dropf) + self.y_embedding[None] * dropf
        y = self.y_fc2(F.gelu(self.y_fc1(features), approximate="tanh"))
        key_mask = torch.where(drop[:, None], torch.ones_like(mask), mask)
        t0 = self.t_block(F.silu(c_vec)).view(B, 6, D)
        for i, blk in enumerate(self.blocks):
            h = blk(h, t0, y, key_mask, None if keeps is None else keeps[i])
        shift, scale = (self.final_table[None] + c_vec[:, None]).chunk(2, 1)
        h = F.layer_norm(h, (D,), eps=1e-6) * (1 + scale) + shift
        h = self.final_linear(h)
        # unpatchify: [B, N, p·p·C] → [B, C, S, S]
        return h.view(B, g, g, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, S, S)


# ---- measurements -------------------------------------------------------------------------------

def r3(x):
    return round(x * 1000) / 1000


def median(xs):
    s = sorted(xs)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2


def time_reps(reps, body):
    """One untimed run, then `reps` timed ones; returns (warm-up ms, [ms])."""
    t = time.perf_counter()
    body()
    warm = (time.perf_counter() - t) * 1000
    ms = []
    for _ in range(reps):
        t = time.perf_counter()
        body()
        ms.append((time.perf_counter() - t) * 1000)
    return warm, ms


def emit(line):
    print(json.dumps(dict(line, impl="pytorch")), flush=True)


def captions(c, B, gen, p_drop):
    """Byte tokens of short captions ("seven" / "7"-like lengths), their mask and drop flags."""
    L = c["text_len"]
    lengths = torch.randint(1, 6, (B,), generator=gen).clamp(max=L)
    mask = (torch.arange(L)[None] < lengths[:, None]).float()
    tokens = torch.randint(1, 257, (B, L), generator=gen) * mask.long()
    drop = torch.rand(B, generator=gen) < p_drop
    return tokens, mask, drop


def bench_matmul(m, k, n, reps):
    a, b = torch.randn(m, k), torch.randn(k, n)
    warm, ms = time_reps(reps, lambda: a @ b)
    med = median(ms)
    emit(dict(name=f"matmul/{m}x{k}x{n}", ms=r3(med), gflops=r3(2 * m * k * n / med / 1e6),
              flop=2 * m * k * n, warmup_ms=r3(warm), reps=reps))


def bench_train(key, reps):
    spec = MODELS[key]
    c, B = spec["config"], spec["batch"]
    torch.manual_seed(0)
    model = PixArt(c)
    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=spec["lr"], betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / spec["warmup"]))
    gen = torch.Generator().manual_seed(7)
    S, C = c["image_size"], c["in_channels"]
    x0 = torch.rand(B, C, S, S, generator=gen) * 2 - 1
    t = torch.randint(0, 1000, (B,), generator=gen)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float()
    tokens, mask, drop = captions(c, B, gen, 0.2)
    keep_p = 1 - c["drop_path"]
    keeps = [[(torch.rand(B, generator=gen) < keep_p).float() / keep_p for _ in range(2)]
             for _ in range(c["depth"])]
    last = {}

    def step():
        noise = torch.randn(B, C, S, S)
        a = abar[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(model(xt, t, tokens, mask, drop, keeps), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        last["loss"] = loss.item()

    warm, ms = time_reps(reps, step)
    flop = 3 * forward_flops(c, B)
    med = median(ms)
    emit(dict(name=f"train_step/{key}", ms=r3(med), gflops=r3(flop / med / 1e6), flop=flop,
              gflop=r3(flop / 1e9), params=sum(p.numel() for p in params),
              warmup_ms=r3(warm), loss=r3(last["loss"]), reps=reps))


def bench_sample(key, reps):
    spec = MODELS[key]
    c, B = spec["config"], SAMPLE_BATCH
    torch.manual_seed(0)
    model = PixArt(c).eval()
    gen = torch.Generator().manual_seed(5)
    S, C = c["image_size"], c["in_channels"]
    x = torch.randn(B, C, S, S, generator=gen)
    tokens, mask, _ = captions(c, B, gen, 0)
    # conditional and unconditional branches in one batch of 2B, as PixArt.guidedEps does
    tokens2 = torch.cat([tokens, torch.zeros_like(tokens)])
    mask2 = torch.cat([mask, torch.zeros_like(mask)])
    drop2 = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)])
    t = torch.full((2 * B,), 500)

    def step():
        with torch.no_grad():
            out = model(torch.cat([x, x]), t, tokens2, mask2, drop2)
            cond, uncond = out.chunk(2)
            return uncond + GUIDANCE * (cond - uncond)

    warm, ms = time_reps(reps, step)
    flop = forward_flops(c, 2 * B)
    med = median(ms)
    emit(dict(name=f"sample_step/{key}", ms=r3(med), gflops=r3(flop / med / 1e6), flop=flop,
              gflop=r3(flop / 1e9), batch=B, forward_batch=2 * B, guidance=GUIDANCE,
              warmup_ms=r3(warm), reps=reps))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[],
                    help="an exact name, else every name containing it; repeatable")
    ap.add_argument("--reps", type=int, help="timed repetitions (default 5; seed steps 1)")
    ap.add_argument("--skip-slow", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="intra-op threads (default: every core)")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    names = ["adapter"] + [f"matmul/{m}x{k}x{n}" for m, k, n in MATMULS]
    for key in MODELS:
        names += [f"train_step/{key}", f"sample_step/{key}"]
    if a.list:
        print("\n".join(names))
        return
    want = names
    if a.only:
        chosen = set()
        for p in a.only:
            hits = [p] if p in names else [n for n in names if p in n]
            if not hits:
                sys.exit(f"--only '{p}' matches no measurement (see --list)")
            chosen.update(hits)
        want = [n for n in names if n in chosen]
    if a.skip_slow:
        want = [n for n in want if n not in SEED_STEPS]
    torch.set_num_threads(a.threads)
    reps = a.reps or 5
    seed_reps = a.reps or 1
    if "adapter" in want:
        emit(dict(name="adapter", ms=None, gflops=None, torch=torch.__version__,
                  threads=torch.get_num_threads(), cpus=os.cpu_count(),
                  omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                  load_avg=[r3(x) for x in os.getloadavg()]))
    for m, k, n in MATMULS:
        if f"matmul/{m}x{k}x{n}" in want:
            bench_matmul(m, k, n, reps)
    for key in MODELS:
        r = seed_reps if key == "pixart_alpha" else reps
        if f"train_step/{key}" in want:
            bench_train(key, r)
        if f"sample_step/{key}" in want:
            bench_sample(key, r)


if __name__ == "__main__":
    main()
