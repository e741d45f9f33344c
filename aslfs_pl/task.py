"""LightningModule: the training loss, its metrics, the optimiser and its schedule.

What it calls lives where it belongs: the network (:mod:`aslfs_pl.model`), the CTC loss
(:mod:`aslfs_pl.model.ctc_head`), decoder-input noise (:mod:`aslfs_pl.model.token_noise`),
late dropout's switch (:class:`~aslfs_pl.model.regularisation.Regularisation`), AWP and Lookahead
(:mod:`aslfs_pl.optim`), the finite-loss check (:mod:`aslfs_pl.finite`), the competition score
(:mod:`aslfs_pl.metrics`).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.finite import FiniteLossCheck
from aslfs_pl.metrics import CompetitionScore, WeightedMean, decoding_scores
from aslfs_pl.model.backward import reverse_phrases
from aslfs_pl.model.config import ModelConfig, upgrade_settings
from aslfs_pl.model.ctc_head import ctc_loss
from aslfs_pl.model.decoding import get as get_decoding
from aslfs_pl.model.decoding import usable
from aslfs_pl.model.regularisation import Regularisation
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.model.token_noise import TokenNoise
from aslfs_pl.optim import AdversarialWeights, Lookahead, warmup_cosine

log = logging.getLogger(__name__)


class Seq2SeqTask(L.LightningModule):
    """Trains :class:`~aslfs_pl.model.seq2seq.Seq2Seq` to write phrases from landmark frames.

    The network's shape is :class:`~aslfs_pl.model.config.ModelConfig`: its fields arrive here
    as ``**net`` (``--model.dim 192`` on the command line) and go to it unchanged, so a new model
    setting is one field there. The arguments below are the task's own.

    Args:
        dropout_start: late dropout: dropout and drop path stay off for this fraction of the
            epochs and switch on after it (0: on from the start, the seed).
        optimizer: the inner optimiser; default RAdam with decoupled (LR-scaled) weight decay.
        lr: peak learning rate (after warm-up).
        weight_decay: decoupled weight decay; each step decays by lr * weight_decay, so it
            follows the schedule.
        warmup_epochs: epochs of linear warm-up; cosine decay to 0 over the remaining ones.
        lookahead_k: Lookahead sync period in steps (0 disables Lookahead).
        lookahead_alpha: Lookahead slow-weight step.
        label_smoothing: cross-entropy label smoothing.
        ctc_weight: weight of a CTC loss on a per-frame head over the encoder (joint
            CTC-attention training, Watanabe et al. 2017, arXiv:1609.06773): it gives the
            encoder a direct per-frame signal and speeds up learning the alignment. 0 (the seed)
            disables it. With the head, every decoding's score is logged too:
            ``<stage>/score_<decoding>`` (from one encoder pass and one greedy loop).
        decoding: how validation, test, prediction and the TFLite export read a phrase out: the
            name of a registered decoding (:mod:`aslfs_pl.model.decoding`: ``attention``, the
            decoder's greedy loop, the seed; ``ctc``; ``joint``; ``beam``, which rescores with the
            CTC head when there is one); those that read the CTC head
            need ``ctc_weight > 0``.
        awp_start: adversarial weight perturbation (:class:`~aslfs_pl.optim.AdversarialWeights`)
            from this fraction of the epochs on (1: never, the seed); each step then costs a
            second forward and backward pass.
        awp_lr: AWP step relative to each weight matrix's norm.
        awp_eps: AWP's largest change of a weight, relative to its magnitude.
        token_noise: decoder-input noise in training (the 1st and 4th places' trick): this
            fraction of the teacher-forced input characters is corrupted, so the decoder learns
            to read the frames rather than trust its own history (0: off, the seed). The start
            token and the targets are never changed; validation and inference see clean inputs.
        confidence_weight: weight of the confidence head's loss (a binary cross-entropy against
            each row's teacher-forced token accuracy; :mod:`aslfs_pl.model.fallback`); > 0 adds
            the head, which ``model.fallback_confidence`` reads (0: no head, the seed).
        token_noise_mode: what a corrupted input becomes: ``replace``, a random character (the
            4th place's); ``mask``, the pad token (the 1st place's masking).
        backward_weight: the backward decoder's share of the cross-entropy (the 1st place's 0.4;
            :mod:`aslfs_pl.model.backward`): the loss's cross-entropy is ``(1 - w)`` x the
            decoder's + ``w`` x the backward decoder's on the phrases right to left; > 0 adds
            that decoder, trained only (0: none, the seed).
        check_finite: "step" raises on the first non-finite loss (one host sync per step),
            "epoch" remembers the first bad step on the device and raises at the epoch's end
            (no per-step sync; the default under XLA), "off" never checks.
    """

    def __init__(
        self,
        dropout_start: float = 0.0,
        optimizer: OptimizerCallable | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 5.0,
        lookahead_k: int = 5,
        lookahead_alpha: float = 0.5,
        label_smoothing: float = 0.0,
        ctc_weight: float = 0.0,
        decoding: str = "attention",
        awp_start: float = 1.0,
        awp_lr: float = 0.1,
        awp_eps: float = 0.01,
        token_noise: float = 0.0,
        token_noise_mode: str = "replace",
        confidence_weight: float = 0.0,
        backward_weight: float = 0.0,
        check_finite: str = "auto",
        **net: Any,
    ):
        super().__init__()
        self.finite = FiniteLossCheck(check_finite)
        self.token_noise = TokenNoise(token_noise, token_noise_mode)
        heads = (
            ("ctc_head", "ctc_weight"),
            ("confidence_head", "confidence_weight"),
            ("backward_decoder", "backward_weight"),
        )
        for head, weight in heads:
            if head in net:
                raise ValueError(f"model.{head} is set by model.{weight} > 0, not on its own")
        if confidence_weight < 0:
            raise ValueError(f"model.confidence_weight = {confidence_weight}: must be >= 0")
        if not 0.0 <= backward_weight < 1.0:
            raise ValueError(f"model.backward_weight = {backward_weight}: a fraction in [0, 1)")
        self.save_hyperparameters(ignore=["optimizer"])
        net = upgrade_settings(net)  # a checkpoint of an older version
        self.config = ModelConfig(
            **net,
            ctc_head=ctc_weight > 0,
            confidence_head=confidence_weight > 0,
            backward_decoder=backward_weight > 0,
        )
        self.net = Seq2Seq(self.config)
        self._check_decoding(decoding)
        if not 0.0 <= dropout_start < 1.0:
            raise ValueError(f"model.dropout_start = {dropout_start}: a fraction in [0, 1)")
        if not 0.0 <= awp_start <= 1.0:
            raise ValueError(f"model.awp_start = {awp_start}: a fraction in [0, 1] (1: off)")
        self._awp = AdversarialWeights(self._decayed(), awp_lr, awp_eps) if awp_start < 1 else None
        self._awp_batch: dict[str, Tensor] | None = None
        self._regularisation = Regularisation(self.net)  # late dropout switches it
        self.optimizer_factory = optimizer
        self._add_metrics()

    def _check_decoding(self, decoding: str) -> None:
        try:
            method = get_decoding(decoding)
            method.check(self.net)
        except ValueError as err:
            raise ValueError(f"model.decoding = {decoding!r}: {err}") from None
        if self.net.fallback is not None and not method.phrase_rows:
            raise ValueError(
                f"model.decoding = {decoding!r}: its rows are frames, the fallback phrase needs "
                "a decoding whose rows are phrase positions (attention, joint or beam)"
            )

    def _add_metrics(self) -> None:
        """One metric object per stage and quantity (torchmetrics), and with the CTC head one
        score per decoding, each stage's."""
        self.train_acc = WeightedMean()
        self.val_acc = WeightedMean()
        self.val_loss = WeightedMean()
        self.val_score = CompetitionScore()
        self.test_acc = WeightedMean()
        self.test_loss = WeightedMean()
        self.test_score = CompetitionScore()
        every = usable(self.net) if self.net.ctc is not None else []
        if len(every) > 1:  # with the CTC head, every decoding's score, from one encoder pass
            self.val_scores = nn.ModuleDict({d: CompetitionScore() for d in every})
            self.test_scores = nn.ModuleDict({d: CompetitionScore() for d in every})

    # -- shared -------------------------------------------------------------------------------
    def _on_xla(self) -> bool:
        return self.device.type == "xla"

    def _loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Training loss, per-token correctness and the target mask.

        The loss is the teacher-forced cross-entropy (mean over target tokens; with the backward
        decoder, ``1 - backward_weight`` of it and ``backward_weight`` of the backward
        decoder's), plus ``ctc_weight`` x the CTC loss (mean over target characters) and
        ``confidence_weight`` x the confidence head's loss when enabled.
        """
        tokens = batch["tokens"]
        inputs, target = tokens[:, :-1], tokens[:, 1:]  # (B, L)
        reversed_tokens = backward_inputs = None
        if self.net.backward_decoder is not None:
            reversed_tokens = reverse_phrases(tokens)
            backward_inputs = reversed_tokens[:, :-1]
        if self.training:
            inputs = self.token_noise(inputs)
            if backward_inputs is not None:
                backward_inputs = self.token_noise(backward_inputs)
        out = self.net.forward_train(batch["landmarks"], inputs, backward_inputs)
        logits = out.logits
        weight = (target != vocab.PAD).float()
        loss = self._cross_entropy(logits, target, weight)
        if out.backward is not None:  # the same positions: a phrase keeps its length reversed
            w = self.hparams.backward_weight
            backward = self._cross_entropy(out.backward, reversed_tokens[:, 1:], weight)
            loss = (1.0 - w) * loss + w * backward
        if out.ctc is not None:
            loss = loss + self.hparams.ctc_weight * ctc_loss(out.ctc, out.valid, target)
        correct = (logits.argmax(-1) == target).float()
        if out.confidence is not None:  # against each row's token accuracy, not trained through
            accuracy = (correct * weight).sum(1) / weight.sum(1).clamp(min=1.0)
            confident = F.binary_cross_entropy_with_logits(out.confidence.float(), accuracy)
            loss = loss + self.hparams.confidence_weight * confident
        return loss, correct, weight

    def _cross_entropy(self, logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        """Teacher-forced cross-entropy, the mean over the target tokens ``weight`` keeps."""
        ce = F.cross_entropy(
            logits.float().transpose(1, 2),
            target,
            reduction="none",
            label_smoothing=self.hparams.label_smoothing,
        )
        return (ce * weight).sum() / weight.sum().clamp(min=1.0)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record each decoding's held-out score at this checkpoint, ``checkpoint["val_scores"]``
        (``{"epoch": E, "scores": {decoding: score}}``): what the export's ``--decoding best``
        chooses by (:func:`aslfs_pl.trained.choose_decoding`)."""
        scores = decoding_scores(self.trainer.callback_metrics, self.hparams.decoding)
        if scores:
            checkpoint["val_scores"] = {"epoch": self.current_epoch, "scores": scores}

    # -- training -----------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        """Late dropout: regularisation off for the first ``dropout_start`` of the epochs."""
        self.finite.start_epoch(self.global_step)
        epochs = max(1, self.trainer.max_epochs or 1)
        on = self.current_epoch >= self.hparams.dropout_start * epochs
        self._regularisation.switch(on)

    def _log_skipped(self, stage: str, batch: dict[str, Tensor]) -> None:
        """Rows the data's skip policy set aside (empty sequences, no hand seen, unreadable
        files, ...): summed over the epoch and the replicas, as ``<stage>/skipped``."""
        if "skipped" in batch:
            self.log(
                f"{stage}/skipped",
                batch["skipped"].sum().float(),
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=True,
            )

    def _awp_on(self) -> bool:
        epochs = max(1, self.trainer.max_epochs or 1)
        return self._awp is not None and self.current_epoch >= self.hparams.awp_start * epochs

    def on_after_backward(self) -> None:
        """AWP: add the gradients of the loss at adversarially perturbed weights."""
        batch, self._awp_batch = self._awp_batch, None  # None also ends the nested backward
        if batch is None:
            return
        saved = self._awp.perturb()
        adversarial, _, _ = self._loss(batch)
        self.trainer.strategy.backward(adversarial, None)  # the precision plugin's scaling too
        self._awp.restore(saved)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self._log_skipped("train", batch)
        if self._awp_on():
            self._awp_batch = batch
        loss, correct, weight = self._loss(batch)
        self.finite.step(
            loss,
            lambda: (
                f"global step {self.global_step} (epoch {self.current_epoch}, batch "
                f"{batch_idx}; sequence ids {batch['sequence_id'][:8].tolist()}...)"
            ),
        )
        self.train_acc.update(correct, weight)
        on_step = not self._on_xla()
        self.log("train/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.finite.end_epoch(self.current_epoch, self.device)

    # -- validation, test, prediction -----------------------------------------------------------
    def _texts(self, landmarks: Tensor) -> list[str]:
        return self._phrases(self.net.decode(landmarks, self.hparams.decoding))

    @staticmethod
    def _phrases(rows: Tensor) -> list[str]:
        return [vocab.decode(row) for row in rows.cpu().tolist()]

    def _evaluate(self, stage: str, batch: dict[str, Tensor]) -> None:
        """Loss, masked accuracy and the competition score of ``decoding``, as ``<stage>/*``;
        with the CTC head also every decoding's score, ``<stage>/score_<decoding>``."""
        self._log_skipped(stage, batch)
        loss, correct, weight = self._loss(batch)
        loss_metric, acc, score = (getattr(self, f"{stage}_{m}") for m in ("loss", "acc", "score"))
        loss_metric.update(loss, weight.sum())
        acc.update(correct, weight)
        refs = self._phrases(batch["tokens"][:, 1:])
        if not hasattr(self, f"{stage}_scores"):
            preds = self._texts(batch["landmarks"])
        else:
            every = {
                d: self._phrases(r) for d, r in self.net.decode_every(batch["landmarks"]).items()
            }
            preds = every[self.hparams.decoding]
            for decoding, texts in every.items():
                metric = getattr(self, f"{stage}_scores")[decoding]
                metric.update(texts, refs)
                self.log(f"{stage}/score_{decoding}", metric, on_epoch=True)
        score.update(preds, refs)
        self.log(f"{stage}/loss", loss_metric, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/score", score, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> list[tuple[int, str]]:
        """(sequence_id, phrase) of every real row (padding rows have id -1)."""
        ids = batch["sequence_id"].cpu().tolist()
        texts = self._texts(batch["landmarks"])
        return [(sid, text) for sid, text in zip(ids, texts, strict=True) if sid >= 0]

    # -- optimisation -------------------------------------------------------------------------
    def _decayed(self) -> list[nn.Parameter]:
        """The weight matrices: weight decay and AWP apply to them (not to biases, norms and
        the token embedding)."""
        return [
            p
            for name, p in self.net.named_parameters()
            if p.ndim >= 2 and not name.startswith("decoder.embed.")
        ]

    def configure_optimizers(self):
        decay = self._decayed()
        decayed = {id(p) for p in decay}
        no_decay = [p for p in self.net.parameters() if id(p) not in decayed]
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.optimizer_factory is not None:
            opt = self.optimizer_factory(groups)
        else:
            opt = torch.optim.RAdam(
                groups,
                lr=self.hparams.lr,
                decoupled_weight_decay=True,
                weight_decay=self.hparams.weight_decay,
            )
        if self.hparams.lookahead_k > 0:
            opt = Lookahead(opt, self.hparams.lookahead_k, self.hparams.lookahead_alpha)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.trainer.max_epochs or 1)
        warmup = max(1, int(self.hparams.warmup_epochs * total / epochs))
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
