"""The shared LSTM library: reference cell, encoder, attention, decoder and search.

Plain ``nn.Module``s and functions; nothing here knows about Lightning or any task.
"""
from core.attention import ATTENTION_KINDS, Attention, Memory
from core.cell import LSTMCell, ReferenceLSTM
from core.decoder import DecoderOutput, DecoderState, LSTMDecoder
from core.encoder import EncoderOutput, LSTMEncoder
from core.search import Hypotheses, beam_search, filter_logits, greedy, prime, sample

__all__ = [
    "ATTENTION_KINDS", "Attention", "Memory", "LSTMCell", "ReferenceLSTM", "DecoderOutput", "DecoderState",
    "LSTMDecoder", "EncoderOutput", "LSTMEncoder", "Hypotheses", "beam_search", "filter_logits", "greedy",
    "prime", "sample",
]
