"""Zoo part 5: transformer layers and blocks, MLP-Mixer, Swin, a GRU and a DLRM in plain torch.

Attention is written out (no nn.MultiheadAttention / scaled_dot_product_attention) so the exported
graph is QKV projections, batched matmuls, softmax and an output projection. Masks and Swin's
relative-position bias are precomputed constants (buffers/parameters), as they are at inference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    """Multi-head self-attention with a fused QKV projection.

    `causal` adds a constant (seq, seq) -1e4 mask above the diagonal; `pos_bias` adds a learned
    (heads, seq, seq) bias (T5's relative-position bias, a constant at inference);
    `kv_heads` < heads gives grouped-query attention; `rope` applies rotary embeddings to q and k;
    `scale=False` omits the 1/sqrt(d) factor (T5)."""

    def __init__(self, dim, heads, seq=None, causal=False, qkv_bias=True, kv_heads=None, rope=False, scale=True,
                 pos_bias=False):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads or heads, dim // heads
        self.qkv = nn.Linear(dim, (heads + 2 * self.kv_heads) * self.hd, bias=qkv_bias)
        self.out = nn.Linear(dim, dim, bias=qkv_bias)
        self.scale, self.rope = (1 / math.sqrt(self.hd) if scale else 1.0), rope
        mask = torch.triu(torch.full((seq, seq), -1e4), diagonal=1) if causal else None
        self.register_buffer("mask", mask, persistent=False)
        self.pos_bias = nn.Parameter(torch.randn(heads, seq, seq) * 0.02) if pos_bias else None
        if rope:
            freqs = torch.outer(torch.arange(seq).float(), 1e4 ** (-torch.arange(0, self.hd, 2).float() / self.hd))
            angles = torch.cat([freqs, freqs], -1)
            self.register_buffer("cos", angles.cos(), persistent=False)
            self.register_buffer("sin", angles.sin(), persistent=False)

    def _rotate(self, t):
        half = self.hd // 2
        return t * self.cos + torch.cat([-t[..., half:], t[..., :half]], -1) * self.sin

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).split([self.heads * self.hd, self.kv_heads * self.hd, self.kv_heads * self.hd], -1)
        q = q.reshape(b, s, self.heads, self.hd).transpose(1, 2)
        k, v = (t.reshape(b, s, self.kv_heads, self.hd).transpose(1, 2) for t in (k, v))
        if self.rope:
            q, k = self._rotate(q), self._rotate(k)
        if self.kv_heads != self.heads:  # grouped-query attention: share each K/V head across a group
            rep = self.heads // self.kv_heads
            k, v = (t[:, :, None].expand(b, self.kv_heads, rep, s, self.hd).reshape(b, self.heads, s, self.hd)
                    for t in (k, v))
        scores = torch.matmul(q * self.scale if self.scale != 1.0 else q, k.transpose(-1, -2))
        if self.mask is not None:
            scores = scores + self.mask
        if self.pos_bias is not None:
            scores = scores + self.pos_bias
        context = torch.matmul(torch.softmax(scores, -1), v)
        return self.out(context.transpose(1, 2).reshape(b, s, self.heads * self.hd))


class Block(nn.Module):
    """Transformer layer: pre- or post-norm attention + feed-forward (`ffn` is the hidden width)."""

    def __init__(self, dim, heads, ffn, pre_norm=True, norm=nn.LayerNorm, act=nn.GELU, bias=True, **attn):
        super().__init__()
        self.pre_norm = pre_norm
        self.attn = Attention(dim, heads, qkv_bias=bias, **attn)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn, bias=bias), act(), nn.Linear(ffn, dim, bias=bias))
        self.norm1, self.norm2 = norm(dim), norm(dim)

    def forward(self, x):
        if self.pre_norm:
            x = x + self.attn(self.norm1(x))
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.ffn(x))


def _tokens(batch_size, seq, dim):
    return (torch.randn(batch_size, seq, dim),)


def _gpt2(batch_size, seq):
    block = Block(768, 12, 3072, act=lambda: nn.GELU(approximate="tanh"), seq=seq, causal=True)
    return block, _tokens(batch_size, seq, 768)


def gpt2_block_seq64(batch_size: int):
    """One GPT-2 (124M) decoder block: pre-LN, causal mask, fused QKV 768->2304, tanh-GELU FFN 3072, seq 64."""
    return _gpt2(batch_size, 64)


def gpt2_block_seq256(batch_size: int):
    """One GPT-2 (124M) decoder block: pre-LN, causal mask, fused QKV 768->2304, tanh-GELU FFN 3072, seq 256."""
    return _gpt2(batch_size, 256)


def t5_small_layer(batch_size: int):
    """One T5-small encoder layer: RMSNorm pre-norm, no biases, unscaled attention plus a (8, 256, 256)
    relative-position bias (the bucketed bias is a constant at inference), ReLU FFN 2048, hidden 512, seq 256."""
    block = Block(512, 8, 2048, norm=RMSNorm, act=nn.ReLU, bias=False, seq=256, scale=False, pos_bias=True)
    return block, _tokens(batch_size, 256, 512)


def bert_large_layer(batch_size: int):
    """One BERT-large encoder layer: post-LN, hidden 1024, 16 heads, GELU FFN 4096, seq 128."""
    return Block(1024, 16, 4096, pre_norm=False), _tokens(batch_size, 128, 1024)


def distilbert_layer_seq384(batch_size: int):
    """One DistilBERT encoder layer (BERT-base shape: hidden 768, 12 heads, FFN 3072, post-LN) at the
    SQuAD sequence length 384."""
    return Block(768, 12, 3072, pre_norm=False), _tokens(batch_size, 384, 768)


def llama_block_seq128(batch_size: int):
    """One TinyLlama-1.1B decoder block (prefill, seq 128): RMSNorm, rotary embeddings, grouped-query
    attention (32 query / 4 KV heads, head dim 64), causal mask, SwiGLU FFN 5632, no biases, hidden 2048."""

    class LlamaBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2 = RMSNorm(2048), RMSNorm(2048)
            self.attn = Attention(2048, 32, seq=128, causal=True, qkv_bias=False, kv_heads=4, rope=True)
            self.gate_up, self.down = nn.Linear(2048, 2 * 5632, bias=False), nn.Linear(5632, 2048, bias=False)

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            gate, up = self.gate_up(self.norm2(x)).chunk(2, -1)
            return x + self.down(F.silu(gate) * up)

    return LlamaBlock(), _tokens(batch_size, 128, 2048)


class PatchEncoder(nn.Module):
    """ViT/DeiT: 16x16 patch conv, class token, position embedding, pre-LN layers, head on the class token."""

    def __init__(self, dim, heads, depth, num_classes=1000):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 16, 16)
        self.cls, self.pos = nn.Parameter(torch.randn(1, 1, dim)), nn.Parameter(torch.randn(1, 197, dim))
        self.layers = nn.Sequential(*[Block(dim, heads, 4 * dim) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, img):
        x = self.patch(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.layers(x))[:, 0])


def deit_tiny(batch_size: int):
    """DeiT-Ti (ViT-Ti/16): hidden 192, 3 heads, FFN 768, 12 layers, 224x224 image (197 tokens)."""
    return PatchEncoder(192, 3, 12), (torch.randn(batch_size, 3, 224, 224),)


def whisper_tiny_encoder(batch_size: int):
    """Whisper-tiny audio encoder: two conv1d (80->384 k3, 384->384 k3/2) + GELU on a 30 s log-mel
    (80 x 3000), position embedding, 4 pre-LN layers (384 hidden, 6 heads, FFN 1536, 1500 tokens), final LN."""

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv1d(80, 384, 3, padding=1), nn.Conv1d(384, 384, 3, 2, 1)
            self.pos = nn.Parameter(torch.randn(1500, 384))
            self.layers = nn.Sequential(*[Block(384, 6, 1536) for _ in range(4)])
            self.norm = nn.LayerNorm(384)

        def forward(self, mel):
            x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2) + self.pos
            return self.norm(self.layers(x))

    return Encoder(), (torch.randn(batch_size, 80, 3000),)


def mlp_mixer_s16(batch_size: int):
    """MLP-Mixer S/16: 16x16 patches (196 tokens, 512 channels), 8 layers of token-mixing MLP (196-256-196,
    on the transposed tokens) and channel-mixing MLP (512-2048-512), GELU, pre-LN, 224x224 image."""

    class MixerLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(512), nn.LayerNorm(512)
            self.token = nn.Sequential(nn.Linear(196, 256), nn.GELU(), nn.Linear(256, 196))
            self.channel = nn.Sequential(nn.Linear(512, 2048), nn.GELU(), nn.Linear(2048, 512))

        def forward(self, x):
            x = x + self.token(self.norm1(x).transpose(1, 2)).transpose(1, 2)
            return x + self.channel(self.norm2(x))

    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch, self.layers = nn.Conv2d(3, 512, 16, 16), nn.Sequential(*[MixerLayer() for _ in range(8)])
            self.norm, self.head = nn.LayerNorm(512), nn.Linear(512, 1000)

        def forward(self, img):
            x = self.layers(self.patch(img).flatten(2).transpose(1, 2))
            return self.head(self.norm(x).mean(1))

    return Mixer(), (torch.randn(batch_size, 3, 224, 224),)


class GRU(nn.Module):
    """Stacked GRU written by hand and unrolled over time (same scheme as torch_models.UnrolledLSTM)."""

    def __init__(self, input_size: int, hidden: int, num_layers: int):
        super().__init__()
        self.hidden = hidden
        sizes = [input_size] + [hidden] * (num_layers - 1)
        self.w_ih = nn.ModuleList(nn.Linear(n, 3 * hidden) for n in sizes)
        self.w_hh = nn.ModuleList(nn.Linear(hidden, 3 * hidden) for _ in sizes)

    def forward(self, x):  # (seq, batch, input)
        steps = x.shape[0]
        for w_ih, w_hh in zip(self.w_ih, self.w_hh):
            h, outputs = x.new_zeros(1, x.shape[1], self.hidden), []
            for x_t in torch.chunk(w_ih(x), steps, dim=0):
                i_r, i_z, i_n = torch.chunk(x_t, 3, dim=2)
                h_r, h_z, h_n = torch.chunk(w_hh(h), 3, dim=2)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
                outputs.append(h)
            x = torch.cat(outputs, dim=0)
        return x


def gru(batch_size: int):
    """2-layer GRU, input 128, hidden 512, 24 time steps, unrolled by hand (a speech/sequence encoder)."""
    return GRU(128, 512, num_layers=2), (torch.randn(24, batch_size, 128),)


class DLRM(nn.Module):
    def __init__(self, tables=(1000, 5000, 10000, 20000, 50000, 2000, 300, 100000), dim: int = 64):
        super().__init__()
        self.bottom = nn.Sequential(nn.Linear(13, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                    nn.Linear(256, dim), nn.ReLU())
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(n, dim) * 0.01) for n in tables)
        n = len(tables) + 1
        self.top = nn.Sequential(nn.Linear(dim + n * n, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                 nn.Linear(256, 1), nn.Sigmoid())

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        feats = torch.stack([x] + [F.embedding(sparse[:, i], t) for i, t in enumerate(self.tables)], 1)
        inter = torch.bmm(feats, feats.transpose(1, 2)).flatten(1)
        return self.top(torch.cat([x, inter], 1))


def dlrm(batch_size: int):
    """DLRM-style recommender (Criteo-like): 13 dense features through a 512-256-64 MLP, 8 embedding
    tables (300..100000 rows, dim 64) looked up by an int64 index input, pairwise dot interaction (the
    full 9x9 Gram matrix, not only its upper triangle), 512-256-1 top MLP. Two inputs: dense, indices."""
    return DLRM(), (torch.randn(batch_size, 13), torch.randint(0, 300, (batch_size, 8)))


BUILDERS = {f.__name__: f for f in (gpt2_block_seq64, gpt2_block_seq256, t5_small_layer, bert_large_layer,
                                     distilbert_layer_seq384, llama_block_seq128, deit_tiny, whisper_tiny_encoder,
                                     mlp_mixer_s16, gru, dlrm)}
