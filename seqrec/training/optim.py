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

Speed (GRU4Rec's training step runs these every step). On contiguous float32 CPU
tensors :class:`AdagradM` uses the fused C++ kernels of :mod:`seqrec.training.kernels` (one
in-place pass over the touched rows, one pass over all dense tensors of a step via
:meth:`RowOptimizer.step_dense_many`); elsewhere (CUDA, kernels switched off or not
buildable) it runs the torch formulation below. The two agree to float rounding
(``sqrt``), see :mod:`seqrec.training.kernels`. The torch row update can be given the rows'
current values (``old``, which the training step has gathered anyway) and then writes
``old - step`` with ``index_copy_`` instead of ``index_add_``: bit for bit the same
result, less work.

Shadows. :meth:`RowOptimizer.keep_shadow` registers a bfloat16 copy of a parameter
that every later update keeps equal to ``param.to(torch.bfloat16)`` (the fused kernels
write it in the same pass; the torch path converts the updated rows or tensor). GRU4Rec's
``matmul_precision = "bfloat16"`` step reads its matrix-product operands from these
copies instead of converting the weights every step. Whoever changes a parameter other
than through the optimiser calls :meth:`RowOptimizer.refresh_shadows`.
"""

from __future__ import annotations

import torch

from seqrec.training import kernels as fused


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
        self.shadows: dict[str, torch.Tensor] = {}  # name -> bfloat16 copy of the parameter

    def keep_shadow(self, name: str) -> torch.Tensor:
        """A bfloat16 copy of parameter ``name``, kept up to date by every later update."""
        if name not in self.shadows:
            self.shadows[name] = self.params[name].data.to(torch.bfloat16)
        return self.shadows[name]

    def refresh_shadows(self) -> None:
        """Copy the parameters into their shadows (after changing parameters directly)."""
        for name, sh in self.shadows.items():
            sh.copy_(self.params[name].data)

    def _sync_shadow(self, name: str, rows: torch.Tensor | None) -> None:
        """After a torch-path update: the shadow of ``name`` (if any) follows the parameter."""
        sh = self.shadows.get(name)
        if sh is None:
            return
        p = self.params[name].data
        if rows is None:
            sh.copy_(p)
        else:
            sh.index_copy_(0, rows, p.index_select(0, rows).to(sh.dtype))

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
        self._sync_shadow(name, None)
        p.grad = None

    def step_rows(
        self, name: str, rows: torch.Tensor, grad: torch.Tensor, old: torch.Tensor | None = None
    ) -> None:
        """Update rows ``rows`` (unique indices) of parameter ``name`` with ``grad``.

        ``old``: optionally the current values of those rows (``param[rows]``, a copy);
        an optimiser may use it to avoid gathering them again.
        """
        self._update(name, self.params[name].data, grad, rows)
        self._sync_shadow(name, rows)

    def step_dense_many(self, names: list[str], grads: list[torch.Tensor]) -> None:
        """Update whole parameters ``names`` with the gradients ``grads`` (not ``.grad``;
        float32, or bfloat16: taken as their float32 values)."""
        for name, g in zip(names, grads, strict=True):
            p = self.params[name].data
            self._update(name, p, g.to(p.dtype), None)
            self._sync_shadow(name, None)

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

    def _kernels(self, *tensors: torch.Tensor):
        """The fused kernels if they apply to these tensors, else None."""
        if not fused.cpu_float_contiguous(*tensors):
            return None
        return fused.kernels()

    def _shadow_arg(self, name: str) -> torch.Tensor:
        """The kernels' shadow argument: the bfloat16 copy, or an empty tensor (none)."""
        sh = self.shadows.get(name)
        return _NO_SHADOW if sh is None else sh

    def _update(
        self, name: str, p: torch.Tensor, g: torch.Tensor, rows: torch.Tensor | None
    ) -> None:
        st = self.state[name]
        if rows is None:
            ext = self._kernels(p, g, st["acc"], st["vel"])
            if ext is not None:
                ext.adagrad_dense_(
                    [p], [st["acc"]], [st["vel"]], [g], [], self.lr, self.eps, self.momentum
                )
                return
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
        self._update_rows(name, p, g, rows, None)

    def step_rows(
        self, name: str, rows: torch.Tensor, grad: torch.Tensor, old: torch.Tensor | None = None
    ) -> None:
        if not self._update_rows(name, self.params[name].data, grad, rows, old):
            self._sync_shadow(name, rows)

    def _update_rows(
        self,
        name: str,
        p: torch.Tensor,
        g: torch.Tensor,
        rows: torch.Tensor,
        old: torch.Tensor | None,
    ) -> bool:
        """Returns True when the fused kernel ran (it has updated the shadow too)."""
        st = self.state[name]
        ext = self._kernels(p, g, st["acc"], st["vel"])
        if ext is not None and rows.device.type == "cpu" and rows.is_contiguous():
            sh = self._shadow_arg(name)
            ext.adagrad_rows_(
                p, st["acc"], st["vel"], rows, g, self.lr, self.eps, self.momentum, sh
            )
            return True
        acc = st["acc"].index_select(0, rows).addcmul_(g, g)  # (R, d)
        st["acc"].index_copy_(0, rows, acc)
        upd = g / (acc + self.eps).sqrt_()
        if self.momentum > 0:
            vel = st["vel"].index_select(0, rows).mul_(self.momentum).add_(upd, alpha=self.lr)
            st["vel"].index_copy_(0, rows, vel)
            step, alpha = vel, -1.0
        else:
            step, alpha = upd, -self.lr
        if old is None:
            p.index_add_(0, rows, step, alpha=alpha)
        elif p.dim() > 1:  # index_add_ adds each row with add_(alpha): one fused rounding
            p.index_copy_(0, rows, torch.add(old, step, alpha=alpha))
        else:  # 1-D index_add_ is a scalar loop: multiply, then add
            p.index_copy_(0, rows, old + step * alpha)
        return False

    def step_dense_many(self, names: list[str], grads: list[torch.Tensor]) -> None:
        ps = [self.params[n].data for n in names]
        accs = [self.state[n]["acc"] for n in names]
        vels = [self.state[n]["vel"] for n in names]
        ext = self._kernels(*ps, *accs, *vels)
        if ext is None or not fused.cpu_float_contiguous(*grads, dtypes=_KERNEL_GRAD_DTYPES):
            super().step_dense_many(names, grads)
            return
        shadows = [self._shadow_arg(n) for n in names] if self.shadows else []
        ext.adagrad_dense_(ps, accs, vels, grads, shadows, self.lr, self.eps, self.momentum)


_NO_SHADOW = torch.empty(0, dtype=torch.bfloat16)


# the dense kernel reads float32 and bfloat16 gradients
_KERNEL_GRAD_DTYPES = (torch.float32, torch.bfloat16)


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


# ------------------------------------------------------- the tasks' optimiser set-up
def build_optimizers(
    net: torch.nn.Module, optimizer: str, lr: float, weight_decay: float, momentum: float
) -> tuple[torch.optim.Optimizer | None, RowOptimizer | None, list[str]]:
    """The optimisers of a network trained by a task: ``torch.optim`` (``"adam"`` or
    ``"adagrad"``) for the dense parameters, a row-sparse optimiser (:class:`RowAdam`
    or :class:`AdagradM` with ``momentum``) for the tables the net names in
    ``row_params`` (optional attribute). Returns (dense optimiser | None, row optimiser
    | None, the row parameters' names)."""
    params = dict(net.named_parameters())
    row_names = [n for n in getattr(net, "row_params", []) if n in params]
    dense = [p for n, p in params.items() if n not in row_names]
    opt: torch.optim.Optimizer | None = None
    if dense and optimizer == "adam":
        # the fused implementation: one pass over each tensor instead of one per
        # element-wise operation (a 43k x 100 item table: 6.4 -> 1.9 ms per step, 2 threads)
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in dense)
        opt = torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay, fused=fused or None)
    elif dense:
        opt = torch.optim.Adagrad(dense, lr=lr, weight_decay=weight_decay)
    rows = {n: params[n] for n in row_names}
    row_opt: RowOptimizer | None = None
    if rows:
        row_opt = RowAdam(rows, lr) if optimizer == "adam" else AdagradM(rows, lr, momentum)
    return opt, row_opt, row_names


def step_lr(base: float, epoch: int, step: int, decay: float) -> float:
    """Step schedule: ``base * decay ** (epoch // step)`` for 0-based ``epoch``; ``base``
    when ``step`` is 0 (off). E.g. base 0.001, step 3, decay 0.1: epochs 0-2 train with
    0.001, epochs 3-5 with 0.0001, ..."""
    return base if step <= 0 else base * decay ** (epoch // step)


def set_learning_rate(
    opt: torch.optim.Optimizer | None, row_opt: RowOptimizer | None, lr: float
) -> None:
    """Set the learning rate of a task's dense and row-sparse optimisers."""
    if opt is not None:
        for group in opt.param_groups:
            group["lr"] = lr
    if row_opt is not None:
        row_opt.lr = lr


def step_row_params(opt: RowOptimizer, names: list[str], weight_decay: float = 0.0) -> None:
    """One step of the row parameters ``names`` after ``backward``: only the rows a
    sparse gradient touches (``nn.functional.embedding(..., sparse=True)`` in the net),
    else the whole table; ``weight_decay`` added to the gradient of the rows updated."""
    opt.tick()
    with torch.no_grad():
        for name in names:
            p = opt.params[name]
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                g = g.coalesce()
                rows, vals = g.indices()[0], g.values()  # (R,), (R, d)
                if weight_decay:
                    vals = vals + weight_decay * p.index_select(0, rows)
                opt.step_rows(name, rows, vals)
                p.grad = None
            else:
                if weight_decay:
                    g.add_(p, alpha=weight_decay)
                opt.step_dense(name)
