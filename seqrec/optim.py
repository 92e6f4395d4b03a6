"""Optimisers that update dense parameters and *rows* of item matrices.

GRU4Rec touches only a few hundred or thousand rows of its item matrices per step (the
mini-batch's input items, targets and sampled negatives). Updating the whole
``(n_items, d)`` matrix every step would dominate the cost, so these optimisers take
``(param, rows, grad_rows)`` for item matrices and update only those rows (their
accumulators too), and ``param.grad`` for ordinary dense parameters.

* :class:`AdagradM` - Adagrad with optional (heavy-ball) momentum as documented for
  the official GRU4Rec: ``acc += g^2; v = momentum * v + lr * g / sqrt(acc + eps);
  p -= v``. With sparse rows, rows that do not take part in a step keep their
  accumulator and velocity untouched (their pending momentum is not applied).
* :class:`RowAdam` - Adam; item-matrix rows are updated lazily (like SparseAdam).
"""

from __future__ import annotations

import torch


class RowOptimizer:
    """Common state handling: one dict of state tensors per registered parameter."""

    state_names: tuple[str, ...] = ()

    def __init__(self, params: dict[str, torch.Tensor], lr: float) -> None:
        self.params = params
        self.lr = lr
        self.state: dict[str, dict[str, torch.Tensor]] = {
            name: {s: torch.zeros_like(p.data) for s in self.state_names}
            for name, p in params.items()
        }
        self.t = 0

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"{n}.{s}": t for n, st in self.state.items() for s, t in st.items()}
        out["_t"] = torch.tensor(self.t, dtype=torch.int64)
        return out

    def load_state_dict(self, d: dict[str, torch.Tensor]) -> None:
        for n, st in self.state.items():
            for s in st:
                st[s].copy_(d[f"{n}.{s}"])
        self.t = int(d["_t"])

    def tick(self) -> None:
        """Call once per optimisation step (before the updates of that step)."""
        self.t += 1

    def step_dense(self, name: str) -> None:
        p = self.params[name]
        if p.grad is None:
            return
        self._update(name, p.data, p.grad, None)
        p.grad = None

    def step_rows(self, name: str, rows: torch.Tensor, grad: torch.Tensor) -> None:
        """Update rows ``rows`` (unique indices) of parameter ``name`` with ``grad``."""
        self._update(name, self.params[name].data, grad, rows)

    def _update(
        self, name: str, p: torch.Tensor, g: torch.Tensor, rows: torch.Tensor | None
    ) -> None:
        raise NotImplementedError


class AdagradM(RowOptimizer):
    state_names = ("acc", "vel")

    def __init__(
        self, params: dict[str, torch.Tensor], lr: float, momentum: float = 0.0, eps: float = 1e-6
    ) -> None:
        super().__init__(params, lr)
        self.momentum = momentum
        self.eps = eps

    def _update(
        self, name: str, p: torch.Tensor, g: torch.Tensor, rows: torch.Tensor | None
    ) -> None:
        st = self.state[name]
        if rows is None:
            acc = st["acc"]
            acc.addcmul_(g, g)
            upd = g / (acc + self.eps).sqrt_()
            if self.momentum > 0:
                vel = st["vel"]
                vel.mul_(self.momentum).add_(upd, alpha=self.lr)
                p.sub_(vel)
            else:
                p.sub_(upd, alpha=self.lr)
            return
        acc = st["acc"].index_select(0, rows).addcmul_(g, g)  # (R, d)
        st["acc"].index_copy_(0, rows, acc)
        upd = g / (acc + self.eps).sqrt_()
        if self.momentum > 0:
            vel = st["vel"].index_select(0, rows).mul_(self.momentum).add_(upd, alpha=self.lr)
            st["vel"].index_copy_(0, rows, vel)
            p.index_add_(0, rows, vel, alpha=-1.0)
        else:
            p.index_add_(0, rows, upd, alpha=-self.lr)


class RowAdam(RowOptimizer):
    state_names = ("m", "v")

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        self.b1, self.b2 = betas
        self.eps = eps

    def _update(
        self, name: str, p: torch.Tensor, g: torch.Tensor, rows: torch.Tensor | None
    ) -> None:
        st = self.state[name]
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        m = st["m"] if rows is None else st["m"].index_select(0, rows)
        v = st["v"] if rows is None else st["v"].index_select(0, rows)
        m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        upd = (m / c1) / ((v / c2).sqrt_().add_(self.eps))
        if rows is None:
            p.sub_(upd, alpha=self.lr)
        else:
            st["m"].index_copy_(0, rows, m)
            st["v"].index_copy_(0, rows, v)
            p.index_add_(0, rows, upd, alpha=-self.lr)
