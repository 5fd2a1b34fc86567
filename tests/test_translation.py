"""Translation end to end on a small numbers corpus: learning, checkpoint with tokenizer, decoding, CLI."""
import math
from collections import Counter

import sacrebleu
import torch
import pytest

from core import beam_search, greedy
from learning import RECORD, assert_beats, recorded
from tasks.cli import main
from tasks.common.checkpoints import load_model
from tasks.common.training import train
from tasks.registry import get_task
from tasks.translation.model import TranslationModel
from tasks.translation.numbers import number_pair
from tasks.translation.tokenizer import BOS, EOS, encode, load_tokenizer
from wandb_records import history

SMALL = ["--data.numbers_train=3000", "--data.numbers_val=100", "--data.numbers_test=60", "--data.vocab_size=300",
         "--data.batch_size=32", "--model.embedding_dim=32", "--model.hidden_size=64", "--model.lr=0.005",
         "--model.val_bleu_sentences=50", "--model.beam_size=3", "--trainer.log_every_n_steps=1",
         "--trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    return train(get_task("translation"), [*SMALL, f"--data.cache_dir={root / 'cache'}", f"--run.root={root / 'runs'}",
                                          "--run.name=tiny", "--run.wandb=offline", "--trainer.max_epochs=6", RECORD])


def translation_free_bleu(data) -> dict[str, float]:
    """Test BLEU of answers that translate nothing: the English source copied, and the most frequent training
    target for every sentence."""
    sources, references = map(list, zip(*data.pairs["test"]))
    most_frequent = Counter(target for _, target in data.pairs["train"]).most_common(1)[0][0]
    return {"copy the source": sacrebleu.corpus_bleu(sources, [references]).score,
            "most frequent target": sacrebleu.corpus_bleu([most_frequent] * len(references), [references]).score}


def test_tiny_run_learns(trained):
    record = recorded(trained)
    # measured 100 (every test number right) against 0.2 and 0
    assert_beats(record.test["test/bleu"], translation_free_bleu(trained.trainer.datamodule), margin=50,
                 higher_is_better=True)
    losses = [epoch["train/loss"] for epoch in record.train]
    assert losses[-1] < 0.4 * math.log(300), losses  # from guessing among 300 subwords to well below
    bleu = [epoch["val/bleu"] for epoch in record.val]
    assert bleu[-1] > bleu[0], bleu


def test_wandb_offline_run_holds_the_metrics(trained):
    keys = {k for r in history(trained.wandb_dir) for k in r}
    assert {"train/loss", "val/bleu", "test/bleu", "test/chrf", "val/chrf", "val/translations/_type",
            "val/attention/_type"} <= keys, keys


def test_checkpoint_carries_the_tokenizer(trained):
    saved = torch.load(trained.best_checkpoint, weights_only=True)["hyper_parameters"]["tokenizer_json"]
    beside = trained.best_checkpoint.parent / "tokenizer.json"
    text = "three hundred and twelve thousand, four hundred and five"
    assert encode(load_tokenizer(saved), text) == encode(load_tokenizer(beside), text)
    model = load_model(TranslationModel, trained.best_checkpoint)
    assert model.tokenizer is not None and model.hparams.vocab_size == 300


def test_beam_of_one_is_greedy_on_the_trained_model(trained):
    model = load_model(TranslationModel, trained.best_checkpoint)
    texts = ["seven", "forty-two", "one thousand and one", "nine hundred and ninety-nine thousand"]
    ids = [encode(model.tokenizer, t) + [EOS] for t in texts]
    lengths = torch.tensor([len(x) for x in ids])
    src = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, x in enumerate(ids):
        src[row, : len(x)] = torch.tensor(x)
    start = torch.full((len(ids),), BOS)
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
        g = greedy(model.decoder, start, 30, state=state, memory=memory, eos=EOS)
        b = beam_search(model.decoder, start, 30, beam_size=1, state=state, memory=memory, eos=EOS, alpha=0.6)
        wide = beam_search(model.decoder, start, 30, beam_size=4, state=state, memory=memory, eos=EOS)
    assert torch.equal(g.tokens, b.tokens)
    assert torch.all(wide.scores >= g.scores - 1e-4)  # a wider beam never finds a less likely translation


def french(number: int) -> str:
    return number_pair(number, "en", "fr")[1]


def test_translate_text_and_files(trained, tmp_path, capsys):
    ckpt = str(trained.best_checkpoint)
    model = load_model(TranslationModel, trained.best_checkpoint)
    assert main(["translate", "translation", "--ckpt", ckpt, "--text", "twenty-one"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == model.translate(["twenty-one"])[0] == french(21)  # the model's beam, and right (test BLEU 100)
    source = tmp_path / "in.en"
    source.write_text("one\n\nforty-two\nseven hundred\n", encoding="utf-8")
    assert main(["translate", "translation", "--ckpt", ckpt, "--in", str(source), "--out", str(tmp_path / "out.fr"),
                 "--beam", "2"]) == 0
    lines = (tmp_path / "out.fr").read_text(encoding="utf-8").split("\n")
    assert lines == [french(1), "", french(42), french(700), ""]  # line n is line n's translation
    assert model.translate(["one", "forty-two", "seven hundred"], beam_size=2) == [lines[0], lines[2], lines[3]]


@pytest.mark.parametrize("content, message", [(b"", "empty, nothing to translate"), (b"\n \n", "empty, nothing to translate"),
                                              (b"ok\n\xff\xfe bad\n", "line 2: not valid UTF-8")])
def test_translate_bad_input_is_one_line(trained, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    assert main(["translate", "translation", "--ckpt", str(trained.best_checkpoint), "--in", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and len(err.strip().splitlines()) == 1


def test_translate_usage_errors(tmp_path, capsys):
    assert main(["translate", "translation", "--text", "x", "--in", "y"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["translate", "translation", "--text", "one", "--runs-root", str(tmp_path)]) == 2
    assert "make train TASK=translation" in capsys.readouterr().err
