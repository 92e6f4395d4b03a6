"""The user-item pairs training task: a network that maps users to vectors, trained on
every (user, item) event of the training log against sampled negatives.

This is the batching family of non-sequential user models (matrix factorisation:
BPR-MF). The order of a user's events plays no part: a sample is one event, the pair
(its user, its item), a positive of that user.

Users are the rows of :func:`seqrec.models.base.user_rows` (one per distinct session id
of the training log; each session its own row when the log has no ids): the model sizes
its user table from the same function in ``begin_fit``.

A network of this family (:class:`UserItemNet`) has

* ``n_users``: the number of user rows;
* ``user_vectors(users)``: ``(B,)`` int64 user rows -> ``(B, d)`` vectors;
* ``item_scores(hidden, items=None)``: ``(N, d)`` -> scores of all items
  ``(N, n_items)``, of shared candidates ``(N, C)`` (``items`` (C,)) or of per-row
  candidates ``(N, K)`` (``items`` (N, K)), as in the padded-sequence family;
* ``penalty(users, items)`` (needed when ``reg > 0``): ``(B,)`` users, ``(B, C)``
  candidates (the positive in column 0) -> ``(B,)`` the L2 penalty of each training row;
* optionally ``row_params``: the tables updated row-sparsely
  (:func:`~seqrec.training.optim.build_optimizers`).

Negatives (``negatives``): ``uniform``, ``n_sample`` per positive drawn uniformly over
the catalogue, never the positive and, with ``exclude_history`` (the default), never an
item of the user's training history: a hit is re-drawn (up to
:data:`~seqrec.training.sampling.MAX_REJECTION_ROUNDS` rounds; a user whose history
covers almost the whole catalogue may keep a few); membership is one ``searchsorted`` in
the sorted keys ``user * n_items + item`` of the training events. ``full``: the whole
catalogue (the user's other items count as negatives). The loss is named by ``loss``
(:data:`~seqrec.training.losses.TARGET_LOSSES`: ``bpr`` is BPR-Opt's
``-log sigmoid(x_ui - x_uj)``, the mean over the row's negatives); ``reg * penalty``
(the mean over the batch) is added to it.

Randomness: the epoch's event order from a numpy Generator seeded by ``(seed, epoch)``;
the negatives from a ``torch.Generator`` owned by the task (saved in its state), so a
resumed run is exact and the process's random streams are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Recommender, user_rows
from seqrec.trainconfig import LossConfig, SamplerConfig, TrainConfig, UserItemConfig
from seqrec.training.losses import get_target_loss
from seqrec.training.optim import build_optimizers, step_row_params
from seqrec.training.sampling import MAX_REJECTION_ROUNDS, uniform_negatives
from seqrec.training.threads import resolve_threads

__all__ = ["UserItemNet", "UserItemTask", "in_sorted", "user_item_task"]

Batch = tuple[Tensor, Tensor]  # users (B,), items (B,); int64


class UserItemNet(Protocol):
    """What the user-item task needs from a model's network."""

    n_users: int

    def user_vectors(self, users: Tensor) -> Tensor:
        """(B,) int64 user rows -> (B, d)."""
        ...

    def item_scores(self, hidden: Tensor, items: Tensor | None = None) -> Tensor:
        """(N, d) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K)."""
        ...

    # optional: ``penalty(users, items) -> (B,)`` (reg > 0), ``row_params: list[str]``

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...


def in_sorted(values: Tensor, keys: Tensor) -> Tensor:
    """Bool tensor shaped like ``values``: each value is one of ``keys`` (1-D, ascending)."""
    if keys.numel() == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    pos = torch.searchsorted(keys, values).clamp(max=keys.numel() - 1)
    return keys[pos] == values


class UserItemTask:
    """A :class:`seqrec.training.loop.TrainTask` for a :class:`UserItemNet`.

    Args:
        net: the network (trained in place on its own device).
        train: the training log (dense item ids, no unknown items).
        n_items: catalogue size.
        cfg, loss_cfg, sampler_cfg, family: the training keys (see the module doc).
    """

    def __init__(
        self,
        net: nn.Module,
        train: SessionLog,
        n_items: int,
        cfg: TrainConfig,
        loss_cfg: LossConfig,
        sampler_cfg: SamplerConfig,
        family: UserItemConfig,
    ) -> None:
        if loss_cfg.logq > 0:
            raise ConfigError("logq: the user-item family has no sampling distribution to correct")
        if family.reg > 0 and not hasattr(net, "penalty"):
            raise ConfigError("reg > 0 needs a network with a penalty() (L2 of a training row)")
        if family.negatives == "uniform" and (sampler_cfg.n_sample < 1 or n_items < 2):
            raise ConfigError("uniform negatives need n_sample >= 1 and at least 2 items")
        self.net, self.n_items = net, int(n_items)
        self.cfg, self.loss_cfg, self.family = cfg, loss_cfg, family
        self.n_neg = int(sampler_cfg.n_sample)
        self.device = next(net.parameters()).device
        _, rows = user_rows(train)  # the rows the model sized its user table with
        users = rows[train.session_index()]  # (n_events,) user row of every event
        if len(users) and int(users.max()) >= int(getattr(net, "n_users", 0)):
            raise ConfigError("the network has fewer user rows than the training log's users")
        self.users = users
        self.items = train.items.astype(np.int64)  # (n_events,)
        keys = np.unique(users * self.n_items + self.items)  # sorted (user, item) keys
        self.keys = torch.from_numpy(keys).to(self.device)
        self.loss_fn = get_target_loss(loss_cfg.loss)
        self.opt, self.row_opt, self.row_names = build_optimizers(
            net, cfg.optimizer, cfg.learning_rate, 0.0, cfg.momentum
        )
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)

    # -- TrainTask protocol -------------------------------------------------
    def n_events(self, epoch: int) -> int:
        return len(self.items)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's event order (a permutation seeded by ``(seed, epoch)``)."""
        n = len(self.items)
        if not self.cfg.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.cfg.seed, epoch]).permutation(n)

    def batches(self, epoch: int) -> Iterator[Batch]:
        order, bs = self.order(epoch), self.cfg.batch_size
        cuda = self.device.type == "cuda"
        threads = 0 if cuda else resolve_threads(self.cfg.threads, bs)
        previous = torch.get_num_threads()
        self.net.train()
        if threads and threads != previous:
            torch.set_num_threads(threads)
        try:
            for lo in range(0, len(order), bs):
                ev = order[lo : lo + bs]
                yield (
                    torch.from_numpy(self.users[ev]).to(self.device),
                    torch.from_numpy(self.items[ev]).to(self.device),
                )
        finally:
            self.net.eval()
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)

    def negatives(self, users: Tensor, pos: Tensor) -> Tensor:
        """(B, n_sample) uniform negatives: never the positive, nor (``exclude_history``)
        an item of the user's training history."""
        neg = uniform_negatives(pos, self.n_items, self.n_neg, self.generator)  # (B, K)
        if not self.family.exclude_history:
            return neg
        for _ in range(MAX_REJECTION_ROUNDS):
            bad = in_sorted(users[:, None] * self.n_items + neg, self.keys)  # (B, K)
            if not bool(bad.any()):
                break
            r, c = bad.nonzero(as_tuple=True)
            neg[r, c] = uniform_negatives(pos[r], self.n_items, 1, self.generator)[:, 0]
        return neg

    def train_step(self, batch: Batch) -> tuple[Tensor, int]:
        users, pos = batch  # (B,), (B,)
        net, lc = self.net, self.loss_cfg
        h = net.user_vectors(users)  # (B, d)
        if self.family.negatives == "full":
            cand = pos[:, None]  # (B, 1): the penalty covers the user and the positive
            scores, column = net.item_scores(h), pos  # (B, n_items)
        else:
            cand = torch.cat([pos[:, None], self.negatives(users, pos)], dim=1)  # (B, 1 + K)
            scores = net.item_scores(h, cand)
            column = torch.zeros_like(pos)
        if lc.elu_param > 0:
            scores = nn.functional.elu(scores, alpha=lc.elu_param)
        loss = self.loss_fn(scores, column, bpreg=lc.bpreg, gbce_t=lc.gbce_t, n_items=self.n_items)
        if self.family.reg > 0:
            loss = loss + self.family.reg * net.penalty(users, cand).mean()
        for p in net.parameters():
            p.grad = None
        loss.backward()
        if self.opt is not None:
            self.opt.step()
        if self.row_opt is not None:
            step_row_params(self.row_opt, self.row_names)
        return loss.detach(), int(pos.shape[0])

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"net.{k}": v.detach().clone() for k, v in self.net.state_dict().items()}
        if self.opt is not None:
            for idx, st in self.opt.state_dict()["state"].items():
                for name, value in st.items():
                    out[f"opt.{idx}.{name}"] = torch.as_tensor(value).clone()
        if self.row_opt is not None:
            out.update({f"rowopt.{k}": v.clone() for k, v in self.row_opt.state_dict().items()})
        out["rng.negatives"] = self.generator.get_state()
        return out

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        def part(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        self.net.load_state_dict({k: v.to(self.device) for k, v in part("net.").items()})
        if self.opt is not None:
            opt_state: dict[int, dict[str, Tensor]] = {}
            for key, value in part("opt.").items():
                idx, name = key.split(".", 1)
                opt_state.setdefault(int(idx), {})[name] = value
            groups = self.opt.state_dict()["param_groups"]
            self.opt.load_state_dict({"state": opt_state, "param_groups": groups})
        if self.row_opt is not None:
            self.row_opt.load_state_dict(part("rowopt."))
        self.generator.set_state(state["rng.negatives"])


def user_item_task(
    model: Recommender,
    train: SessionLog,
    cfg: TrainConfig,
    loss_cfg: LossConfig,
    sampler_cfg: SamplerConfig,
) -> UserItemTask:
    """The task of a model of the ``"user-item"`` family (``seqrec.training.FAMILIES``):
    its ``net_`` trained with its training keys (the family's own keys,
    :class:`~seqrec.trainconfig.UserItemConfig`, are read from ``model.training_keys``)."""
    keys = model.training_keys
    family = UserItemConfig(**{f: keys[f] for f in UserItemConfig.__dataclass_fields__})
    net = model.net_  # type: ignore[attr-defined]
    return UserItemTask(net, train, model.n_items_, cfg, loss_cfg, sampler_cfg, family)
