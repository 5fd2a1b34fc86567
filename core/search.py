"""Decoding written once against ``decoder.step(token, state, memory) -> (logits, state)``.

Every function carries the recurrent state forward, so each new token costs one step, never a
re-run of the prefix. Shapes: B batch, K beam size, V vocabulary, L generated length.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Protocol, Sequence

import torch
from torch import Tensor

from core.attention import Memory
from core.lean import LeanStep, for_generation


class Steppable(Protocol):
    def step(self, token: Tensor, state, memory: Optional[Memory] = None) -> tuple[Tensor, object]: ...

    def reorder_state(self, state, index: Tensor): ...


class Hypotheses(NamedTuple):
    tokens: Tensor  # (B, L), `pad` after the end of sequence
    scores: Optional[Tensor]  # (B,) total log-probability (beam search: after length penalty); None if not asked for


def prime(decoder: Steppable, prefix: Tensor, state=None, memory: Optional[Memory] = None) -> tuple[Tensor, object]:
    """Feed all but the last token of prefix (B, P); returns that last token (B,) and the state to go on from."""
    if prefix.shape[1] > 1:
        _, state, _ = decoder(prefix[:, :-1], state, memory)
    return prefix[:, -1], state


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Keep the k most likely tokens and/or the smallest set whose probability reaches top_p."""
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass of the better tokens
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # the best one always stays
        logits = torch.empty_like(logits).scatter_(-1, order, sorted_logits)
    return logits


def _decode(decoder, start, max_len, state, memory, eos, pad, banned, choose, score) -> Hypotheses:
    """The loop greedy and sample share. Generation at batch 1 is bound by per-step overhead, so a step does
    only what it needs: chosen tokens are kept in a list and stacked once, banned tokens are -inf in the lean
    step's output bias (else one in-place fill), log-probabilities are taken only when scores are asked for,
    and a single sequence ends on its own eos without the batch's masks."""
    decoder = for_generation(decoder)
    B, device = start.shape[0], start.device
    total = torch.zeros(B, device=device) if score else None
    banned_index = torch.tensor(sorted(set(banned)), dtype=torch.long, device=device) if banned else None
    if banned_index is not None and isinstance(decoder, LeanStep):
        decoder, banned_index = decoder.banning(banned_index), None  # masked once, in its output bias
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    chosen: list[Tensor] = []
    token = start
    for _ in range(max_len):
        logits, state = decoder.step(token, state, memory)  # (B, V)
        if banned_index is not None:
            logits.index_fill_(1, banned_index, float("-inf"))
        token = choose(logits)
        logp = logits.float().log_softmax(dim=-1).gather(1, token[:, None])[:, 0] if score else None
        if eos is None or B == 1:
            chosen.append(token)
            if score:
                total += logp
            if eos is not None and int(token) == eos:
                break
            continue
        if score:
            total += logp.masked_fill(finished, 0.0)
        token = token.masked_fill(finished, pad)
        chosen.append(token)
        finished |= token == eos
        if finished.all():
            break
    tokens = torch.stack(chosen, dim=1) if chosen else torch.full((B, 0), pad, dtype=torch.long, device=device)
    return Hypotheses(tokens, total)


def greedy(
    decoder: Steppable,
    start: Tensor,
    max_len: int,
    *,
    state=None,
    memory: Optional[Memory] = None,
    eos: Optional[int] = None,
    pad: int = 0,
    banned: Sequence[int] = (),
    score: bool = True,
) -> Hypotheses:
    """The most likely token at every step. start (B,) -> tokens (B, L) and, with score, their log-probability."""
    return _decode(decoder, start, max_len, state, memory, eos, pad, banned, lambda logits: logits.argmax(dim=-1), score)


def sample(
    decoder: Steppable,
    start: Tensor,
    max_len: int,
    *,
    state=None,
    memory: Optional[Memory] = None,
    eos: Optional[int] = None,
    pad: int = 0,
    banned: Sequence[int] = (),
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: Optional[torch.Generator] = None,
    score: bool = True,
) -> Hypotheses:
    """Ancestral sampling with temperature, top-k and nucleus (top-p) filtering. start (B,) -> tokens (B, L) and,
    with score, their log-probability."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature} (use greedy for the argmax)")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")

    noise: list[Tensor] = []  # Gumbel noise for the coming steps, drawn in blocks

    def choose(logits: Tensor) -> Tensor:
        # Gumbel-max: argmax(logits + G), G = -log(Exp(1)) per token, is a draw from softmax(logits); with the
        # noise drawn many steps at a time it costs two operations a step instead of softmax and multinomial.
        if not noise:
            steps = max(1, min(256, 2**22 // logits.numel()))  # a block of at most 16 MB
            block = torch.empty((steps, *logits.shape), device=logits.device).exponential_(generator=generator)
            noise.extend(block.log_().neg_().unbind(0))
        scaled = logits.float() if temperature == 1.0 else logits.float() / temperature
        return (filter_logits(scaled, top_k, top_p) + noise.pop()).argmax(dim=-1)

    return _decode(decoder, start, max_len, state, memory, eos, pad, banned, choose, score)


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT length normalisation ((5 + |Y|) / 6) ** alpha (Wu et al. 2016); alpha 0 scores raw sums."""
    return ((5.0 + lengths) / 6.0) ** alpha


def beam_search(
    decoder: Steppable,
    start: Tensor,
    max_len: int,
    *,
    beam_size: int,
    eos: int,
    state=None,
    memory: Optional[Memory] = None,
    pad: int = 0,
    alpha: float = 0.0,
) -> Hypotheses:
    """Batched beam search: B sentences x K beams advance as one batch of B*K steps.

    Finished hypotheses stay in their beam, extended only by `pad` at no cost, and compete with live
    ones on length-normalised score. start (B,) -> best tokens (B, L) and their normalised scores.
    """
    decoder = for_generation(decoder)
    B, K = start.shape[0], beam_size
    device = start.device
    repeat = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,)
    if state is not None:
        state = decoder.reorder_state(state, repeat)
    if memory is not None:
        memory = memory.index_select(repeat)
    token = start[repeat]
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live beam at first, so the K beams do not start as copies
    lengths = torch.zeros(B, K, device=device)
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    steps: list[tuple[Tensor, Tensor]] = []  # (token, parent beam) per step, for backtracking
    offsets = torch.arange(B, device=device)[:, None] * K
    for _ in range(max_len):
        logits, state = decoder.step(token, state, memory)
        logp = logits.float().log_softmax(dim=-1).view(B, K, -1)  # (B, K, V)
        V = logp.shape[-1]
        ended = torch.full_like(logp, float("-inf"))
        ended[..., pad] = 0.0
        logp = torch.where(finished[..., None], ended, logp)
        new_lengths = lengths + (~finished).float()
        candidates = scores[..., None] + logp  # (B, K, V)
        ranked = candidates / length_penalty(new_lengths, alpha)[..., None]
        best = ranked.view(B, K * V).topk(K, dim=-1).indices  # (B, K)
        parent, token_bk = best // V, best % V
        scores = candidates.view(B, K * V).gather(1, best)
        lengths = new_lengths.gather(1, parent)
        finished = finished.gather(1, parent) | (token_bk == eos)
        steps.append((token_bk, parent))
        state = decoder.reorder_state(state, (parent + offsets).view(-1))
        token = token_bk.view(-1)
        if finished.all():
            break
    final = scores / length_penalty(lengths, alpha)
    beam = final.argmax(dim=1)  # (B,)
    best_score = final.gather(1, beam[:, None])[:, 0]
    out = []
    for token_bk, parent in reversed(steps):
        out.append(token_bk.gather(1, beam[:, None]))
        beam = parent.gather(1, beam[:, None])[:, 0]
    return Hypotheses(torch.cat(out[::-1], dim=1), best_score)
