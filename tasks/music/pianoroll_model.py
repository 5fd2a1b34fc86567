"""Polyphonic music: an LSTM over piano-roll frames, with the keys of the next frame modelled by a NADE.

Scored as the published protocol does: total negative log-likelihood of frame t+1 given frames <= t,
divided by the number of predicted frames (nats per frame).

Training reads long pieces in windows with the LSTM state carried from one window to the next (truncated
backpropagation through time), one optimiser step per window: a batch of 8 pieces of 1,500 frames gives 12
updates instead of one. Evaluation reads every piece whole, so every frame is scored exactly once.
"""
from __future__ import annotations

from typing import Literal, Optional

import math

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint
from torchmetrics import MeanMetric

from core import LSTMEncoder
from core.encoder import State
from tasks.common.optim import adamw_with_budget_decay, adamw_with_plateau, check_optimiser_settings

OUTPUTS = ("nade", "bernoulli")
NADE_CHUNK = 512  # frames whose NADE tensors exist at once (see NADEHead.logits)


class BernoulliHead(nn.Module):
    """Every key independent given the LSTM state: the model the published LSTM baselines use."""

    def __init__(self, cond_size: int, keys: int):
        super().__init__()
        self.linear = nn.Linear(cond_size, keys)

    def logits(self, cond: Tensor, frames: Tensor) -> Tensor:
        return self.linear(cond)  # (N, D)

    def sample(self, cond: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        return torch.bernoulli(torch.sigmoid(self.linear(cond)), generator=generator)


class NADEHead(nn.Module):
    """The keys of a frame modelled jointly, low key to high, by a NADE whose biases come from the
    LSTM state (the RNN-NADE of Boulanger-Lewandowski et al. 2012):

        a_d = c(cond) + sum_{k<d} v_k W_k,   p(v_d = 1 | v_<d, cond) = sigmoid(b_d(cond) + V_d . sigmoid(a_d))

    Training evaluates all d at once (an exclusive cumulative sum); sampling walks the keys.
    cond (N, C), frames (N, D) -> logits (N, D).
    """

    def __init__(self, cond_size: int, keys: int, hidden_size: int):
        super().__init__()
        self.W = nn.Parameter(torch.randn(keys, hidden_size) * 0.01)  # key d -> NADE hidden
        self.V = nn.Parameter(torch.randn(keys, hidden_size) * 0.01)  # NADE hidden -> key d
        self.hidden_bias = nn.Linear(cond_size, hidden_size)  # c(cond)
        self.visible_bias = nn.Linear(cond_size, keys)  # b(cond)

    def logits(self, cond: Tensor, frames: Tensor) -> Tensor:
        """In chunks of NADE_CHUNK frames, each recomputed in backward rather than kept: the (N, D, Hn) tensors
        of a whole batch of long pieces (8 x 1,000 frames: 420 MB each, several of them) made every step
        allocate and free gigabytes, and the kernel's page handling cost as much time as the arithmetic."""
        if cond.shape[0] <= NADE_CHUNK:
            return self._logits(cond, frames)
        chunks = []
        for start in range(0, cond.shape[0], NADE_CHUNK):
            part = cond[start : start + NADE_CHUNK], frames[start : start + NADE_CHUNK]
            if torch.is_grad_enabled():
                chunks.append(checkpoint(self._logits, *part, use_reentrant=False))
            else:
                chunks.append(self._logits(*part))
        return torch.cat(chunks)

    def _logits(self, cond: Tensor, frames: Tensor) -> Tensor:
        contributions = frames[:, :, None] * self.W  # (N, D, Hn)
        a = self.hidden_bias(cond)[:, None] + contributions.cumsum(dim=1) - contributions  # keys before d only
        return self.visible_bias(cond) + (torch.sigmoid(a) * self.V).sum(-1)  # (N, D)

    def sample(self, cond: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """Walk the keys low to high. Each key's draw is `logit > logistic noise` (the same as a Bernoulli of
        sigmoid(logit)), with the noise of all keys drawn at once, and the key's W row is added to the
        hidden activations in place: ~6 operations a key instead of ~10, 88 keys a frame."""
        a, b = self.hidden_bias(cond), self.visible_bias(cond)  # (N, Hn), (N, D)
        uniform = torch.rand(b.shape, generator=generator, device=b.device).clamp_(1e-7, 1 - 1e-7)
        threshold = (uniform.log() - (-uniform).log1p() - b).t().contiguous()  # (D, N): logistic noise minus b
        frame = torch.empty_like(threshold)
        V, W = self.V.detach(), self.W.detach()
        for d in range(frame.shape[0]):
            torch.gt(torch.mv(torch.sigmoid(a), V[d]), threshold[d], out=frame[d])  # v_d: b_d + V_d.h_d > noise
            a.addr_(frame[d], W[d])  # a_{d+1} = a_d + v_d W_d
        return frame.t()


class PianoRollModel(L.LightningModule):
    """LSTM over frames (B, T, 88) predicting frame t+1.

    Args:
        keys: linked from the data (88).
        hidden_size, num_layers, dropout: the LSTM.
        output: nade (keys of a frame modelled jointly) or bernoulli (independent keys).
        nade_hidden: hidden units of the NADE.
        window: training reads pieces in windows of this many frames, the state carried across them, one
            optimiser step each (0: whole pieces, one step per batch). Evaluation always reads whole pieces.
        lr, weight_decay: AdamW.
        lr_schedule: "plateau" (halve after lr_patience epochs without validation gain) or "budget" (warm up over
            warmup_steps, then decay linearly to zero when max_time or the step budget runs out: for large
            corpora, such as MuseData, that are still learning when the time is up).
        lr_patience: epochs without validation gain before the learning rate halves (plateau).
        grad_clip: clip each window's gradient norm to this (0: off). Set here, not on the trainer: optimisation
            is manual, one step per window.
    """

    monitor = "val/nll"

    def __init__(
        self,
        *,
        keys: int = 88,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.3,
        output: Literal["nade", "bernoulli"] = "nade",
        nade_hidden: int = 150,
        window: int = 16,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        lr_schedule: Literal["plateau", "budget"] = "plateau",
        warmup_steps: int = 100,
        lr_patience: int = 3,
        grad_clip: float = 1.0,
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"Unsupported output {output!r}: choose one of {', '.join(OUTPUTS)}")
        if lr_schedule not in ("plateau", "budget"):
            raise ValueError(f"Unsupported lr_schedule {lr_schedule!r}: choose plateau or budget")
        if window < 0 or grad_clip < 0:
            raise ValueError(f"--model.window={window} and --model.grad_clip={grad_clip} must be at least 0")
        self.save_hyperparameters()
        check_optimiser_settings(lr, weight_decay)
        self.automatic_optimization = False  # one optimiser step per window of a batch
        self.encoder = LSTMEncoder(input_size=keys, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = NADEHead(hidden_size, keys, nade_hidden) if output == "nade" else BernoulliHead(hidden_size, keys)
        self.val_nll, self.test_nll = MeanMetric(), MeanMetric()

    def frame_nll(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """-> NLL summed over keys for every predicted frame (N,), one per real frame t+1: whole pieces."""
        rolls, lengths = batch  # (B, T, D), (B,)
        states = self.encoder(rolls[:, :-1], (lengths - 1).clamp(min=1), need_state=False).outputs  # (B, T-1, H)
        return self._nll(states, rolls, lengths, start=0)

    def window_nll(self, batch: tuple[Tensor, Tensor], start: int, stop: int,
                   state: Optional[State] = None) -> tuple[Tensor, State]:
        """NLL of the frames predicted from inputs start..stop-1, continuing the LSTM `state` of the frames before
        -> (NLL per real predicted frame (N,), state after the window). Over consecutive windows this is
        frame_nll: the fused LSTM runs the padded window as it is, and padding after a piece's end only
        reaches frames that are not scored."""
        rolls, lengths = batch
        out = self.encoder(rolls[:, start : min(stop, rolls.shape[1] - 1)], state=state)  # the last frame has no next
        return self._nll(out.outputs, rolls, lengths, start), out.state

    def _nll(self, states: Tensor, rolls: Tensor, lengths: Tensor, start: int) -> Tensor:
        """states (B, W, H) after the inputs at frames start..start+W-1 -> NLL of each real next frame (N,)."""
        steps = start + torch.arange(states.shape[1], device=rolls.device)
        real = steps[None] < (lengths - 1)[:, None]  # (B, W): frame t+1 exists
        targets = rolls[:, start + 1 : start + 1 + states.shape[1]]
        cond, frames = self.dropout(states[real]), targets[real]  # (N, H), (N, D)
        logits = self.head.logits(cond, frames)
        return F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(-1)

    def training_step(self, batch, batch_idx):
        rolls, lengths = batch
        window = self.hparams.window or rolls.shape[1]
        # Every process must step as often as the others (DDP syncs gradients at each step): the most windows
        # any process needs this batch; a process with shorter pieces steps on padding, with zero gradients.
        count = int(self.all_gather(torch.tensor(math.ceil((rolls.shape[1] - 1) / window), device=self.device)).max())
        rolls = F.pad(rolls, (0, 0, 0, count * window + 1 - rolls.shape[1]))  # every window full length
        optimizer, state, total, frames = self.optimizers(), None, rolls.new_zeros(()), 0
        for start in range(0, count * window, window):
            nll, state = self.window_nll((rolls, lengths), start, start + window, state)
            optimizer.zero_grad()
            self.manual_backward(nll.sum() / max(len(nll), 1))
            if self.hparams.grad_clip:
                self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
            optimizer.step()
            if self.hparams.lr_schedule == "budget":
                self.lr_schedulers().step()  # (manual optimisation: Lightning steps no scheduler)
            state = tuple(s.detach() for s in state)  # truncated: the next window does not backpropagate into this one
            total, frames = total + nll.detach().sum(), frames + len(nll)
        self.log("train/loss", total / max(frames, 1), prog_bar=True, batch_size=max(frames, 1))

    def on_validation_epoch_end(self) -> None:
        # Optimisation is manual, so the plateau schedule is stepped here, once per validation within fit
        # (`trainer.validate` has no scheduler).
        scheduler = self.lr_schedulers() if self.hparams.lr_schedule == "plateau" else None
        if scheduler is not None and not self.trainer.sanity_checking:
            scheduler.step(self.val_nll.compute())

    def validation_step(self, batch, batch_idx):
        nll = self.frame_nll(batch)
        self.val_nll.update(nll)  # mean over all predicted frames of the split
        self.log("val/nll", self.val_nll, prog_bar=True)

    def test_step(self, batch, batch_idx):
        nll = self.frame_nll(batch)
        self.test_nll.update(nll)
        self.log("test/nll", self.test_nll)

    def configure_optimizers(self):
        h = self.hparams
        if h.lr_schedule == "budget":
            return adamw_with_budget_decay(self, h.lr, h.weight_decay, h.warmup_steps)  # stepped in training_step
        config = adamw_with_plateau(self, h.lr, h.weight_decay, h.lr_patience)
        del config["lr_scheduler"]["monitor"]  # stepped by hand on val/nll (on_validation_epoch_end)
        return config

    @torch.no_grad()
    def generate(self, num: int, frames: int, primer: np.ndarray, seed: Optional[int] = None) -> list[np.ndarray]:
        """Continue a primer (P, 88) by `frames` frames, carrying the LSTM state: one step per frame."""
        was_training = self.training
        self.eval()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed if seed is not None else torch.seed())
        prefix = torch.as_tensor(primer, dtype=torch.float32, device=self.device)[None].repeat(num, 1, 1)
        out = self.encoder(prefix)
        state, cond = out.state, out.outputs[:, -1]
        generated = []
        for _ in range(frames):
            frame = self.head.sample(cond, generator)  # (num, D)
            generated.append(frame)
            cond, state = self.encoder.step(frame, state)
        self.train(was_training)
        rolls = torch.cat([prefix, torch.stack(generated, 1)], dim=1)
        return [r.cpu().numpy().astype(np.uint8) for r in rolls]
