"""Beam search: the n-gram LM is a proper distribution, and lexicon + LM correct what greedy decoding gets wrong."""
import math

import pytest
import torch

from tasks.common.errors import InputError
from tasks.speech.decoding import BeamDecoder, BeamOptions
from tasks.speech.lm import estimate, write_arpa, write_lexicon
from tasks.speech.network import greedy_ctc
from tasks.speech.vocab import CharVocab, SubwordVocab

SENTENCES = ["turn on the lights", "turn off the lights", "turn on the fan", "set a timer", "set the timer on"]


def backoff_probability(table, context, word):
    gram = context + (word,)
    if gram in table[len(gram) - 1]:
        return 10 ** table[len(gram) - 1][gram][0]
    weight = 10 ** table[len(context) - 1][context][1] if context in table[len(context) - 1] else 1.0
    return weight * backoff_probability(table, context[1:], word)


@pytest.mark.parametrize("context", [("<s>",), ("turn",), ("the",), ("<s>", "turn"), ("on", "the"), ("timer",), ("lights",)])
def test_ngram_lm_sums_to_one_after_every_context(context):
    table = estimate(SENTENCES, order=3)
    words = [g[0] for g in table[0] if g != ("<s>",)]
    assert math.isclose(sum(backoff_probability(table, context, w) for w in words), 1.0, abs_tol=1e-6)


def test_ngram_lm_prefers_what_it_saw():
    table = estimate(SENTENCES, order=3)
    assert backoff_probability(table, ("turn", "on"), "the") > backoff_probability(table, ("turn", "on"), "timer")


def emissions_for(text: str, vocab: CharVocab, confuse: dict[int, tuple[str, float]]) -> torch.Tensor:
    """Log-probabilities (1, T, V) that spell `text`, each character for 2 frames then a blank; position i of
    `confuse` puts probability p on another character instead."""
    frames = []
    for i, char in enumerate(text):
        row = torch.full((vocab.size,), 1e-4)
        wrong, p = confuse.get(i, (None, 0.0))
        row[vocab.encode(char)[0]] = 1.0 - p
        if wrong:
            row[vocab.encode(wrong)[0]] = p
        frames += [row, row.clone(), torch.eye(vocab.size)[0] + 1e-4]
    return torch.stack(frames).div(torch.stack(frames).sum(-1, keepdim=True)).log()[None]


def test_lexicon_and_lm_fix_a_misheard_word(tmp_path):
    vocab = CharVocab(" abcdefghijklmnopqrstuvwxyz'")
    lexicon = write_lexicon({w for s in SENTENCES for w in s.split()}, tmp_path / "lexicon.txt")
    lm = write_arpa(SENTENCES, tmp_path / "lm.arpa", order=3)
    log_probs = emissions_for("turn on the lights", vocab, {10: ("a", 0.6)})  # "tha": greedy hears an a
    lengths = torch.tensor([log_probs.shape[1]])
    greedy = vocab.decode(greedy_ctc(log_probs, lengths)[0])
    assert greedy == "turn on tha lights"
    beam = BeamDecoder(vocab, BeamOptions(beam_size=20, lexicon=str(lexicon), lm=str(lm), lm_weight=1.0))
    assert beam(log_probs, lengths) == ["turn on the lights"]
    lexicon_free = BeamDecoder(vocab, BeamOptions(beam_size=20))
    assert lexicon_free(log_probs, lengths) == [greedy]  # no words to know better with: what the frames say


DIGITS = "zero one two three four five six seven eight nine".split()


def peaky_emissions(text: str, vocab: CharVocab, trailing_blanks: int) -> torch.Tensor:
    """Log-probabilities (1, T, V) as a trained CTC model gives them: one sure frame per character, blanks between,
    a space far less likely than anything wherever it is not said, and `trailing_blanks` frames after the last
    character (0: a clip cut tightly after its last word, as isolated-word corpora are)."""
    ids = [i for c in text for i in (vocab.encode(c)[0], 0)][:-1] + [0] * trailing_blanks
    log_probs = torch.full((len(ids), vocab.size), -12.0)
    log_probs[:, vocab.encode(" ")[0]] = -25.0
    log_probs[torch.arange(len(ids)), torch.tensor(ids)] = 0.0
    return log_probs.log_softmax(-1)[None]


@pytest.mark.parametrize("trailing_blanks", [0, 3])
@pytest.mark.parametrize("boundary_in_lexicon", [True, False], ids=["our-lexicon", "no-boundary-lexicon"])
def test_beam_keeps_what_greedy_got_right_when_it_is_a_lexicon_word(tmp_path, trailing_blanks, boundary_in_lexicon):
    vocab = CharVocab(" 'abcdefghijklmnopqrstuvwxyz")
    lexicon = write_lexicon(DIGITS, tmp_path / "lexicon.txt")
    if not boundary_in_lexicon:  # `two t w o`: the boundary is added
        lexicon.write_text("".join(f"{line.removesuffix(' |')}\n" for line in lexicon.read_text().splitlines()))
    lm = write_arpa(DIGITS, tmp_path / "lm.arpa", order=3)  # one word per utterance: a flat unigram
    with_lm = BeamDecoder(vocab, BeamOptions(beam_size=50, lexicon=str(lexicon), lm=str(lm)))
    lexicon_only = BeamDecoder(vocab, BeamOptions(beam_size=50, lexicon=str(lexicon)))
    for text in DIGITS + ["three two", "eight six one"]:
        log_probs = peaky_emissions(text, vocab, trailing_blanks)
        lengths = torch.tensor([log_probs.shape[1]])
        assert vocab.decode(greedy_ctc(log_probs, lengths)[0]) == text
        assert with_lm(log_probs, lengths) == [text] and lexicon_only(log_probs, lengths) == [text]
    for near_miss, word in [("eigt", "eight"), ("thre", "three"), ("sevn", "seven")]:  # one letter unheard
        log_probs = peaky_emissions(near_miss, vocab, trailing_blanks)
        assert with_lm(log_probs, torch.tensor([log_probs.shape[1]])) == [word]


def test_beam_search_refuses_what_it_cannot_do(tmp_path):
    vocab = CharVocab(" abc")
    with pytest.raises(InputError, match="needs a lexicon"):
        BeamDecoder(vocab, BeamOptions(lm=str(write_arpa(["a b"], tmp_path / "lm.arpa"))))
    with pytest.raises(InputError, match="lexicon .*missing.txt: no such file"):
        BeamDecoder(vocab, BeamOptions(lexicon=str(tmp_path / "missing.txt")))
    with pytest.raises(InputError, match="character vocabularies"):
        BeamDecoder(SubwordVocab.__new__(SubwordVocab), BeamOptions())


class _ScriptedModel:
    """Just what choose_decoder uses of a SpeechModel: greedy says `greedy`, the beam says `beam[(w, s)]`."""

    def __init__(self, greedy: str, beam: dict, has_lm: bool = True):
        from types import SimpleNamespace

        self.greedy, self.beam, self.training, self.device = greedy, beam, False, torch.device("cpu")
        self.beam_files = {"lexicon": "", **({"lm": ""} if has_lm else {})}
        self.hparams = SimpleNamespace(lm_weight=0.5, word_score=0.0)
        self.trainer = SimpleNamespace(strategy=SimpleNamespace(reduce=lambda t, reduce_op: t))
        self.net = lambda features, lengths: (features, lengths)
        self.tried = []

    def eval(self):
        return self

    def train(self, mode):
        return self

    def decode(self, log_probs, lengths, decoder):
        return [self.greedy] * len(lengths)

    def configure_beam(self, lm_weight, word_score):
        self.tried.append((lm_weight, word_score))
        return lambda log_probs, lengths: [self.beam.get((lm_weight, word_score), "wrong words")] * len(lengths)


def _choose(model, reference="call my boss"):
    from types import SimpleNamespace

    from tasks.speech.tuning import choose_decoder

    batch = SimpleNamespace(features=torch.zeros(2, 3), feature_lengths=torch.tensor([3, 3]))
    return choose_decoder(model, [batch], lambda b: [reference] * 2)


def test_a_beam_that_validates_worse_than_greedy_is_not_used():
    model = _ScriptedModel(greedy="call my boss", beam={})  # every beam setting garbles it
    choice = _choose(model)
    assert choice.decoder == "greedy" and choice.val_wer_greedy == 0.0 and choice.val_wer_beam == 1.0
    assert len(model.tried) == 12 and model.tried[0] == (0.5, 0.0)  # the whole grid, the current setting first


def test_the_best_beam_setting_is_chosen_and_ties_keep_the_current_one():
    model = _ScriptedModel(greedy="call my bus", beam={(1.0, -1.0): "call my boss"})
    choice = _choose(model)
    assert (choice.decoder, choice.lm_weight, choice.word_score) == ("beam", 1.0, -1.0)
    assert choice.val_wer_greedy == pytest.approx(1 / 3) and choice.val_wer_beam == 0.0 and choice.clips == 2
    tie = _choose(_ScriptedModel(greedy="call my boss", beam={(0.5, 0.0): "call my boss", (2.0, 1.0): "call my boss"}))
    assert (tie.decoder, tie.lm_weight, tie.word_score) == ("beam", 0.5, 0.0)
    no_lm = _ScriptedModel(greedy="call my boss", beam={}, has_lm=False)
    _choose(no_lm)
    assert {w for w, _ in no_lm.tried} == {0.5}  # without an LM its weight is not searched
