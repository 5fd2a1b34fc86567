"""Piano-roll model: the NADE is a proper distribution, the batched form equals the chain rule,
a tiny run learns, and a checkpoint samples to MIDI."""
import itertools

import lightning as L

import numpy as np
import pytest
import torch
from music21 import converter
from torch.nn import functional as F
from torch.utils.data import DataLoader

from learning import RECORD, assert_beats, recorded
from tasks.cli import main
from tasks.common.training import train
from tasks.music.pianoroll_model import BernoulliHead, NADEHead, PianoRollModel
from tasks.registry import get_task
from tiny_tasks import write_jsb_like


@pytest.mark.parametrize("head", [NADEHead(5, 4, 6), BernoulliHead(5, 4)], ids=["nade", "bernoulli"])
def test_output_models_are_normalised(head):
    torch.manual_seed(0)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=1.0)
    cond = torch.randn(3, 5)
    frames = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))  # all 16 frames of 4 keys
    total = torch.zeros(3)
    for frame in frames:
        batch = frame.expand(3, 4)
        nll = F.binary_cross_entropy_with_logits(head.logits(cond, batch), batch, reduction="none").sum(-1)
        total += torch.exp(-nll)
    torch.testing.assert_close(total, torch.ones(3))


def test_nade_batched_logits_are_the_chain_rule():
    torch.manual_seed(1)
    head = NADEHead(5, 6, 7)
    torch.nn.init.normal_(head.W)
    torch.nn.init.normal_(head.V)
    cond, frames = torch.randn(4, 5), (torch.rand(4, 6) < 0.5).float()
    logits = head.logits(cond, frames)
    for d in range(6):  # key d sees only keys below it
        a = head.hidden_bias(cond) + frames[:, :d] @ head.W[:d]
        expected = head.visible_bias(cond)[:, d] + (torch.sigmoid(a) * head.V[d]).sum(-1)
        torch.testing.assert_close(logits[:, d], expected)
        changed = frames.clone()
        changed[:, d:] = 1 - changed[:, d:]
        torch.testing.assert_close(head.logits(cond, changed)[:, d], expected)


def test_nade_in_chunks_gives_the_same_logits_and_gradients(monkeypatch):
    import tasks.music.pianoroll_model as pianoroll_model

    torch.manual_seed(2)
    head = NADEHead(5, 6, 7)
    cond, frames = torch.randn(11, 5, requires_grad=True), (torch.rand(11, 6) < 0.5).float()
    whole = head.logits(cond, frames)
    whole_grads = torch.autograd.grad(whole.square().sum(), [cond, head.W, head.V])
    monkeypatch.setattr(pianoroll_model, "NADE_CHUNK", 4)  # 11 frames: chunks of 4, 4 and 3
    chunked = head.logits(cond, frames)
    torch.testing.assert_close(chunked, whole)
    for mine, theirs in zip(torch.autograd.grad(chunked.square().sum(), [cond, head.W, head.V]), whole_grads):
        torch.testing.assert_close(mine, theirs)
    with torch.no_grad():
        torch.testing.assert_close(head.logits(cond, frames), whole)


@pytest.mark.parametrize("window", [1, 4, 7, 40])
def test_windows_with_carried_state_score_what_whole_pieces_score(window):
    """Truncated BPTT changes only where gradients stop: the NLL of every frame, window by window with the state
    carried, equals the whole-piece NLL (pieces of different lengths, windows that cut them anywhere)."""
    torch.manual_seed(3)
    model = PianoRollModel(keys=6, hidden_size=8, num_layers=2, nade_hidden=5, dropout=0.0, window=window).eval()
    lengths = torch.tensor([13, 2, 9])
    rolls = (torch.rand(3, 13, 6) < 0.4).float() * (torch.arange(13)[None, :, None] < lengths[:, None, None])
    whole = model.frame_nll((rolls, lengths))
    parts, state = [], None
    for start in range(0, 12, window):
        nll, state = model.window_nll((rolls, lengths), start, start + window, state)
        parts.append(nll)
    windowed = torch.cat(parts)
    assert len(windowed) == len(whole) == int((lengths - 1).sum())
    torch.testing.assert_close(windowed.sum(), whole.sum())
    without_state = sum(model.window_nll((rolls, lengths), s, s + window)[0].sum() for s in range(0, 12, window))
    if window < 12:  # the carried state matters: dropping it changes the score
        assert abs(without_state - whole.sum()) > 1e-3


def test_a_training_batch_steps_once_per_window(tmp_path):
    """One optimiser step per window of the batch's longest piece (manual optimisation)."""
    from tasks.music.pianoroll_data import collate_rolls

    model = PianoRollModel(keys=88, hidden_size=8, num_layers=1, nade_hidden=4, window=5)
    pieces = [(torch.rand(23, 88) < 0.1).float(), (torch.rand(9, 88) < 0.1).float()]  # 22 predicted frames
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, train_dataloaders=DataLoader([pieces], batch_size=None, collate_fn=collate_rolls))
    assert trainer.global_step == 5  # windows of 5 frames: 5, 5, 5, 5, 2


def test_nade_samples_follow_its_probabilities():
    torch.manual_seed(2)
    head = NADEHead(3, 2, 4)
    torch.nn.init.normal_(head.W, std=2.0)
    cond = torch.randn(1, 3).expand(20000, 3)
    samples = head.sample(cond, torch.Generator().manual_seed(0))
    for frame in itertools.product([0.0, 1.0], repeat=2):
        f = torch.tensor([frame])
        p = torch.exp(-F.binary_cross_entropy_with_logits(head.logits(cond[:1], f), f, reduction="sum"))
        share = (samples == f).all(1).float().mean()
        assert abs(share - p) < 0.015, (frame, share, p)


@pytest.fixture(scope="module")
def jsb_like(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jsb")
    write_jsb_like(folder / "jsb.mat", 64, 6, 6)
    return folder


@pytest.fixture(scope="module")
def runs(jsb_like):
    """A tiny run of each output model on the same data. 64 training pieces: with 24, the Bernoulli model ended
    only 0.9 nats/frame below the key frequencies' 13.1 (measured with 64: NADE 7.6, Bernoulli 10.4)."""
    results = {}
    for output in ("nade", "bernoulli"):
        results[output] = train(get_task("music-pianoroll"), [
            f"--data.path={jsb_like / 'jsb.mat'}", f"--model.output={output}", "--model.hidden_size=32",
            "--model.num_layers=1", "--model.nade_hidden=16", "--model.lr=0.01", "--model.dropout=0.0",
            "--data.batch_size=4", "--trainer.max_epochs=13", "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]", RECORD, f"--run.root={jsb_like / 'runs'}", f"--run.name={output}",
            "--run.wandb=off",
        ])
    return results


def key_frequency_nll(train: list[np.ndarray], test: list[np.ndarray]) -> float:
    """NLL per predicted test frame (all but a piece's first) of independent keys, each on with its share of the
    training frames (add-one smoothed): what a model that learned only how often each key sounds scores."""
    frames = np.concatenate(train)
    on = (frames.sum(0) + 1) / (len(frames) + 2)
    targets = np.concatenate([roll[1:] for roll in test]).astype(float)
    return float(-(targets @ np.log(on) + (1 - targets) @ np.log(1 - on)).mean())


@pytest.mark.parametrize("output", ["nade", "bernoulli"])
def test_tiny_piano_roll_run_learns(runs, output):
    rolls = runs[output].trainer.datamodule.rolls
    baselines = {"uniform": 88 * np.log(2), "key frequencies": key_frequency_nll(rolls["train"], rolls["test"])}
    assert_beats(recorded(runs[output]).test["test/nll"], baselines, margin=1.5)


def test_nade_beats_independent_keys_when_keys_depend_on_each_other(runs):
    # every frame has exactly four notes: only a joint model of the keys can know that
    nll = {output: recorded(run).test["test/nll"] for output, run in runs.items()}
    assert_beats(nll["nade"], {"independent keys (bernoulli)": nll["bernoulli"]}, margin=1.0)


def test_piano_roll_checkpoint_samples_midi(runs, tmp_path, capsys):
    ckpt = str(runs["nade"].best_checkpoint)
    assert main(["sample", "music-pianoroll", "--ckpt", ckpt, "--num", "2", "--frames", "12", "--seed", "1",
                 "--out", str(tmp_path)]) == 0
    assert "No primer given" in capsys.readouterr().out
    for piece in sorted(tmp_path.glob("piece_*.mid")):
        notes = converter.parse(str(piece)).flatten().notes
        assert notes and min(p.midi for n in notes for p in n.pitches) >= 21
    assert len(list(tmp_path.glob("piece_*.png"))) == 2
    assert main(["sample", "music-pianoroll", "--ckpt", ckpt, "--primer", "[[60, 64], [200]]"]) == 2


def test_nade_samples_follow_the_nade_distribution():
    """With 3 keys every frame's probability can be written out: the sampler's frequencies must match it."""
    torch.manual_seed(0)
    head = NADEHead(4, 3, 5)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_(0, 1.0)  # far from uniform, and keys that depend on the ones below them
        cond = torch.randn(1, 4)
        frames = head.sample(cond.expand(20000, 4), torch.Generator().manual_seed(0))
        every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))  # (8, 3)
        logits = head.logits(cond.expand(8, 4), every)
        exact = torch.exp(-F.binary_cross_entropy_with_logits(logits, every, reduction="none").sum(1))
    assert exact.sum().item() == pytest.approx(1.0, abs=1e-5)
    codes = (frames * torch.tensor([4.0, 2.0, 1.0])).sum(1).long()
    frequencies = torch.bincount(codes, minlength=8).float() / len(codes)
    torch.testing.assert_close(frequencies, exact, rtol=0, atol=0.015)  # standard error of a share <= 0.0035
