"""Character decoder: teacher-forced forward for training, greedy decoding with a KV cache."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.model.layers import MLP, Attention, sinusoidal_positions


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the frames, MLP; each pre-norm + residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.self_norm = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads, dropout)
        self.cross_norm = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads, dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, y: Tensor, self_mask: Tensor | None, cross_kv: tuple[Tensor, Tensor],
        cross_mask: Tensor, cache: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:  # fmt: skip
        """(B, L, D) -> (B, L, D) and this layer's self-attention keys/values.

        With ``cache`` (keys/values of the earlier positions) ``y`` holds only the new
        positions; the returned keys/values cover all of them (the next step's cache).
        """
        h = self.self_norm(y)
        k, v = self.self_attn.project_kv(h)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        y = y + self.dropout(self.self_attn.attend(h, k, v, self_mask))
        y = y + self.dropout(self.cross_attn.attend(self.cross_norm(y), *cross_kv, cross_mask))
        return y + self.mlp(self.mlp_norm(y)), (k, v)


def memory_mask(valid: Tensor) -> Tensor:
    """(B, T) -> (B, 1, 1, T) cross-attention mask; a sequence with no valid frame sees frame 0."""
    first = torch.zeros_like(valid)
    first[:, 0] = True
    return (valid | (first & ~valid.any(dim=1, keepdim=True)))[:, None, None, :]


class Decoder(nn.Module):
    """(B, L) tokens + (B, T, D) frames -> (B, L, V) logits."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: int, blocks: int, vocab_size: int,
        max_target_len: int, dropout: float,
    ):  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.register_buffer(
            "positions", sinusoidal_positions(max_target_len, dim), persistent=False
        )
        self.blocks = nn.ModuleList(
            DecoderBlock(dim, heads, mlp_ratio, dropout) for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.max_target_len = max_target_len

    def forward(self, tokens: Tensor, memory: Tensor, valid: Tensor) -> Tensor:
        """Teacher forcing: position t sees tokens 0..t only."""
        length = tokens.shape[1]
        y = self.embed(tokens) + self.positions[:length]
        i = torch.arange(length, device=tokens.device)
        causal = i.unsqueeze(1) >= i.unsqueeze(0)  # (L, L)
        cross = memory_mask(valid)
        for block in self.blocks:
            y, _ = block(y, causal, block.cross_attn.project_kv(memory), cross)
        return self.head(self.norm(y))

    def greedy(
        self, memory: Tensor, valid: Tensor, steps: int | None = None, argmax=None
    ) -> tuple[Tensor, Tensor]:
        """Greedy decoding with a self-attention KV cache, ``steps`` tokens (a fixed count).

        Every step emits a token; after the end token a row emits pad, so a whole row decodes to
        the phrase. ``argmax`` may replace ``Tensor.argmax`` (export uses ``topk``).

        Returns:
            tokens (B, steps) int64 and logits (B, steps, V).
        """
        steps = steps or self.max_target_len
        argmax = argmax or (lambda t: t.argmax(-1))
        b = memory.shape[0]
        cross = memory_mask(valid)
        cross_kv = [blk.cross_attn.project_kv(memory) for blk in self.blocks]
        cache: list[tuple[Tensor, Tensor] | None] = [None] * len(self.blocks)
        token = torch.full((b,), vocab.SOS, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        pad = torch.full_like(token, vocab.PAD)
        out_tokens, out_logits = [], []
        for t in range(steps):
            y = self.embed(token).unsqueeze(1) + self.positions[t]  # (B, 1, D)
            for j, block in enumerate(self.blocks):
                y, cache[j] = block(y, None, cross_kv[j], cross, cache[j])
            logits = self.head(self.norm(y))[:, 0]  # (B, V)
            token = torch.where(done, pad, argmax(logits))
            done = done | (token == vocab.EOS)
            out_tokens.append(token)
            out_logits.append(logits)
        return torch.stack(out_tokens, 1), torch.stack(out_logits, 1)
