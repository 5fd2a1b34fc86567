"""The core library: the reference cell against nn.LSTM, packing, step vs forward, search."""
import pytest
import torch
from torch import nn

from core import (
    ATTENTION_KINDS,
    LSTMDecoder,
    LSTMEncoder,
    Memory,
    ReferenceLSTM,
    beam_search,
    filter_logits,
    greedy,
    prime,
    sample,
)
from core.lean import LeanStep, for_generation


@pytest.mark.parametrize("bidirectional", [False, True])
def test_reference_cell_matches_fused_lstm_outputs_and_gradients(bidirectional):
    torch.manual_seed(0)
    fused = nn.LSTM(5, 7, num_layers=3, bidirectional=bidirectional, batch_first=True)
    ref = ReferenceLSTM.from_fused(fused)
    lengths = torch.tensor([9, 4, 1, 6])
    x = torch.randn(4, 9, 5)
    x_ref = x.clone().requires_grad_()
    x_fused = x.clone().requires_grad_()

    packed = nn.utils.rnn.pack_padded_sequence(x_fused, lengths, batch_first=True, enforce_sorted=False)
    out_packed, (h_f, c_f) = fused(packed)
    out_f, _ = nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=9)
    out_r, (h_r, c_r) = ref(x_ref, lengths)

    torch.testing.assert_close(out_r, out_f, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_r, h_f, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_r, c_f, rtol=1e-5, atol=1e-6)

    weights = torch.randn_like(out_f)  # an arbitrary loss that touches every output and final state
    ((out_f * weights).sum() + h_f.sum() + c_f.pow(2).sum()).backward()
    ((out_r * weights).sum() + h_r.sum() + c_r.pow(2).sum()).backward()
    torch.testing.assert_close(x_ref.grad, x_fused.grad, rtol=1e-4, atol=1e-6)
    H = 7
    for layer in range(3):
        for direction in range(2 if bidirectional else 1):
            cell = ref.cells[layer * (2 if bidirectional else 1) + direction]
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            w_ih, w_hh = getattr(fused, "weight_ih" + suffix), getattr(fused, "weight_hh" + suffix)
            b_hh = getattr(fused, "bias_hh" + suffix)
            for k, gate in enumerate(("input", "forget", "candidate", "output")):
                rows = slice(k * H, (k + 1) * H)
                linear = getattr(cell, gate)
                expected = torch.cat([w_hh.grad[rows], w_ih.grad[rows]], dim=1)
                torch.testing.assert_close(linear.weight.grad, expected, rtol=1e-4, atol=1e-6)
                torch.testing.assert_close(linear.bias.grad, b_hh.grad[rows], rtol=1e-4, atol=1e-6)


def test_reference_cell_is_the_written_equations():
    torch.manual_seed(1)
    ref = ReferenceLSTM(3, 2)
    cell = ref.cells[0]
    x, h, c = torch.randn(1, 3), torch.randn(1, 2), torch.randn(1, 2)
    hx = torch.cat([h, x], dim=1)
    W = {g: (getattr(cell, g).weight, getattr(cell, g).bias) for g in ("forget", "input", "candidate", "output")}
    f = torch.sigmoid(hx @ W["forget"][0].T + W["forget"][1])
    i = torch.sigmoid(hx @ W["input"][0].T + W["input"][1])
    c_new = f * c + i * torch.tanh(hx @ W["candidate"][0].T + W["candidate"][1])
    h_new = torch.sigmoid(hx @ W["output"][0].T + W["output"][1]) * torch.tanh(c_new)
    got_h, got_c = cell(x, (h, c))
    torch.testing.assert_close(got_h, h_new)
    torch.testing.assert_close(got_c, c_new)


def test_encoder_packing_ignores_padding_content():
    torch.manual_seed(0)
    enc = LSTMEncoder(vocab_size=20, hidden_size=8, num_layers=2, bidirectional=True).eval()
    tokens = torch.randint(1, 20, (3, 6))
    lengths = torch.tensor([6, 3, 2])
    junk = tokens.clone()
    for b, n in enumerate(lengths):
        junk[b, n:] = torch.randint(1, 20, (6 - n,))  # different content in the padded region
    a, b = enc(tokens, lengths), enc(junk, lengths)
    torch.testing.assert_close(a.outputs, b.outputs)
    torch.testing.assert_close(a.state[0], b.state[0])
    assert a.outputs[1, 3:].abs().sum() == 0  # zero past each length
    # each sequence alone gives the same result as in the padded batch
    alone = enc(tokens[1:2, :3], lengths[1:2])
    torch.testing.assert_close(alone.outputs[0], a.outputs[1, :3], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone.state[1][:, 0], a.state[1][:, 1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_outputs_without_packing_equal_packed_ones_with_gradients(bidirectional):
    torch.manual_seed(0)
    enc = LSTMEncoder(input_size=6, hidden_size=5, num_layers=3, bidirectional=bidirectional).eval()
    features = torch.randn(4, 7, 6, requires_grad=True)
    lengths = torch.tensor([7, 3, 5, 1])
    junk = features.detach().clone()
    junk[1, 3:] = 100.0  # padding content must not matter here either
    packed, padded = enc(features, lengths), enc(features, lengths, need_state=False)
    assert padded.state is None
    torch.testing.assert_close(padded.outputs, packed.outputs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(enc(junk, lengths, need_state=False).outputs, padded.outputs, rtol=1e-5, atol=1e-6)
    weight = enc.lstm.weight_hh_l1_reverse if bidirectional else enc.lstm.weight_hh_l1
    grads = [torch.autograd.grad(out.outputs.pow(2).sum(), [features, weight]) for out in (packed, padded)]
    for expected, got in zip(*grads):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_encoder_needs_exactly_one_input_kind():
    with pytest.raises(ValueError, match="exactly one"):
        LSTMEncoder(hidden_size=4)
    features = LSTMEncoder(input_size=3, hidden_size=4)
    assert features(torch.randn(2, 5, 3)).outputs.shape == (2, 5, 4)


def test_encoder_steps_as_a_generator_exactly_as_it_runs_forward():
    torch.manual_seed(0)
    enc = LSTMEncoder(input_size=3, hidden_size=4, num_layers=2, dropout=0.3).eval()
    frames = torch.randn(2, 6, 3)
    full = enc(frames)
    prefix = enc(frames[:, :2])
    state, outputs = prefix.state, [prefix.outputs]
    for t in range(2, 6):
        output, state = enc.step(frames[:, t], state)
        outputs.append(output[:, None])
    torch.testing.assert_close(torch.cat(outputs, 1), full.outputs)
    torch.testing.assert_close(state, full.state)
    with pytest.raises(ValueError, match="cannot step"):
        LSTMEncoder(input_size=3, hidden_size=4, bidirectional=True).step(frames[:, 0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_bridge_puts_each_layers_final_states_side_by_side(bidirectional):
    torch.manual_seed(0)
    enc = LSTMEncoder(vocab_size=9, hidden_size=4, num_layers=2, bidirectional=bidirectional).eval()
    tokens, lengths = torch.randint(1, 9, (3, 5)), torch.tensor([5, 2, 4])
    out = enc(tokens, lengths)
    h, c = enc.bridge(out.state)
    assert h.shape == c.shape == (2, 3, enc.output_size)
    for b, length in enumerate(lengths.tolist()):  # the top layer's final h is in the outputs
        torch.testing.assert_close(h[-1, b, :4], out.outputs[b, length - 1, :4])  # forwards: the last real step
        if bidirectional:
            torch.testing.assert_close(h[-1, b, 4:], out.outputs[b, 0, 4:])  # backwards: ends at the first
    torch.testing.assert_close(c[0, :, :4], out.state[1][0])  # layer 0, forward direction


def test_keras_init_orthogonal_recurrence_and_a_forget_bias_of_one():
    torch.manual_seed(0)
    enc = LSTMEncoder(input_size=3, hidden_size=4, num_layers=2, init="keras")
    dec = LSTMDecoder(vocab_size=7, hidden_size=4, init="keras")
    for lstm in (enc.lstm, dec.lstm):
        for gate in lstm.weight_hh_l0.split(4):
            torch.testing.assert_close(gate @ gate.T, torch.eye(4))
        assert lstm.bias_ih_l0.tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 8  # input, forget, cell, output
        assert not lstm.bias_hh_l0.any()
    default = LSTMEncoder(input_size=3, hidden_size=4)
    bound = 4 ** -0.5  # torch's uniform(-1/sqrt(H), 1/sqrt(H)), left as it was
    assert default.lstm.bias_ih_l0.abs().max() <= bound and default.lstm.bias_ih_l0.abs().min() > 0
    with pytest.raises(ValueError, match="Unsupported init"):
        LSTMEncoder(input_size=3, hidden_size=4, init="glorot")


def test_input_dropout_can_differ_from_the_dropout_between_layers():
    enc = LSTMEncoder(input_size=3, hidden_size=4, num_layers=2, dropout=0.5, input_dropout=0.0).train()
    assert enc.input_dropout.p == 0.0 and enc.lstm.dropout == 0.5


def make_memory(B=3, S=5, M=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 2, 3])[:B]
    return Memory.from_lengths(torch.randn(B, S, M, generator=g), lengths)


DECODER_KINDS = [dict()] + [dict(attention=k, memory_size=6) for k in ATTENTION_KINDS if k != "dot"] + [
    dict(attention="dot", memory_size=8),
    dict(attention="general", memory_size=6, input_feeding=True),
    dict(attention="additive", memory_size=6, input_feeding=True, tie_embeddings=True, embedding_dim=5),
]


@pytest.mark.parametrize("lean", [False, True], ids=["module-step", "lean-step"])
@pytest.mark.parametrize("kind", DECODER_KINDS, ids=lambda k: "-".join(f"{v}" for v in k.values()) or "lm")
def test_step_reproduces_forward(kind, lean):
    """Both step paths: the decoder's own (training) and core.lean's, which generation takes (no autograd)."""
    torch.manual_seed(0)
    dec = LSTMDecoder(vocab_size=11, hidden_size=8, num_layers=2, **kind).eval()
    memory = None
    if "attention" in kind:
        memory = make_memory(M=kind["memory_size"])
    tokens = torch.randint(0, 11, (3, 7))
    full = dec(tokens, memory=memory)
    with torch.set_grad_enabled(not lean):
        stepper = for_generation(dec)
        assert isinstance(stepper, LeanStep) == lean
        state, logits = None, []
        for t in range(7):
            step_logits, state = stepper.step(tokens[:, t], state, memory)
            logits.append(step_logits)
    torch.testing.assert_close(torch.stack(logits, 1), full.logits, rtol=1e-5, atol=1e-5)
    state = state.stacked() if lean else state
    torch.testing.assert_close(state.h, full.state.h, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.c, full.state.c, rtol=1e-5, atol=1e-5)


def test_lean_step_without_the_token_table_and_never_in_training(monkeypatch):
    monkeypatch.setattr("core.lean.TOKEN_TABLE_LIMIT", 0)  # a large vocabulary: embed, then project, each step
    dec = LSTMDecoder(vocab_size=11, hidden_size=8, num_layers=2).eval()
    tokens = torch.randint(0, 11, (2, 5))
    with torch.no_grad():
        stepper = for_generation(dec)
        assert stepper.token_gates is None
        state, logits = None, []
        for t in range(5):
            step_logits, state = stepper.step(tokens[:, t], state)
            logits.append(step_logits)
        torch.testing.assert_close(torch.stack(logits, 1), dec(tokens).logits, rtol=1e-5, atol=1e-5)
        assert for_generation(dec.train()) is dec  # dropout on: the module path
    assert for_generation(dec.eval()) is dec  # autograd on: the module path keeps the graph


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_attention_masks_hide_padding(kind):
    torch.manual_seed(0)
    dec = LSTMDecoder(vocab_size=11, hidden_size=6, attention=kind, memory_size=6).eval()
    memory = make_memory()
    tokens = torch.randint(0, 11, (3, 4))
    out = dec(tokens, memory=memory)
    assert torch.all(out.attention[1, :, 2:] == 0) and torch.all(out.attention[2, :, 3:] == 0)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, 4))
    scrambled = Memory(memory.outputs.masked_fill(~memory.mask[..., None], 1e3), memory.mask)
    torch.testing.assert_close(dec(tokens, memory=scrambled).logits, out.logits)


def attending_decoder(seed: int, vocab_size: int, input_feeding: bool):
    """An untrained decoder with general attention, 3 memories to attend over and their start tokens."""
    torch.manual_seed(seed)
    dec = LSTMDecoder(vocab_size=vocab_size, hidden_size=8, attention="general", memory_size=6,
                      input_feeding=input_feeding).eval()
    return dec, make_memory(), torch.full((3,), 1)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_beam_of_one_equals_greedy(input_feeding):
    dec, memory, start = attending_decoder(3, 9, input_feeding)
    with torch.no_grad():
        g = greedy(dec, start, 12, memory=memory, eos=2)
        b = beam_search(dec, start, 12, beam_size=1, memory=memory, eos=2, alpha=0.6)
    assert torch.equal(g.tokens, b.tokens)


def test_unscored_and_one_by_one_decoding_give_the_batchs_tokens():
    """Scores only when asked for, and a batch of one that ends at its own eos without the batch's masks: the same
    tokens either way (translation and melodies decode like this at batch 1)."""
    dec, memory, start = attending_decoder(5, 5, input_feeding=True)
    with torch.no_grad():
        batched = greedy(dec, start, 12, memory=memory, eos=2)
        unscored = greedy(dec, start, 12, memory=memory, eos=2, score=False)
        assert unscored.scores is None and torch.equal(unscored.tokens, batched.tokens)
        early = 0
        for i in range(3):
            alone = greedy(dec, start[i:i + 1], 12, memory=memory.index_select(torch.tensor([i])), eos=2)
            ends = (batched.tokens[i] == 2).nonzero()
            length = int(ends[0]) + 1 if len(ends) else 12
            early += length < 12
            assert torch.equal(alone.tokens[0], batched.tokens[i, :length])  # stops at its eos: nothing after it
            torch.testing.assert_close(alone.scores, batched.scores[i:i + 1])
        assert early  # some sequence did end before max_len, so the eos path ran


def test_wider_beam_finds_at_least_as_likely_sequences():
    torch.manual_seed(4)
    dec = LSTMDecoder(vocab_size=7, hidden_size=8).eval()
    start = torch.full((16,), 1)
    with torch.no_grad():
        g = greedy(dec, start, 6, eos=2)
        b = beam_search(dec, start, 6, beam_size=5, eos=2)
        rescored = sequence_logprob(dec, start, b.tokens, eos=2)
    torch.testing.assert_close(rescored, b.scores, rtol=1e-4, atol=1e-4)  # scores are what they claim
    assert torch.all(b.scores >= g.scores - 1e-4) and torch.any(b.scores > g.scores + 1e-3)


def sequence_logprob(dec, start, tokens, eos):
    logits = dec(torch.cat([start[:, None], tokens[:, :-1]], 1)).logits.log_softmax(-1)
    logp = logits.gather(2, tokens[..., None])[..., 0]
    ended_before = torch.cumsum((tokens == eos).long(), 1) - (tokens == eos).long() > 0
    return logp.masked_fill(ended_before, 0).sum(1)


class CountingDecoder(LSTMDecoder):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.tokens_seen = 0

    def forward(self, tokens, state=None, memory=None):
        self.tokens_seen += tokens.shape[1]
        return super().forward(tokens, state, memory)



def test_generation_costs_one_step_per_token_after_the_prefix(monkeypatch):
    dec = CountingDecoder(vocab_size=9, hidden_size=8).eval()
    lean_step = LeanStep.step

    def counted(self, token, state, memory=None):
        dec.tokens_seen += 1
        return lean_step(self, token, state, memory)

    monkeypatch.setattr(LeanStep, "step", counted)
    prefix = torch.randint(3, 9, (2, 10))
    with torch.no_grad():
        token, state = prime(dec, prefix)
        out = sample(dec, token, 25, state=state, generator=torch.Generator().manual_seed(0))
    assert out.tokens.shape == (2, 25)
    assert dec.tokens_seen == 9 + 25  # the prefix once, then one token per step


def test_sampling_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).sum() == 3
    probs = logits.softmax(-1)  # 0.64, 0.23, 0.09, ...
    kept = ~torch.isinf(filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, True, False, False, False]] and probs[0, :2].sum() >= 0.8
    dec = LSTMDecoder(vocab_size=9, hidden_size=8).eval()
    start = torch.full((64,), 1)
    out = sample(dec, start, 5, top_k=1, banned=[0, 1, 2], generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.tokens, greedy(dec, start, 5, banned=[0, 1, 2]).tokens)
    assert not torch.isin(out.tokens, torch.tensor([0, 1, 2])).any()
    with pytest.raises(ValueError, match="temperature"):
        sample(dec, start, 5, temperature=0)


def test_banned_tokens_are_never_chosen_on_the_lean_path_and_the_kept_step_is_unchanged():
    torch.manual_seed(0)
    dec = LSTMDecoder(vocab_size=9, hidden_size=8).eval()
    start, banned = torch.full((16,), 3), [0, 1, 2]
    module = greedy(dec, start, 6, banned=banned)  # autograd on: the module path, masking each step's logits
    with torch.no_grad():
        lean = greedy(dec, start, 6, banned=banned)  # the lean path: the banned tokens' output bias is -inf
        hot = dict(temperature=5.0, score=False)
        free = sample(dec, start, 6, generator=torch.Generator().manual_seed(0), **hot)
        kept = sample(dec, start, 6, banned=banned, generator=torch.Generator().manual_seed(0), **hot)
        assert torch.isfinite(for_generation(dec).output_bias).all()  # the step kept on the decoder bans nothing
    assert torch.equal(lean.tokens, module.tokens)
    torch.testing.assert_close(lean.scores, module.scores)
    assert torch.isin(free.tokens, torch.tensor(banned)).any()  # they would be drawn
    assert not torch.isin(kept.tokens, torch.tensor(banned)).any()


def test_bf16_autocast_on_a_cpu_without_bf16_runs_the_lstm_in_float32(monkeypatch):
    import core.fused

    monkeypatch.setattr(core.fused, "cpu_has_bf16", lambda: False)  # as on this project's AMD machines, anywhere
    core.fused._say_float32.cache_clear()
    torch.manual_seed(0)
    enc = LSTMEncoder(input_size=8, hidden_size=16, num_layers=2, bidirectional=True).eval()
    dec = LSTMDecoder(vocab_size=11, hidden_size=8).eval()
    x, lengths, tokens = torch.randn(3, 5, 8), torch.tensor([5, 3, 2]), torch.randint(0, 11, (2, 4))
    expected = [enc(x, lengths).outputs, enc(x, lengths, need_state=False).outputs, dec.lstm(dec.embedding(tokens))[0]]
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.warns(UserWarning, match="the LSTM runs in float32"):
        got = [enc(x, lengths).outputs, enc(x, lengths, need_state=False).outputs, dec.lstm(dec.embedding(tokens))[0]]
        assert torch.isfinite(dec(tokens).logits).all()
    for out, want in zip(got, expected):  # packed, padded (torch.lstm per direction) and the decoder's call
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, want)


def test_learning_rate_schedule_follows_the_validation_loss_not_the_checkpoint_metric():
    from tasks.common.optim import adamw_with_plateau

    class Module(torch.nn.Linear):
        monitor = "val/bleu"  # a higher-is-better checkpoint metric must not drive a min-mode schedule

    config = adamw_with_plateau(Module(2, 2), 1e-3, 0.0, 1)
    assert config["lr_scheduler"]["monitor"] == "val/loss" and config["lr_scheduler"]["scheduler"].mode == "min"


class FixedLogits:
    """A Steppable whose next-token distribution never changes: sampling frequencies can be checked exactly."""

    def __init__(self, logits):
        self.logits = logits

    def step(self, token, state, memory=None):
        return self.logits.expand(token.shape[0], -1).clone(), state


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.5, 0, 1.0), (2.0, 3, 1.0), (1.0, 0, 0.8)])
def test_samples_follow_the_filtered_softmax(temperature, top_k, top_p):
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    start = torch.zeros(4000, dtype=torch.long)
    out = sample(FixedLogits(logits), start, 5, temperature=temperature, top_k=top_k, top_p=top_p,
                 generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(out.tokens.flatten(), minlength=5).float() / out.tokens.numel()
    expected = filter_logits(logits / temperature, top_k, top_p).softmax(-1)[0]
    # 20,000 draws: the standard error of a share is at most 0.0035
    torch.testing.assert_close(frequencies, expected, rtol=0, atol=0.015)


def test_the_lean_step_is_reused_until_the_weights_change():
    dec = LSTMDecoder(vocab_size=11, hidden_size=8).eval()
    token = torch.tensor([3])
    with torch.no_grad():
        first = for_generation(dec)
        assert for_generation(dec) is first  # built once per set of weights, not per call
        before = first.step(token, None)[0]
        dec.output.bias.add_(1.0)  # as an optimiser step would, in place
        second = for_generation(dec)
        assert second is not first
        torch.testing.assert_close(second.step(token, None)[0], before + 1.0)
        dec.load_state_dict({k: v.clone() for k, v in dec.state_dict().items()})
        assert for_generation(dec) is not second
