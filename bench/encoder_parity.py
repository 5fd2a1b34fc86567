"""The core encoder against a bare nn.LSTM of the same shape, on each of its call paths: forward + backward.

    .venv/bin/python bench/encoder_parity.py          # the speech, translation and music shapes; a table

LSTMEncoder wraps nn.LSTM (embedding, input dropout, lengths); the wrapper should cost nothing. Each row times
the encoder and the bare module it should match, alternately (paired: load drifts hit both alike), and gives
the median of bare time / encoder time (1.00 = parity; above 0.95 is within this machine's noise):

- `no lengths`: encoder(x) against lstm(x).
- `lengths, outputs only` (need_state=False, the padded fused path every task's training takes) against
  lstm(x) on the padded batch. A bidirectional encoder also reverses each sequence within its length, so
  that the backward direction starts at the sequence's end: correct, and a cost the bare call does not pay.
- `lengths, with state` (packed) against lstm(pack_padded_sequence(x)) and pad_packed_sequence.
Dropout is 0 in both, so both do the same arithmetic.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core import LSTMEncoder  # noqa: E402

# the tasks' encoder shapes at their default configs: batch, time steps, input size (or vocabulary, embedded),
# hidden per direction, layers, bidirectional
SHAPES = {
    "speech": dict(batch=32, steps=70, input=256, hidden=128, layers=3, bidirectional=True),
    "translation": dict(batch=64, steps=16, vocab=1000, input=128, hidden=128, layers=1, bidirectional=True),
    "music": dict(batch=8, steps=16, input=88, hidden=256, layers=2, bidirectional=False),  # piano-roll windows
}
PATHS = ("no lengths", "lengths, outputs only", "lengths, with state")


def pair(shape: dict, seed: int = 0) -> tuple[LSTMEncoder, nn.Module, nn.LSTM, torch.Tensor, torch.Tensor]:
    """-> (encoder, its embedding or Identity, a bare nn.LSTM with the same weights, inputs, lengths)."""
    torch.manual_seed(seed)
    vocab = shape.get("vocab")
    size = dict(vocab_size=vocab, embedding_dim=shape["input"]) if vocab else dict(input_size=shape["input"])
    encoder = LSTMEncoder(**size, hidden_size=shape["hidden"], num_layers=shape["layers"],
                          bidirectional=shape["bidirectional"], dropout=0.0)
    bare = nn.LSTM(shape["input"], shape["hidden"], num_layers=shape["layers"], bidirectional=shape["bidirectional"],
                   batch_first=True)
    bare.load_state_dict(encoder.lstm.state_dict())
    embed = encoder.embedding if vocab else nn.Identity()
    B, T = shape["batch"], shape["steps"]
    inputs = torch.randint(1, vocab, (B, T)) if vocab else torch.randn(B, T, shape["input"])
    lengths = torch.randint(T // 2, T + 1, (B,))
    lengths[0] = T
    return encoder, embed, bare, inputs, lengths


def calls(shape: dict):
    """path -> (encoder call, bare call), each running forward and backward once."""
    encoder, embed, bare, x, lengths = pair(shape)

    def backward(outputs: torch.Tensor) -> None:
        outputs.sum().backward()

    def bare_packed():
        packed = pack_padded_sequence(embed(x), lengths, batch_first=True, enforce_sorted=False)
        backward(pad_packed_sequence(bare(packed)[0], batch_first=True, total_length=x.shape[1])[0])

    return {
        "no lengths": (lambda: backward(encoder(x).outputs), lambda: backward(bare(embed(x))[0])),
        "lengths, outputs only": (lambda: backward(encoder(x, lengths, need_state=False).outputs),
                                  lambda: backward(bare(embed(x))[0])),
        "lengths, with state": (lambda: backward(encoder(x, lengths).outputs), bare_packed),
    }


def ratio(ours, theirs, repeats: int) -> dict:
    """Median and range of bare seconds / encoder seconds over `repeats` alternating pairs (after a warm-up)."""
    ours(), theirs()
    ratios = []
    for _ in range(repeats):
        start = time.perf_counter()
        ours()
        mid = time.perf_counter()
        theirs()
        ratios.append((time.perf_counter() - mid) / (mid - start))
    ratios.sort()
    return {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}


def measure(repeats: int = 15) -> dict:
    return {f"{task}: {path}": ratio(*call, repeats) for task, shape in SHAPES.items()
            for path, call in calls(shape).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    print(f"{'bare nn.LSTM time / LSTMEncoder time':42} median (min-max)")
    for key, row in measure(args.repeats).items():
        print(f"{key:42} {row['median']:.2f}   ({row['min']:.2f}-{row['max']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
