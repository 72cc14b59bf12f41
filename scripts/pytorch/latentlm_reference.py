#!/usr/bin/env python3
"""PyTorch reference outputs of the public LatentLM model for our shipped weights.

Run from the repository root:

    /usr/bin/python3 scripts/pytorch/latentlm_reference.py --out testdata/pytorch

It needs only Debian's python3-torch (apt-get install python3-torch), which brings
python3-numpy. The `safetensors` package is used if present, else the file is parsed by
hand. It is a maintainer tool: nothing in the Go build or tests runs it; the Go tests
read the files it writes.

What it is
----------
A restatement, in a few plain torch modules, of the class-conditional image model of the
public LatentLM code (github.com/microsoft/unilm, folder LatentLM/, read at commit
768a3c873f598bb9b4d4dfb9267b099e35f8fe56), written from that code's module structure and
under its module names, so that our weights (docs/WEIGHTS.md) load into it by name. No
line is copied; each module cites the public file and class it restates:

  LatentLM/models/RMSNorm.py           RMSNorm
  LatentLM/models/kernel/rotary.py     apply_rotary_pos_emb, rotate_every_two
  LatentLM/models/DiT.py               modulate, TimestepEmbedder, LabelEmbedder, SwiGLU,
                                       FinalLayer
  LatentLM/models/Transformer.py       Attention, Block, MLPBlock, ConditionLayer,
                                       Transformer (build_rel_pos, forward_parallel,
                                       forward_recurrent, forward_diffusion,
                                       sample_with_cfg, forward_with_cfg)
  LatentLM/schedule/ddpm.py            betas_for_alpha_bar ("cosine")
  LatentLM/schedule/dpm_solver.py      DPMSolverMultistepScheduler (a copy of diffusers'):
                                       set_timesteps ("linspace"), convert_model_output,
                                       dpm_solver_first_order_update,
                                       multistep_dpm_solver_second_order_update, step
  LatentLM/sample_hf.py                p_sample loop, CFG batch [labels; null labels]

Sequence layouts
----------------
The public forward_parallel feeds `[class] z0 ... z_{N-2}` (N = 49 items for 7x7 latents)
at positions 0 ... N-1; the hidden state at position i conditions z_i. Ours
(lm.Config.ClassItems) is `[class] <BOL> z0 ... z_{N-1} <EOL>` at positions 0 ... N+2;
the hidden state at position k+1 conditions z_k. Every output below is in OUR layout: the
same modules run over the token sequence `[class] <BOL> z0 ... zk`, with <BOL> embedded
by the extra row of our tok_embeddings (the public y_embedder table has no such row). The
public RoPE table only covers input_size**2 positions; the restatement evaluates the same
angle formula at any position.

Weights
-------
weights/latentlm-mnist/model.safetensors uses the public names except:
  tok_embeddings.weight [classes+3, d]: rows 0 ... classes (null class last) become
      y_embedder.embedding_table.weight; rows classes+1 (<BOL>) and classes+2 (<EOL>) are
      kept beside the module (not public parameters);
  lm_head.weight: dropped (the class-conditional public model has no softmax head).
Everything else loads by its own name; the load is strict and the script stops if any
key is missing or unexpected.

Fixed inputs (all stored in the output, so no consumer needs torch's generator)
------------------------------------------------------------------------------
  labels [3, 7]; null class = classes (10); <BOL> = classes + 1 (11).
  One torch.Generator seeded 0 draws, in this order, with torch.randn:
    backbone.latents [2, 3, C]   z0 z1 z2 of the two prefixes
    head.xt          [4, C]      noisy latents for the head check
    sample.noise     [2, 4, C]   initial noise of latents z0 ... z3 of the two images
  head.t = [999, 500, 37, 0]; head.cond = backbone.conditions rows (b, pos) =
  (0, 1), (0, 2), (1, 1), (1, 2), i.e. the conditions of z0 and z1.

Outputs (testdata/pytorch/)
---------------------------
latentlm_reference.safetensors (metadata first, tensors sorted by name, as our Go writer):
  backbone.labels         I32 [2]
  backbone.latents        F32 [2, 3, C]
  backbone.hidden_normed  F32 [2, 5, d]   RMSNorm(last block output) (= lm.Config.Backbone)
  backbone.conditions     F32 [2, 5, hw]  condition_layer(h)          (= lm.Config.Condition)
  head.xt, head.t, head.cond, head.out    F32: forward_diffusion      (= lm.Config.Head)
  sample.noise            F32 [2, 4, C]
  sample.latents          F32 [2, 4, C]   z0 ... z3 by 20-step DPM-Solver++ 2M, CFG 4,
                                          lambda_min_clipped -5.1 (ours), float64 schedule
  sample_noclip.latents   F32 [2, 4, C]   the same with lambda_min_clipped -inf (the public
                                          sample_hf.py default: no clipping)
  dpm20.plan, dpm20_noclip.plan  F64 [20, 4]  per step (t, A, B, C) in the form of
                                          diffusion.Step: x <- A x + B x0 + C x0_prev
latentlm_reference.json: the same settings in words, the load report, and the
"linspace" timestep lists for 5, 10, 20, 25, 50, 250 steps (numpy round-half-to-even,
as diffusers), for both clip settings, beside what round-half-away-from-zero (Go's
math.Round) gives for the same formula.

Public-layout mode (--public FILE --config JSON)
------------------------------------------------
    /usr/bin/python3 scripts/pytorch/latentlm_reference.py \
        --public testdata/pytorch/public_tiny.safetensors \
        --config testdata/pytorch/public_tiny_config.json --out testdata/pytorch

FILE is a state dict in the public names (what `latentlm export --format pytorch`
writes); JSON is a config.json (or its "config" object) of layout public, whose
hyper-parameters size the public Transformer. The load is strict: every public
parameter present with its shape, nothing else. The mode writes:

  public_init.safetensors   the state dict (public names, metadata format=pt) of a
      Transformer of the same hyper-parameters, freshly initialised: torch.manual_seed(0)
      (PUBLIC_INIT_SEED), then the modules built in __init__ order, each with torch's own
      default initialisation (nn.Linear: kaiming-uniform; nn.Embedding: N(0, 1)). It
      stands for a checkpoint produced by the public code's module structure (the public
      initialize_weights is not restated: any values of the right names and shapes are
      a valid public checkpoint).
  public_tiny_reference.safetensors, public_tiny_reference.json: for both FILE
      (prefix "tiny.") and public_init.safetensors read back from disk (prefix "init."),
      in the PUBLIC layout (Transformer.forward_parallel, positions 0 ... K-1 hold
      [class] z0 ... z_{K-2}; position i conditions z_i):
        public.labels        I32 [2]        (3, 7)
        public.latents       F32 [2, K, C]  z0 ... z_{K-1}, K = PUBLIC_ITEMS (4)
        public.head_xt       F32 [4, C]
        public.head_t        F32 [4]        (999, 500, 37, 0)
        <p>.hidden_normed    F32 [2, K, d]  RMSNorm(last block output)
        <p>.conditions       F32 [2, K, d]  condition_layer(h) = forward_parallel's output
        <p>.head_cond        F32 [4, d]     <p>.conditions rows (0,0), (0,K-1), (1,0), (1,K-1)
        <p>.head_out         F32 [4, C]     forward_diffusion(head_xt, head_t, head_cond)
      with torch.Generator().manual_seed(0) drawing, in order, public.latents and
      public.head_xt.

Solver precision: the schedule and the step coefficients are computed in float64 (as our
diffusion package does on the host); every coefficient is rounded to float32 when it
multiplies a float32 tensor. diffusers instead computes them in float32 (alphas_cumprod,
sigmas and lambdas are float32 tensors); the script also runs that path and reports the
largest difference in the JSON (`diffusers_float32_path`).
"""

import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PUBLIC_COMMIT = "768a3c873f598bb9b4d4dfb9267b099e35f8fe56"

LABELS = [3, 7]
PREFIX_LATENTS = 3                 # backbone check: [class] <BOL> z0 z1 z2
HEAD_T = [999.0, 500.0, 37.0, 0.0]
SAMPLE_ITEMS = 4                   # sampling check: z0 ... z3
SAMPLE_STEPS = 20
CFG_SCALE = 4.0
OURS_LAMBDA_MIN = -5.1             # diffusion.LambdaMinClipped
TIMESTEP_STEP_COUNTS = [5, 10, 20, 25, 50, 250]
T_TRAIN = 1000

PUBLIC_ITEMS = 4                   # public-layout check: [class] z0 z1 z2 conditions z0 ... z3
PUBLIC_INIT_SEED = 0               # torch.manual_seed of public_init.safetensors


# ---------------------------------------------------------------------------------------
# safetensors I/O (the format: u64 little-endian header length, JSON header, raw data)
# ---------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": (torch.float32, "<f4"), "F64": (torch.float64, "<f8"), "I32": (torch.int32, "<i4"),
              "I64": (torch.int64, "<i8")}


def read_safetensors(path):
    """Returns ({name: tensor}, metadata). Uses the safetensors package when present."""
    try:
        from safetensors import safe_open  # noqa: F401  (optional)
        from safetensors.torch import load_file
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(path), meta
    except ImportError:
        pass
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        tdtype, npdtype = _ST_DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=npdtype).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
        assert out[name].dtype == tdtype
    return out, meta


def write_safetensors(path, tensors, metadata):
    """Writes the layout of our Go writer (safetensors.Encode): compact header with the
    metadata first and tensors sorted by name at contiguous offsets, padded with spaces
    to a multiple of 8 bytes."""
    names = sorted(tensors)
    parts = []
    if metadata:
        parts.append('"__metadata__":' + json.dumps({k: metadata[k] for k in sorted(metadata)},
                                                     separators=(",", ":"), ensure_ascii=True))
    blobs, offset = [], 0
    for name in names:
        t = tensors[name].detach().contiguous()
        code = {torch.float32: "F32", torch.float64: "F64", torch.int32: "I32", torch.int64: "I64"}[t.dtype]
        raw = t.numpy().astype(_ST_DTYPES[code][1]).tobytes()
        parts.append(json.dumps(name) + ':{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'
                     % (code, ",".join(str(d) for d in t.shape), offset, offset + len(raw)))
        blobs.append(raw)
        offset += len(raw)
    header = ("{" + ",".join(parts) + "}").encode("utf-8")
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for raw in blobs:
            f.write(raw)


# ---------------------------------------------------------------------------------------
# The public modules, restated (flatten_input=True: every latent item is a vector)
# ---------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """LatentLM/models/RMSNorm.py, RMSNorm; every use in the model is elementwise_affine=False,
    eps=1e-6: x / sqrt(mean(x^2) + eps), computed in float32."""

    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        y = x.float()
        return (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)


def modulate(x, shift, scale):
    """LatentLM/models/DiT.py, modulate."""
    return x * (1 + scale) + shift


def rotary_interleaved(x, cos, sin):
    """LatentLM/models/kernel/rotary.py, apply_rotary_pos_emb with rotate_every_two (the
    function Transformer.py imports as apply_rotary_emb): pairs (2j, 2j+1) of x [B, T, H, hd]
    rotate by the angle of column j of cos/sin [T, hd/2]."""
    c = cos.repeat_interleave(2, dim=-1)[:, None, :]
    s = sin.repeat_interleave(2, dim=-1)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    swapped = torch.stack((-odd, even), dim=-1).flatten(-2)    # (x0, x1) -> (-x1, x0)
    return x * c + swapped * s


class SwiGLU(nn.Module):
    """LatentLM/models/DiT.py, SwiGLU: fc2(silu(fc1 x) * gate x), no biases."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.fc2(F.silu(self.fc1(x)) * self.gate(x))


def swiglu_hidden(dim, mlp_ratio):
    """Transformer.py Block/MLPBlock: int(hidden_size * mlp_ratio * 2 / 3 / 64) * 64."""
    return int(dim * mlp_ratio * 2 / 3 / 64) * 64


class Attention(nn.Module):
    """LatentLM/models/Transformer.py, Attention: one fused qkv projection whose output is
    read as num_heads + 2*num_kv_heads heads of width head_dim (q heads, then k, then v),
    interleaved rotary embeddings on q and k, grouped-query attention (query head i reads
    kv head i // n_rep, as repeat_kv), causal scaled dot-product attention (scale
    1/sqrt(head_dim), SDPA's default), output projection."""

    def __init__(self, dim, num_heads, num_kv_heads):
        super().__init__()
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim + 2 * num_kv_heads * self.head_dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, rel_pos):
        b, n, c = x.shape
        heads = self.qkv(x).reshape(b, n, self.num_heads + 2 * self.num_kv_heads, self.head_dim)
        q, k, v = torch.split(heads, [self.num_heads, self.num_kv_heads, self.num_kv_heads], dim=2)
        q, k = rotary_interleaved(q, *rel_pos), rotary_interleaved(k, *rel_pos)
        rep = self.num_heads // self.num_kv_heads
        q = q.transpose(1, 2)
        k = k.transpose(1, 2).repeat_interleave(rep, dim=1)
        v = v.transpose(1, 2).repeat_interleave(rep, dim=1)
        # F.scaled_dot_product_attention(q, k, v, is_causal=True) written out (Debian's torch
        # 1.13 predates it): softmax(q k^T / sqrt(hd) + causal mask) v.
        scores = (q @ k.transpose(-2, -1)) * (self.head_dim ** -0.5)
        future = torch.ones(n, n, dtype=torch.bool).triu(1)
        out = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """LatentLM/models/Transformer.py, Block: pre-norm, x += attn(norm1 x); x += mlp(norm2 x)."""

    def __init__(self, dim, num_heads, num_kv_heads, mlp_ratio):
        super().__init__()
        self.norm1 = RMSNorm()
        self.attn = Attention(dim, num_heads, num_kv_heads)
        self.norm2 = RMSNorm()
        self.mlp = SwiGLU(dim, swiglu_hidden(dim, mlp_ratio))

    def forward(self, x, rel_pos):
        x = x + self.attn(self.norm1(x), rel_pos)
        return x + self.mlp(self.norm2(x))


class MLPBlock(nn.Module):
    """LatentLM/models/Transformer.py, MLPBlock (a diffusion-head block): (shift, scale, gate)
    are the three chunks, in that order, of adaLN_modulation = Sequential(SiLU, Linear(w, 3w));
    x += gate * mlp(modulate(norm x, shift, scale))."""

    def __init__(self, width, mlp_ratio):
        super().__init__()
        self.norm = RMSNorm()
        self.mlp = SwiGLU(width, swiglu_hidden(width, mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width, bias=False))

    def forward(self, x, c):
        shift, scale, gate = self.adaLN_modulation(c).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.norm(x), shift, scale))


class FinalLayer(nn.Module):
    """LatentLM/models/DiT.py, FinalLayer: (shift, scale) chunks of
    adaLN_modulation = Sequential(SiLU, Linear(w, 2w)); linear(modulate(norm_final x))."""

    def __init__(self, width, out):
        super().__init__()
        self.norm_final = RMSNorm()
        self.linear = nn.Linear(width, out, bias=False)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width, bias=False))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class ConditionLayer(nn.Module):
    """LatentLM/models/Transformer.py, ConditionLayer: linear(norm_final h)."""

    def __init__(self, dim, width):
        super().__init__()
        self.norm_final = RMSNorm()
        self.linear = nn.Linear(dim, width, bias=False)

    def forward(self, x):
        return self.linear(self.norm_final(x))


class TimestepEmbedder(nn.Module):
    """LatentLM/models/DiT.py, TimestepEmbedder: [cos(t f_k), sin(t f_k)] with
    f_k = exp(-ln(10000) k / 128), k < 128, evaluated in float32 as the public code does,
    then mlp = Sequential(Linear(256, w), SiLU, Linear(w, w))."""

    def __init__(self, width, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width, bias=False), nn.SiLU(),
                                 nn.Linear(width, width, bias=False))

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(t.dtype)

    def forward(self, t):
        return self.mlp(self.timestep_embedding(t, self.freq_dim))


class LabelEmbedder(nn.Module):
    """LatentLM/models/DiT.py, LabelEmbedder: embedding_table has num_classes + 1 rows when
    class dropout is on (the null class is row num_classes). Evaluation only: no dropout."""

    def __init__(self, num_classes, dim):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels):
        return self.embedding_table(labels)


class Transformer(nn.Module):
    """LatentLM/models/Transformer.py, Transformer with flatten_input=True (x_embedder and
    noisy_x_embedder are bias-free Linear(in_channels, hidden_size)). The public class ties
    the head width to hidden_size; so does this one."""

    def __init__(self, dim, depth, heads, kv_heads, mlp_ratio, head_depth, latent, num_classes):
        super().__init__()
        self.head_dim = dim // heads
        self.x_embedder = nn.Linear(latent, dim, bias=False)
        self.noisy_x_embedder = nn.Linear(latent, dim, bias=False)
        self.t_embedder = TimestepEmbedder(dim)
        self.y_embedder = LabelEmbedder(num_classes, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, kv_heads, mlp_ratio) for _ in range(depth)])
        self.diffusion_blocks = nn.ModuleList([MLPBlock(dim, mlp_ratio) for _ in range(head_depth)])
        self.condition_layer = ConditionLayer(dim, dim)
        self.final_layer = FinalLayer(dim, latent)

    def build_rel_pos(self, positions):
        """Transformer.build_rel_pos (posi_scale 1): angle_j = 1 / 10000 ** linspace(0, 1, hd/2)
        in float32, times the position; cos and sin of that. The public table stops at
        input_size**2 positions; here any position is allowed."""
        angle = 1.0 / (10000 ** torch.linspace(0, 1, self.head_dim // 2, dtype=torch.float32))
        freqs = positions.to(angle)[:, None] * angle
        return torch.cos(freqs), torch.sin(freqs)

    def run_blocks(self, x):
        """The loop of forward_parallel over embedded items x [B, L, d] at positions 0 ... L-1.
        Returns the last block's output h (before any norm)."""
        rel_pos = self.build_rel_pos(torch.arange(x.shape[1]))
        for block in self.blocks:
            x = block(x, rel_pos)
        return x

    def forward_parallel(self, latents, labels):
        """Transformer.forward_parallel, the PUBLIC layout: [class] z0 ... z_{N-2}. Returns the
        conditions [B, N, d]; position i conditions z_i. (Not used for the outputs; kept so the
        two layouts can be compared side by side.)"""
        x = torch.cat((self.y_embedder(labels)[:, None], self.x_embedder(latents)[:, :-1]), dim=1)
        return self.condition_layer(self.run_blocks(x))

    def forward_diffusion(self, xt, t, condition):
        """Transformer.forward_diffusion for one latent per row: c = condition + t_embedder(t);
        the head blocks and final layer see c (each applies SiLU itself)."""
        c = condition + self.t_embedder(t)
        x = self.noisy_x_embedder(xt)
        for block in self.diffusion_blocks:
            x = block(x, c)
        return self.final_layer(x, c)

    def forward_with_cfg(self, x, t, condition, cfg_scale):
        """Transformer.forward_with_cfg: both streams see the same x; rows 0 ... n-1 of
        condition are the conditional streams, n ... 2n-1 the null-class streams.
        Here x holds only the n conditional rows (the public code drops the other half)."""
        eps = self.forward_diffusion(torch.cat([x, x]), t.repeat(2), condition)
        cond_eps, uncond_eps = eps.chunk(2)
        return uncond_eps + cfg_scale * (cond_eps - uncond_eps)


class OurLayout:
    """Our sequence layout on the public modules: [class] <BOL> z0 ... zk.
    extra_rows holds tok_embeddings rows <BOL>, <EOL> (ids classes+1, classes+2)."""

    def __init__(self, model, extra_rows):
        self.model, self.bol = model, extra_rows[0]

    def embed(self, labels, latents):
        m = self.model
        tok = m.y_embedder(labels)[:, None]                         # [B, 1, d]
        bol = self.bol.expand(labels.shape[0], 1, -1)               # [B, 1, d]
        return torch.cat([tok, bol, m.x_embedder(latents)], dim=1)  # [B, 2 + k, d]

    def backbone(self, labels, latents):
        """(RMSNorm(h), condition_layer(h)) at every position, as lm.Config.Backbone and
        lm.Config.Condition return them."""
        h = self.model.run_blocks(self.embed(labels, latents))
        return self.model.condition_layer.norm_final(h), self.model.condition_layer(h)


# ---------------------------------------------------------------------------------------
# Cosine schedule and DPM-Solver++ 2M as diffusers' DPMSolverMultistepScheduler runs it
# ---------------------------------------------------------------------------------------

def cosine_betas():
    """LatentLM/schedule/ddpm.py, betas_for_alpha_bar("cosine"), max_beta 0.999, in doubles."""
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    return [min(1 - f((i + 1) / T_TRAIN) / f(i / T_TRAIN), 0.999) for i in range(T_TRAIN)]


def alphas_cumprod(dtype):
    """diffusers: betas as a float32 tensor, cumprod of 1 - betas in float32. Our Go keeps
    doubles throughout; dtype=torch.float64 gives that."""
    betas = torch.tensor(cosine_betas(), dtype=dtype)
    return torch.cumprod(1.0 - betas, dim=0)


def last_timestep(ac, lambda_min):
    """set_timesteps: clipped_idx = searchsorted(flip(lambda_t), lambda_min_clipped), where
    lambda_t = log(sqrt(ac)) - log(sqrt(1 - ac)); last = T - clipped_idx."""
    lam = torch.log(torch.sqrt(ac)) - torch.log(torch.sqrt(1 - ac))
    idx = torch.searchsorted(torch.flip(lam, [0]), torch.tensor(lambda_min, dtype=ac.dtype))
    return T_TRAIN - int(idx)


def linspace_timesteps(last, n):
    """set_timesteps, timestep_spacing "linspace": np.linspace(0, last-1, n+1), rounded by
    numpy (half to even), reversed, final 0 dropped."""
    return [int(v) for v in np.linspace(0, last - 1, n + 1).round()[::-1][:-1]]


def go_round_timesteps(last, n):
    """The same list as our diffusion.DPMSolverPP writes it:
    math.Round(float64(last-1) * float64(n-i) / float64(n)), Go's math.Round rounding half
    away from zero (all values here are non-negative)."""
    out = []
    for i in range(n):
        v = float(last - 1) * float(n - i) / float(n)
        r = math.floor(v)
        out.append(int(r + 1 if v - r >= 0.5 else r))
    return out


class DPMSolverPP2M:
    """A restatement of the DPMSolverMultistepScheduler arithmetic that sample_hf.py uses
    (algorithm_type dpmsolver++, solver_order 2, solver_type midpoint, prediction epsilon,
    final_sigmas_type zero, lower_order_final True, no thresholding).

    sigmas are the VE sigmas sqrt((1 - ac)/ac) at the timesteps, then 0; for a sigma,
    alpha = 1/sqrt(sigma^2 + 1), sigma_t = sigma * alpha, lambda = log alpha - log sigma_t.
    Step i: x0 = (x - sigma_t(s0) eps) / alpha_t(s0) (convert_model_output); with
    h = lambda(t) - lambda(s0):
      first order (i == 0, and the last step): x = (sigma_t/sigma_s0) x - alpha_t (e^-h - 1) x0
      second order otherwise, r0 = (lambda(s0) - lambda(s1)) / h, D1 = (x0 - x0_prev) / r0:
          x = (sigma_t/sigma_s0) x - alpha_t (e^-h - 1) x0 - 0.5 alpha_t (e^-h - 1) D1.
    The last step goes to sigma 0 (lambda = +inf) and returns x0."""

    def __init__(self, n, lambda_min, dtype=torch.float64):
        ac = alphas_cumprod(dtype)
        self.last = last_timestep(ac, lambda_min)
        self.timesteps = linspace_timesteps(self.last, n)
        ve = ((1 - ac) / ac) ** 0.5
        if dtype == torch.float32:
            # diffusers: np.interp over the float32 table (exact at integer timesteps), then
            # .astype(np.float32) with the final 0.
            sig = np.interp(self.timesteps, np.arange(T_TRAIN), ve.numpy())
            sig = np.concatenate([sig, [0.0]]).astype(np.float32)
            self.sigmas = torch.from_numpy(sig)
        else:
            self.sigmas = torch.cat([ve[self.timesteps], torch.zeros(1, dtype=dtype)])
        self.dtype = dtype

    def alpha_sigma_lambda(self, i):
        s = self.sigmas[i]
        alpha = 1 / ((s ** 2 + 1) ** 0.5)
        sigma = s * alpha
        return alpha, sigma, torch.log(alpha) - torch.log(sigma)

    def order(self, i):
        n = len(self.timesteps)
        return 1 if i == 0 or i == n - 1 else 2

    def plan(self):
        """The steps as (t, A, B, C) of x <- A x + B x0 + C x0_prev (diffusion.Step), in float64."""
        rows = []
        for i, t in enumerate(self.timesteps):
            a_t, s_t, l_t = self.alpha_sigma_lambda(i + 1)
            a_s, s_s, l_s = self.alpha_sigma_lambda(i)
            h = l_t - l_s
            phi = -a_t * (torch.exp(-h) - 1.0)
            A, B, C = s_t / s_s, phi, torch.zeros(())
            if self.order(i) == 2:
                r0 = (l_s - self.alpha_sigma_lambda(i - 1)[2]) / h
                B, C = phi * (1 + 0.5 / r0), -phi * 0.5 / r0
            rows.append([float(t), float(A), float(B), float(C)])
        return rows

    @torch.no_grad()
    def sample(self, denoise, x):
        """Runs the solver from x [n, C] (float32) with denoise(x, t) -> eps."""
        x0_prev = None
        for i, t in enumerate(self.timesteps):
            eps = denoise(x, torch.full((x.shape[0],), float(t), dtype=torch.float32))
            a_s, s_s, l_s = self.alpha_sigma_lambda(i)
            a_t, s_t, l_t = self.alpha_sigma_lambda(i + 1)
            x0 = (x - s_s * eps) / a_s
            h = l_t - l_s
            lin = a_t * (torch.exp(-h) - 1.0)
            if self.order(i) == 1:
                x = (s_t / s_s) * x - lin * x0
            else:
                r0 = (l_s - self.alpha_sigma_lambda(i - 1)[2]) / h
                d1 = (1.0 / r0) * (x0 - x0_prev)
                x = (s_t / s_s) * x - lin * x0 - 0.5 * lin * d1
            x = x.to(torch.float32)
            x0_prev = x0
        return x


# ---------------------------------------------------------------------------------------

def load_model(weights_dir):
    with open(os.path.join(weights_dir, "config.json")) as f:
        cfg = json.load(f)["config"]
    if cfg["head_dim"] != cfg["dim"]:
        sys.exit("head_dim %d != dim %d: the public Transformer ties the head width to hidden_size"
                 % (cfg["head_dim"], cfg["dim"]))
    classes = cfg["vocab"]["classes"]
    model = Transformer(cfg["dim"], cfg["depth"], cfg["heads"], cfg["kv_heads"], cfg["mlp_ratio"],
                        cfg["head_depth"], cfg["latent_channels"], classes)
    path = os.path.join(weights_dir, "model.safetensors")
    ours, _ = read_safetensors(path)
    sd = {k: v for k, v in ours.items() if k not in ("tok_embeddings.weight", "lm_head.weight")}
    tok = ours["tok_embeddings.weight"]
    sd["y_embedder.embedding_table.weight"] = tok[:classes + 1]
    extra_rows = tok[classes + 1:]
    shape_errors = [k for k, v in sd.items() if k in model.state_dict() and model.state_dict()[k].shape != v.shape]
    res = model.load_state_dict(sd, strict=False)
    report = {
        "missing_keys": sorted(res.missing_keys),
        "unexpected_keys": sorted(res.unexpected_keys),
        "shape_mismatches": sorted(shape_errors),
        "mapped": {"tok_embeddings.weight[0:%d]" % (classes + 1): "y_embedder.embedding_table.weight"},
        "kept_aside": {"tok_embeddings.weight[%d:%d]" % (classes + 1, tok.shape[0]):
                       "<BOL>, <EOL> (ids %d, %d); not public parameters" % (classes + 1, classes + 2)},
        "dropped": ["lm_head.weight"],
        "public_parameters": len(model.state_dict()),
    }
    if res.missing_keys or res.unexpected_keys or shape_errors:
        sys.exit("weights do not load strictly: %s" % json.dumps(report, indent=1))
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    model.eval()
    return model, cfg, extra_rows, report, sha


def read_public_config(path):
    """The "config" object of a config.json (or the object itself)."""
    with open(path) as f:
        d = json.load(f)
    cfg = d.get("config", d)
    if cfg.get("layout") != "public":
        sys.exit("%s: layout %r: the public code reads [class] z0 ... (want layout public)" % (path, cfg.get("layout")))
    if cfg["head_dim"] != cfg["dim"]:
        sys.exit("%s: head_dim %d != dim %d: the public Transformer ties the head width to hidden_size"
                 % (path, cfg["head_dim"], cfg["dim"]))
    if cfg["vocab"].get("extra", 0):
        sys.exit("%s: extra tokens: the public class-conditional model has only its class table" % path)
    return cfg


def public_model(cfg):
    return Transformer(cfg["dim"], cfg["depth"], cfg["heads"], cfg["kv_heads"], cfg["mlp_ratio"],
                       cfg["head_depth"], cfg["latent_channels"], cfg["vocab"]["classes"])


def load_public_strict(path, cfg):
    """Loads a state dict in the public names into the restatement, strictly: the same key
    set and every shape equal. Returns (model, report, sha256, metadata)."""
    model = public_model(cfg)
    sd, meta = read_safetensors(path)
    want = model.state_dict()
    report = {
        "missing_keys": sorted(set(want) - set(sd)),
        "unexpected_keys": sorted(set(sd) - set(want)),
        "shape_mismatches": sorted(k for k in sd if k in want and tuple(want[k].shape) != tuple(sd[k].shape)),
        "dtypes": sorted({str(v.dtype) for v in sd.values()}),
        "public_parameters": len(want),
        "metadata": meta,
    }
    if report["missing_keys"] or report["unexpected_keys"] or report["shape_mismatches"]:
        sys.exit("%s does not load strictly into the public model: %s" % (path, json.dumps(report, indent=1)))
    model.load_state_dict(sd, strict=True)
    model.eval()
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    return model, report, sha, meta


def public_outputs(model, labels, latents, head_xt, head_t):
    """The public layout's forward pass and head: conditions of z0 ... z_{K-1} from
    forward_parallel over [class] z0 ... z_{K-2}, and forward_diffusion on four of them."""
    with torch.no_grad():
        x = torch.cat((model.y_embedder(labels)[:, None], model.x_embedder(latents)[:, :-1]), dim=1)
        h = model.run_blocks(x)
        hidden = model.condition_layer.norm_final(h)
        conds = model.condition_layer(h)
        same = float((conds - model.forward_parallel(latents, labels)).abs().max())
        assert same == 0.0, "forward_parallel differs from its own steps by %g" % same
        k = latents.shape[1] - 1
        head_cond = torch.stack([conds[0, 0], conds[0, k], conds[1, 0], conds[1, k]]).clone()
        head_out = model.forward_diffusion(head_xt, head_t, head_cond)
    return {"hidden_normed": hidden, "conditions": conds, "head_cond": head_cond, "head_out": head_out}


def main_public(args):
    cfg = read_public_config(args.config)
    classes, C = cfg["vocab"]["classes"], cfg["latent_channels"]

    # (1) a freshly initialised public model, saved under the public names
    torch.manual_seed(PUBLIC_INIT_SEED)
    fresh = public_model(cfg)
    init_path = os.path.join(args.out, "public_init.safetensors")
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(init_path, {k: v.detach().clone() for k, v in fresh.state_dict().items()},
                      {"format": "pt", "generator": "scripts/pytorch/latentlm_reference.py --public",
                       "init": "torch.manual_seed(%d); torch default module initialisation" % PUBLIC_INIT_SEED})

    # (2) fixed inputs
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(len(LABELS), PUBLIC_ITEMS, C, generator=gen)
    head_xt = torch.randn(4, C, generator=gen)
    labels = torch.tensor(LABELS)
    head_t = torch.tensor(HEAD_T)

    tensors = {"public.labels": labels.to(torch.int32), "public.latents": latents,
               "public.head_xt": head_xt, "public.head_t": head_t}
    loads = {}
    for prefix, path in (("tiny", args.public), ("init", init_path)):
        model, report, sha, _ = load_public_strict(path, cfg)
        outs = public_outputs(model, labels, latents, head_xt, head_t)
        for name, t in outs.items():
            tensors["%s.%s" % (prefix, name)] = t
        loads[prefix] = {"file": os.path.relpath(path), "sha256": sha, "load_report": report,
                         "max_abs": {n: float(t.abs().max()) for n, t in outs.items()}}

    st_path = os.path.join(args.out, "public_tiny_reference.safetensors")
    write_safetensors(st_path, tensors, {"generator": "scripts/pytorch/latentlm_reference.py --public",
                                         "tiny_sha256": loads["tiny"]["sha256"],
                                         "init_sha256": loads["init"]["sha256"],
                                         "public_code": "microsoft/unilm LatentLM/ @ " + PUBLIC_COMMIT})
    doc = {
        "generator": "scripts/pytorch/latentlm_reference.py --public %s --config %s"
                     % (os.path.relpath(args.public), os.path.relpath(args.config)),
        "public_code": {"repository": "microsoft/unilm", "folder": "LatentLM/", "commit": PUBLIC_COMMIT},
        "config": cfg,
        "torch": torch.__version__, "numpy": np.__version__,
        "checkpoints": loads,
        "public_init": "torch.manual_seed(%d), then the modules in __init__ order with torch's default "
                       "initialisation (nn.Linear kaiming-uniform, nn.Embedding N(0,1))" % PUBLIC_INIT_SEED,
        "inputs": {
            "labels": LABELS, "null_class": classes,
            "generator": "torch.Generator().manual_seed(0); torch.randn draws in order: public.latents [2,%d,%d], "
                         "public.head_xt [4,%d]" % (PUBLIC_ITEMS, C, C),
            "layout": "public (Transformer.forward_parallel): positions 0..%d hold [class] z0..z%d; the output at "
                      "position i is the condition of z_i" % (PUBLIC_ITEMS - 1, PUBLIC_ITEMS - 2),
            "head": "<p>.head_cond = <p>.conditions rows (0,0), (0,%d), (1,0), (1,%d); head_t = %s"
                    % (PUBLIC_ITEMS - 1, PUBLIC_ITEMS - 1, HEAD_T),
        },
    }
    js_path = os.path.join(args.out, "public_tiny_reference.json")
    with open(js_path, "w") as f:
        f.write(compact_json(doc) + "\n")
    for prefix, l in loads.items():
        print("%s: %s (sha256 %s...): %d public parameters loaded strictly; max|cond| %.4g, max|head| %.4g"
              % (prefix, l["file"], l["sha256"][:12], l["load_report"]["public_parameters"],
                 l["max_abs"]["conditions"], l["max_abs"]["head_out"]))
    for p in (init_path, st_path, js_path):
        print("wrote %s (%d bytes)" % (p, os.path.getsize(p)))


def compact_json(v, indent=0):
    """json with sorted keys, one key per line, and lists of scalars on one line."""
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [pad + " " + json.dumps(str(k)) + ": " + compact_json(v[k], indent + 1) for k in sorted(v)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
        return "[\n" + ",\n".join(pad + " " + compact_json(x, indent + 1) for x in v) + "\n" + pad + "]"
    return json.dumps(v, separators=(", ", ": "))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="weights/latentlm-mnist")
    ap.add_argument("--out", default="testdata/pytorch")
    ap.add_argument("--public", help="public-layout mode: a state dict in the public names "
                    "(latentlm export --format pytorch); needs --config")
    ap.add_argument("--config", help="with --public: the config.json (layout public) that sizes the model")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.public or args.config:
        if not (args.public and args.config):
            sys.exit("--public and --config go together")
        main_public(args)
        return

    model, cfg, extra_rows, report, sha = load_model(args.weights)
    classes, C = cfg["vocab"]["classes"], cfg["latent_channels"]
    null = classes
    ours = OurLayout(model, extra_rows)

    gen = torch.Generator().manual_seed(0)
    z_prefix = torch.randn(len(LABELS), PREFIX_LATENTS, C, generator=gen)
    head_xt = torch.randn(4, C, generator=gen)
    noise = torch.randn(len(LABELS), SAMPLE_ITEMS, C, generator=gen)
    labels = torch.tensor(LABELS)

    with torch.no_grad():
        # (a) backbone over [class] <BOL> z0 z1 z2
        hidden, conds = ours.backbone(labels, z_prefix)
        # (b) diffusion head on the conditions of z0 and z1
        head_cond = conds[:, 1:3].reshape(-1, conds.shape[-1]).clone()
        head_t = torch.tensor(HEAD_T)
        head_out = model.forward_diffusion(head_xt, head_t, head_cond)

        # (c) autoregressive sampling of z0 ... z3 in our layout, guided streams
        def sample(solver):
            zs = torch.zeros(len(LABELS), 0, C)
            both = torch.cat([labels, torch.full_like(labels, null)])
            for k in range(SAMPLE_ITEMS):
                _, c = ours.backbone(both, torch.cat([zs, zs]))
                cond = c[:, -1]                                        # conditions of z_k
                z = solver.sample(lambda x, t: model.forward_with_cfg(x, t, cond, CFG_SCALE), noise[:, k].clone())
                zs = torch.cat([zs, z[:, None]], dim=1)
            return zs

        solvers = {name: DPMSolverPP2M(SAMPLE_STEPS, lam) for name, lam in
                   (("dpm20", OURS_LAMBDA_MIN), ("dpm20_noclip", -math.inf))}
        samples = {name: sample(s) for name, s in solvers.items()}
        f32 = {name: sample(DPMSolverPP2M(SAMPLE_STEPS, lam, torch.float32)) for name, lam in
               (("dpm20", OURS_LAMBDA_MIN), ("dpm20_noclip", -math.inf))}

        # public layout, for the record: the first public condition (class token at position 0)
        pub_first = model.forward_parallel(torch.cat([z_prefix, z_prefix[:, :1]], dim=1), labels)[:, 0]

    tensors = {
        "backbone.labels": labels.to(torch.int32),
        "backbone.latents": z_prefix,
        "backbone.hidden_normed": hidden,
        "backbone.conditions": conds,
        "head.xt": head_xt, "head.t": head_t, "head.cond": head_cond, "head.out": head_out,
        "sample.noise": noise,
        "sample.latents": samples["dpm20"],
        "sample_noclip.latents": samples["dpm20_noclip"],
        "dpm20.plan": torch.tensor(solvers["dpm20"].plan(), dtype=torch.float64),
        "dpm20_noclip.plan": torch.tensor(solvers["dpm20_noclip"].plan(), dtype=torch.float64),
    }
    os.makedirs(args.out, exist_ok=True)
    meta = {"generator": "scripts/pytorch/latentlm_reference.py", "weights_sha256": sha,
            "public_code": "microsoft/unilm LatentLM/ @ " + PUBLIC_COMMIT}
    st_path = os.path.join(args.out, "latentlm_reference.safetensors")
    write_safetensors(st_path, tensors, meta)

    ac32, ac64 = alphas_cumprod(torch.float32), alphas_cumprod(torch.float64)
    timesteps = {}
    for clip_name, lam in (("lambda_min_clipped=-inf (public sample_hf.py default)", -math.inf),
                           ("lambda_min_clipped=-5.1 (ours, diffusion.LambdaMinClipped)", OURS_LAMBDA_MIN)):
        last = last_timestep(ac64, lam)
        entry = {"last_timestep_float64": last, "last_timestep_float32_diffusers": last_timestep(ac32, lam),
                 "numpy_round_half_even": {}, "go_math_round_differs": {}}
        for n in TIMESTEP_STEP_COUNTS:
            ts = linspace_timesteps(last, n)
            entry["numpy_round_half_even"][str(n)] = ts
            go = go_round_timesteps(last, n)
            raw = np.linspace(0, last - 1, n + 1)[::-1][:-1]       # before rounding
            diff = {str(i): {"go": go[i], "numpy": ts[i], "linspace_value": float(raw[i]),
                             "go_value": float(last - 1) * float(n - i) / float(n)}
                    for i in range(n) if go[i] != ts[i]}
            if diff:
                entry["go_math_round_differs"][str(n)] = diff
        timesteps[clip_name] = entry

    doc = {
        "generator": "scripts/pytorch/latentlm_reference.py",
        "public_code": {"repository": "microsoft/unilm", "folder": "LatentLM/", "commit": PUBLIC_COMMIT},
        "weights": {"dir": args.weights, "sha256": sha, "config": cfg},
        "torch": torch.__version__, "numpy": np.__version__,
        "load_report": report,
        "inputs": {
            "labels": LABELS, "null_class": null, "bol_id": classes + 1, "eol_id": classes + 2,
            "generator": "torch.Generator().manual_seed(0); torch.randn draws in order: "
                         "backbone.latents [2,%d,%d], head.xt [4,%d], sample.noise [2,%d,%d]"
                         % (PREFIX_LATENTS, C, C, SAMPLE_ITEMS, C),
            "backbone_layout": "ours: positions 0..%d hold [class] <BOL> z0..z%d"
                               % (PREFIX_LATENTS + 1, PREFIX_LATENTS - 1),
            "head": "head.cond rows = backbone.conditions[(0,1),(0,2),(1,1),(1,2)]; head.t = %s" % HEAD_T,
            "sampling": "z0..z%d of each label: condition = backbone.conditions at the last position of "
                        "[label] <BOL> z0..z(k-1) and of [null] <BOL> z0..z(k-1) (both streams share the "
                        "generated prefix), x = sample.noise[:, k], %d-step DPM-Solver++ 2M, CFG scale %g "
                        "(eps = eps_null + s (eps_class - eps_null)); backbone recomputed over the whole "
                        "prefix at each k (no KV cache)" % (SAMPLE_ITEMS - 1, SAMPLE_STEPS, CFG_SCALE),
        },
        "solver": {
            "form": "diffusers DPMSolverMultistepScheduler: dpmsolver++, order 2, midpoint, epsilon, "
                    "final_sigmas_type zero, lower_order_final; first order at the first and last step",
            "precision": "schedule and coefficients in float64, rounded to float32 where they multiply "
                         "float32 tensors",
            "sample.latents": {"lambda_min_clipped": OURS_LAMBDA_MIN, "timesteps": solvers["dpm20"].timesteps},
            "sample_noclip.latents": {
                "lambda_min_clipped": "-inf", "timesteps": solvers["dpm20_noclip"].timesteps,
                "note": "the first step divides the head's error by alpha_999 (about 4.6e-5), so these latents "
                        "are far outside the data range and ill-conditioned: compare them with a relative "
                        "tolerance (about 1e-4 of max|x|), or not at all"},
            "plan_columns": ["t", "A", "B", "C"],
            "diffusers_float32_path": {
                name: {"max_abs_diff": float((f32[name] - samples[name]).abs().max()),
                       "max_abs": float(samples[name].abs().max())} for name in samples},
        },
        "timesteps_linspace": timesteps,
        "public_layout_note": {
            "first_condition_public_minus_ours_max_abs":
                float((pub_first - conds[:, 0]).abs().max()),
            "meaning": "the condition at position 0 ([class]) is the same in both layouts; the public "
                       "model uses it for z0, ours uses the one at <BOL> (position 1)",
        },
    }
    js_path = os.path.join(args.out, "latentlm_reference.json")
    with open(js_path, "w") as f:
        f.write(compact_json(doc) + "\n")

    # summary
    print("weights %s (sha256 %s...): %d public parameters loaded strictly; missing %s, unexpected %s; "
          "lm_head dropped; <BOL>/<EOL> rows kept aside"
          % (args.weights, sha[:12], report["public_parameters"], report["missing_keys"], report["unexpected_keys"]))
    print("backbone: conditions %s, |c| mean %.4f" % (tuple(conds.shape), conds.abs().mean()))
    print("head: t %s -> out[:, :3]\n%s" % (HEAD_T, head_out[:, :3]))
    for name, s in solvers.items():
        print("%s: last timestep %d, timesteps %s" % (name, s.last, s.timesteps))
        print("  z0 of label %d: %s" % (LABELS[0], samples[name][0, 0].tolist()))
        print("  float32 (diffusers) path max |diff| %.3g" % doc["solver"]["diffusers_float32_path"][name]["max_abs_diff"])
    for clip_name, e in timesteps.items():
        print("%s: last %d; Go math.Round differs for n in %s" % (clip_name, e["last_timestep_float64"],
                                                                 sorted(e["go_math_round_differs"], key=int)))
    for p in (st_path, js_path):
        print("wrote %s (%d bytes)" % (p, os.path.getsize(p)))


if __name__ == "__main__":
    main()
