"""Core encoder speed: packed sequences against the padded fast path (`need_state=False`), forward + backward.

    .venv/bin/python bench/encoder.py                      # the speech model's encoder shape
    .venv/bin/python bench/encoder.py --hidden 256 --layers 2 --unidirectional

On CPU, PyTorch runs a packed batch one time step at a time, and every step's backward writes into a
zeroed copy of the whole input; a padded batch goes through the fused oneDNN kernel instead. Both give
the same outputs (tests/test_core.py checks it).
"""
from __future__ import annotations

import argparse
import time

import torch

from core import LSTMEncoder


def step_seconds(encoder: LSTMEncoder, features: torch.Tensor, lengths: torch.Tensor, need_state: bool,
                 repeats: int) -> float:
    encoder(features, lengths, need_state=need_state).outputs.sum().backward()  # warm-up: allocation
    start = time.perf_counter()
    for _ in range(repeats):
        encoder(features, lengths, need_state=need_state).outputs.sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=70, help="time steps (the speech model: about 60 after 4x)")
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=128, help="per direction")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--unidirectional", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = LSTMEncoder(input_size=args.input, hidden_size=args.hidden, num_layers=args.layers,
                          bidirectional=not args.unidirectional, dropout=0.2).train()
    features = torch.randn(args.batch, args.steps, args.input, requires_grad=True)
    lengths = torch.randint(args.steps * 3 // 4, args.steps + 1, (args.batch,))  # bucketed: similar lengths
    lengths[0] = args.steps
    packed = step_seconds(encoder, features, lengths, True, args.repeats)
    padded = step_seconds(encoder, features, lengths, False, args.repeats)
    print(f"{'bi' if not args.unidirectional else 'uni'}directional LSTM, {args.layers} layers x {args.hidden}, "
          f"batch {args.batch} x {args.steps} steps ({torch.get_num_threads()} threads), forward + backward:\n"
          f"  packed {packed * 1000:.0f} ms   padded (need_state=False) {padded * 1000:.0f} ms   "
          f"speed-up {packed / padded:.2f}x")


if __name__ == "__main__":
    main()
