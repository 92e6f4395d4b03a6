"""GRU4Rec's fast training step: forward and a hand-written backward, no autograd graph.

The reference is the autograd step (``SessionParallelTask.train_step`` in
:mod:`seqrec.training.session_parallel`, ``fast_step = false``). This step computes the
same forward pass with the same torch kernels and differentiates it by hand, calling the
kernels autograd's backward formulas call (each ``mm`` in autograd's orientation,
``sigmoid_backward``, ``tanh_backward``, dropout backward = gradient * noise,
``index_select_backward``), writing the dense gradients straight into preallocated
buffers. On top of that (``exact=False``, the default) it uses cheaper formulations
that change float rounding only:

* cross-entropy (no ELU, no false-negative mask): the logQ correction folded into the
  bias of the scores ``addmm``; one ``softmax`` gives the gradient ``p - I``, and the
  loss is ``lse - s_ii`` with ``lse = max_j s_ij - log max_j p_ij``; the ``1/B`` of the
  mean is applied to the small operands (``out``, ``dS @ w``, the bias sums), not to
  the (B, C) matrix; on CPU the softmax, the loss per row and ``p - I`` in one compiled
  pass per row (``cross_entropy_`` in :mod:`seqrec.training.kernels`), ``exp`` within 2 ulp;
* bpr-max (no mask, >= 2 candidates): loss and gradient in closed form, on CPU in one
  compiled pass per row (``bpr_max_`` in :mod:`seqrec.training.kernels`, ~2x faster than the
  ~20 torch passes of :func:`bpr_max_and_grad`, which is the fallback and CUDA path),
  ELU's derivative taken from its result;
* on CPU the rows of the item tables gathered by a kernel that prefetches the rows
  ahead (``gather_rows_``: the same copies as ``index_select``, faster on cold rows);
* the item-row gradient accumulated with ``index_add_`` into one zero tensor;
* the optimiser updates through :meth:`RowOptimizer.step_dense_many` and
  :meth:`RowOptimizer.step_rows` with the gathered rows (fused C++ kernels on CPU, see
  :mod:`seqrec.training.kernels`).

With ``matmul_precision = "bfloat16"`` every matrix product takes bfloat16 operands
and returns bfloat16, which is converted back or promoted to float32 by the element-wise
op that consumes it; everything else is float32. The weight operands (the candidates'
rows of ``Wy``, the recurrent weight matrices) are read from bfloat16 copies that the
optimiser writes in its update pass (:meth:`RowOptimizer.keep_shadow`), and the weight
gradients are written in bfloat16 and read as such by the optimiser: bit for bit what
converting the float32 weights every step gives (``shadows=False``, a test compares),
without the conversions and the float32 gather of the candidates' rows.

Every other loss, and cross-entropy with ELU or a mask, runs autograd on the (B, C)
score matrix only. ``exact=True`` (tests) uses that path for every loss and
``index_select_backward`` for the rows, and is then bit-for-bit the autograd step.

Supported: cell gru, any number of layers, every input mode (constrained / separate
embedding / one-hot), every loss, dropout with or without ``carry_dropout``, Adagrad
(with or without momentum) and Adam, ``n_sample >= 0``, ``mask_false_negatives``, idle
session slots at the end of an epoch, CPU and CUDA. :func:`unsupported_reason` names
what is not (other cells).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from seqrec.training import kernels as fused
from seqrec.training.losses import BPR_MAX_EPS
from seqrec.training.precision import resolve_matmul_dtype

if TYPE_CHECKING:
    from seqrec.training.session_parallel import SessionParallelTask

__all__ = [
    "FastStep",
    "bpr_max_and_grad",
    "cross_entropy_and_grad",
    "make_fast_step",
    "unsupported_reason",
]

aten = torch.ops.aten
log = logging.getLogger("seqrec.training.gru4rec_fast")


def unsupported_reason(task: SessionParallelTask) -> str | None:
    """Why the fast step cannot train this task's configuration (None: it can)."""
    cfg, net = task.cfg, task.net
    if not cfg.fast_step:
        return "fast_step = false"
    if net.cell != "gru":
        return f"cell {net.cell!r} (the fast step implements gru)"
    if cfg.optimizer not in ("adagrad", "adam"):
        return f"optimizer {cfg.optimizer!r}"
    if net.Wy.dtype != torch.float32:
        return f"dtype {net.Wy.dtype}"
    return None


def make_fast_step(task: SessionParallelTask, exact: bool = False) -> FastStep | None:
    """The fast step for a GRU4Rec training task, or None (logged at debug level) when
    its configuration needs the autograd step."""
    reason = unsupported_reason(task)
    if reason is not None:
        log.debug("gru4rec training step: autograd (%s)", reason)
        return None
    log.debug("gru4rec training step: fast (manual backward)")
    return FastStep(task, exact=exact)


def cross_entropy_and_grad(scores: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax cross-entropy of the diagonal: (mean loss, B * dloss/dscores).

    ``scores`` (B, C) are the logits (logQ correction already applied); it is not
    modified. The gradient is returned unscaled (``softmax - I``): multiply by 1/B.
    """
    p = torch.softmax(scores, dim=1)  # (B, C)
    # lse = m + log sum exp(s - m) with m = max s, and max_j p_j = 1 / sum exp(s - m)
    # (>= 1/C, never underflows), so lse = max_j s_j - log max_j p_j
    lse = scores.amax(dim=1) - p.amax(dim=1).log_()  # (B,)
    loss = (lse - scores.diagonal()).mean()
    p.diagonal().sub_(1.0)
    return loss, p


def bpr_max_and_grad(scores: Tensor, bpreg: float, elu: float = 0.0) -> tuple[Tensor, Tensor]:
    """BPR-max (Hidasi & Karatzoglou 2018) loss and its gradient in closed form.

    ``scores`` (B, C), C >= 2, no mask: the negatives of row i are every column j != i.
    With r = ELU_elu(scores) (identity if elu = 0), s = softmax of r over j != i,
    sig_j = sigmoid(r_i - r_j), A = sum_j s_j sig_j and Q = sum_j s_j r_j^2:

        L_i = -log(A + eps) + bpreg * Q
        dL_i/dr_k = s_k [(A - sig_k^2) / (A + eps) + bpreg (r_k^2 + 2 r_k - Q)]  (k != i)
        dL_i/dr_i = -sum_j s_j sig_j (1 - sig_j) / (A + eps)

    Returns (mean loss, B * dloss/dscores) (unscaled: multiply by 1/B), the same values
    as :func:`seqrec.losses.bpr_max` and autograd up to float rounding.
    """
    r = F.elu(scores, alpha=elu) if elu > 0 else scores  # (B, C)
    rm = r.clone()
    rm.diagonal().fill_(-math.inf)
    s = torch.softmax(rm, dim=1)  # (B, C); 0 on the diagonal
    sig = (r.diagonal().unsqueeze(1) - r).sigmoid_()  # (B, C)
    ssig = s * sig
    A = ssig.sum(dim=1)  # (B,)
    r2 = r * r
    Q = (s * r2).sum(dim=1)  # (B,)
    Ae = A + BPR_MAX_EPS
    W = Ae.reciprocal()
    loss = (bpreg * Q - torch.log(Ae)).mean()
    diag = (ssig.mul_(sig).sum(dim=1) - A).mul_(W)  # -sum s sig (1 - sig) / (A + eps)
    # g = s * (bpreg r^2 + 2 bpreg r - W sig^2 + (A W - bpreg Q)), written in place
    g = r2.mul_(bpreg).add_(r, alpha=2.0 * bpreg)
    g.sub_(sig.square_().mul_(W.unsqueeze(1)))
    g.add_((A * W - bpreg * Q).unsqueeze(1))
    g.mul_(s)
    g.diagonal().copy_(diag)
    if elu > 0:  # dELU/dx = 1 (x > 0) else result + alpha: from the result, one pass
        g = aten.elu_backward(g, elu, 1, 1, True, r)
    return loss, g


def _dropout_backward(grad: Tensor, saved: Tensor, p: float) -> Tensor:
    if saved.dtype == torch.bool:
        return aten.native_dropout_backward(grad, saved, 1.0 / (1.0 - p))
    return grad * saved


class FastStep:
    """A ``train_step`` for a GRU4Rec training task (see the module docstring).

    Reads the task's network, optimiser, sampler, loss, dropout and carried state
    (``task.state``, which it replaces every step like the autograd step does).
    """

    def __init__(
        self, task: SessionParallelTask, exact: bool = False, shadows: bool = True
    ) -> None:
        cfg = task.loss_cfg  # loss keys; the network's own keys are read from the network
        net = task.net
        self.task = task
        self.cfg = cfg
        self.exact = exact
        self.mode = net.input_mode  # constrained | embedding | onehot
        self.params = task.params
        self.opt = task.opt
        self.sampler = task.sampler
        self.dropout = task.dropout  # (x, p) -> (x * noise, noise), the task's generator
        self.carry = net.carry_dropout
        self.pe = net.p_embed
        self.ph = net.p_hidden
        self.use_logq = task.log_q is not None and cfg.logq != 0.0
        # matmul_precision = bfloat16: operands of every matrix product in bfloat16
        self.lp = resolve_matmul_dtype(task.cfg.matmul_precision, task.device, True)
        # lp: operands from bfloat16 shadows kept by the optimiser (False: converted every
        # step, as a reference for the tests: the same results bit for bit)
        self.shadows = self.lp is not None and shadows
        self.in_name = {"embedding": "E", "onehot": "Wx.0"}.get(self.mode)
        # per layer: size, Wx (None for the one-hot first layer: a row table), Wh halves, b
        self.layers = []
        self.dense_names: list[str] = []
        self.dense_grads: list[Tensor] = []
        for layer, H in enumerate(net.layers):
            wx = None if (layer == 0 and self.mode == "onehot") else self.params[f"Wx.{layer}"]
            wh = self.params[f"Wh.{layer}"]
            b = self.params[f"b.{layer}"]
            g_wx = self._grad_buffer(f"Wx.{layer}") if wx is not None else None
            g_wh = self._grad_buffer(f"Wh.{layer}")
            g_b = self._grad_buffer(f"b.{layer}")
            self.layers.append(
                (
                    H,
                    None if wx is None else wx.data,
                    wh.data[:, : 2 * H],
                    wh.data[:, 2 * H :],
                    b.data,
                    g_wx,
                    g_wh[:, : 2 * H],
                    g_wh[:, 2 * H :],
                    g_b,
                )
            )
        # bfloat16 copies of Wy and of the dense weights that the optimiser keeps current
        # (lp only): the products read their operands from them, no conversion per step
        self.low_w: list[tuple[Tensor | None, Tensor, Tensor]] = []
        self.low_wy: Tensor | None = None
        if self.shadows:
            self.low_wy = self.opt.keep_shadow("Wy")
            for layer, (H, Wx, *_rest) in enumerate(self.layers):
                sh_wh = self.opt.keep_shadow(f"Wh.{layer}")
                sh_wx = None if Wx is None else self.opt.keep_shadow(f"Wx.{layer}")
                self.low_w.append((sh_wx, sh_wh[:, : 2 * H], sh_wh[:, 2 * H :]))
        if sorted(self.dense_names) != sorted(task.dense_names):
            raise AssertionError(f"dense parameters {self.dense_names} != {task.dense_names}")
        # compiled kernels (CPU): prefetching row gathers from the item tables, the
        # cross-entropy and BPR-max rows (None: torch ops)
        self.kernels = fused.kernels() if net.Wy.device.type == "cpu" else None
        # cross-entropy / bpr-max closed forms (other cases: autograd on the score matrix)
        self.closed = None
        if not exact and not cfg.mask_false_negatives:
            if cfg.loss == "cross-entropy" and cfg.elu_param == 0:
                self.closed = "ce"
            elif cfg.loss == "bpr-max":
                self.closed = "bpr-max"

    def refresh(self) -> None:
        """Re-copy the bfloat16 shadows from the weights (at the start of an epoch: the
        weights may have been loaded or changed since the last step)."""
        self.opt.refresh_shadows()

    def _grad_buffer(self, name: str) -> Tensor:
        p = self.params[name].data
        # lp: the products write the weight-matrix gradients in bfloat16, which the
        # optimiser reads as such (biases stay float32: summed, not multiplied)
        low = self.shadows and p.dim() == 2
        g = torch.zeros_like(p, dtype=self.lp if low else None)
        self.dense_names.append(name)
        self.dense_grads.append(g)
        return g

    # ------------------------------------------------------------------ loss
    def _loss_autograd(self, scores: Tensor, cand: Tensor, tgt: Tensor) -> tuple[Tensor, Tensor]:
        """The configured loss through autograd on the score matrix: (loss, dloss/dscores)."""
        cfg, task = self.cfg, self.task
        with torch.enable_grad():
            leaf = scores.requires_grad_()
            sc = F.elu(leaf, alpha=cfg.elu_param) if cfg.elu_param > 0 else leaf
            log_q = task.log_q.index_select(0, cand) if task.log_q is not None else None
            mask = None
            if cfg.mask_false_negatives:
                mask = cand.unsqueeze(0) == tgt.unsqueeze(1)  # (B, C)
                mask.fill_diagonal_(False)
            loss = task.loss_fn(
                sc, log_q=log_q, logq=cfg.logq, bpreg=cfg.bpreg, mask=mask,
                temperature=cfg.temperature,
            )  # fmt: skip
            (d_scores,) = torch.autograd.grad(loss, leaf)
        return loss.detach(), d_scores

    def _take(self, table: Tensor, idx: Tensor) -> Tensor:
        """``table.index_select(0, idx)``; on CPU by the kernel that prefetches the rows
        ahead (the rows of the item tables are scattered over more than the caches)."""
        ext = self.kernels
        if ext is None or not (table.is_contiguous() and idx.is_contiguous()):
            return table.index_select(0, idx)
        out = table.new_empty((idx.shape[0], *table.shape[1:]))
        ext.gather_rows_(out, table, idx)
        return out

    def _addmm(self, bias: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """bias + a @ b, in float32 (a, b in bfloat16 when ``matmul_precision`` says so)."""
        if self.lp is None:
            return torch.addmm(bias, a, b)
        return (a @ b).float().add_(bias)

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def __call__(self, batch: tuple[Tensor, Tensor, Tensor, bool]) -> tuple[Tensor, int]:
        inp, tgt, reset, full = batch
        task, cfg = self.task, self.cfg
        state = task.state.masked_fill(reset.unsqueeze(1), 0.0)  # (B, S)
        if full:
            active = None
            h_all = state
        else:  # end of the epoch: some slots are idle
            active = (tgt >= 0).nonzero().squeeze(1)
            inp, tgt, h_all = inp[active], tgt[active], state[active]
        n = tgt.shape[0]
        neg = self.sampler.sample()  # (n_sample,)
        cand = torch.cat([tgt, neg]) if neg.numel() else tgt  # (C,)

        # ---- the touched rows of the item tables
        Wy = self.params["Wy"].data
        By = self.params["By"].data
        # (lp: the candidates' rows come from the bfloat16 copy of Wy; no float32 gather)
        low_wy = self.low_wy
        wy = None
        if self.mode == "constrained":
            rows, inv = torch.unique(torch.cat([inp, cand]), return_inverse=True)
            by = self._take(By, rows)  # (R,)
            inv_x, inv_c = inv[:n], inv[n:]
            if low_wy is None:
                wy = self._take(Wy, rows)  # (R, H)
                x = wy.index_select(0, inv_x)  # (B, H)
            else:
                x = self._take(Wy, inp)  # (B, H)
            rows_in, tab_shape = rows, (rows.shape[0], Wy.shape[1])
        else:
            rows, inv_c = torch.unique(cand, return_inverse=True)
            if low_wy is None:
                wy = self._take(Wy, rows)
            by = self._take(By, rows)
            rows_in, inv_x = torch.unique(inp, return_inverse=True)
            tab_in = self._take(self.params[self.in_name].data, rows_in)
            tab_shape = tuple(tab_in.shape)
            x = tab_in.index_select(0, inv_x)  # (B, in0)
        if self.lp is not None and low_wy is None:  # converted here (reference path)
            w_c = wy.to(self.lp).index_select(0, inv_c)  # (C, H) bfloat16
        elif wy is not None:
            w_c = wy.index_select(0, inv_c)  # (C, H)
        else:
            w_c = self._take(low_wy, cand)  # (C, H) bfloat16
        b_c = by.index_select(0, inv_c)  # (C,)

        # ---- forward (the ops of GRU4RecNet.recur)
        pe, ph = self.pe, self.ph
        if pe > 0:
            xin, noise_e = self.dropout(x, pe)
        else:
            xin, noise_e = x, None
        saved = []
        new_parts = []
        inp_l = xin
        offset = 0
        lp = self.lp
        low = []  # per layer: the bfloat16 copies of Wx, Wh_rz, Wh_n (lp only)
        saved_lp = []  # per layer: bfloat16 input, h and r*h for the backward (lp only)
        for H, Wx, Wh_rz, Wh_n, b, *_ in self.layers:
            h = h_all[:, offset : offset + H]  # (B, H)
            offset += H
            if lp is None:
                gx = inp_l + b if Wx is None else torch.addmm(b, inp_l, Wx)  # (B, 3H)
                hh = h @ Wh_rz  # (B, 2H)
            else:
                if self.shadows:
                    Wx_, Wh_rz_, Wh_n_ = self.low_w[len(low)]
                else:
                    Wx_ = None if Wx is None else Wx.to(lp)
                    Wh_rz_, Wh_n_ = Wh_rz.to(lp), Wh_n.to(lp)
                low.append((Wx_, Wh_rz_, Wh_n_))
                inp_lp = None if Wx_ is None else inp_l.to(lp)
                gx = inp_l + b if Wx_ is None else (inp_lp @ Wx_).float().add_(b)
                h_lp = h.to(lp)
                hh = h_lp @ Wh_rz_
            xr, xz, xn = gx.split(H, dim=1)
            hr, hz = hh.split(H, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            rh = r * h
            if lp is None:
                n_ = torch.tanh(xn + rh @ Wh_n)
            else:
                rh_lp = rh.to(lp)
                n_ = torch.tanh(xn + rh_lp @ Wh_n_)
                saved_lp.append((inp_lp, h_lp, rh_lp))
            h_new = torch.lerp(h, n_, z)
            if ph > 0:
                o, noise_h = self.dropout(h_new, ph)
            else:
                o, noise_h = h_new, None
            saved.append((inp_l, h, r, z, rh, n_, noise_h))
            new_parts.append(o if self.carry else h_new)
            inp_l = o
        out = inp_l  # (B, H_last)

        # ---- scores, loss, dloss/dscores
        closed = self.closed
        if closed == "bpr-max" and cand.shape[0] < 2:
            closed = None  # no negative at all: the reference loss handles it
        # operands of the score product and its backward (bfloat16 copies in lp mode)
        out_, w_c_ = (out, w_c) if lp is None else (out.to(lp), w_c)
        if closed == "ce":
            bias = b_c
            if self.use_logq:
                bias = b_c - cfg.logq * self._take(task.log_q, cand)
            scores = self._addmm(bias, out_, w_c_.t())  # (B, C) logits
            if self.kernels is not None:  # per-row loss and gradient, in place of scores
                per_row = scores.new_empty(n)
                self.kernels.cross_entropy_(scores, per_row)
                loss, dS = per_row.mean(), scores
            else:
                loss, dS = cross_entropy_and_grad(scores)
        elif closed == "bpr-max":
            scores = self._addmm(b_c, out_, w_c_.t())  # (B, C)
            if self.kernels is not None:  # loss per row and gradient, in place of scores
                per_row = scores.new_empty(n)
                self.kernels.bpr_max_(scores, scores, per_row, cfg.bpreg, cfg.elu_param)
                loss, dS = per_row.mean(), scores
            else:
                loss, dS = bpr_max_and_grad(scores, cfg.bpreg, cfg.elu_param)
        else:
            scores = self._addmm(b_c, out_, w_c_.t())  # (B, C)
            loss, dS = self._loss_autograd(scores, cand, tgt)

        # ---- backward: scores
        if lp is not None:
            inv_n = 1.0 / n if closed is not None else 1.0
            d_bc = dS.sum(dim=0).mul_(inv_n)  # (C,)
            dS_ = dS.to(lp)
            d_out = (dS_ @ w_c_).float().mul_(inv_n)  # (B, H)
            d_wc = (dS_.t() @ (out * inv_n).to(lp)).float()  # (C, H)
        elif closed is not None:  # dS is n * dL/dscores
            inv_n = 1.0 / n
            d_bc = dS.sum(dim=0).mul_(inv_n)  # (C,)
            d_out = dS.mm(w_c).mul_(inv_n)  # (B, H)
            d_wc = dS.t().mm(out * inv_n)  # (C, H)
        else:  # addmm backward, in autograd's orientation (w_c.t() is column-major)
            d_bc = dS.sum(dim=0)
            d_out = dS.mm(w_c)
            d_wc = dS.t().mm(out)

        # ---- backward: the recurrent layers, top down
        d = d_out
        d_x = None
        for layer in range(len(self.layers) - 1, -1, -1):
            H, Wx, Wh_rz, Wh_n, _b, g_wx, g_wh_rz, g_wh_n, g_b = self.layers[layer]
            inp_l, h, r, z, rh, n_, noise_h = saved[layer]
            d_hnew = _dropout_backward(d, noise_h, ph) if noise_h is not None else d
            d_n = d_hnew * z  # lerp(h, n, z): d end = g * z
            d_z = d_hnew * (n_ - h)  # d weight = g * (end - start)
            da_n = aten.tanh_backward(d_n, n_)
            da_z = aten.sigmoid_backward(d_z, z)
            if lp is None:
                d_rh = da_n.mm(Wh_n.t())
                da_r = aten.sigmoid_backward(d_rh * h, r)
                dgx = torch.cat([da_r, da_z, da_n], dim=1)  # (B, 3H)
                torch.sum(dgx, dim=0, out=g_b)
                torch.mm(h.t(), torch.cat([da_r, da_z], dim=1), out=g_wh_rz)
                torch.mm(rh.t(), da_n, out=g_wh_n)
                if Wx is not None:
                    torch.mm(inp_l.t(), dgx, out=g_wx)
                    d = dgx.mm(Wx.t())  # d input of this layer
            else:  # bfloat16 operands, each converted once (weights: the forward's copies)
                Wx_, _, Wh_n_ = low[layer]
                inp_lp, h_lp, rh_lp = saved_lp[layer]
                d_rh = da_n.to(lp) @ Wh_n_.t()  # (B, H) bfloat16
                da_r = aten.sigmoid_backward(d_rh * h, r)
                dgx = torch.cat([da_r, da_z, da_n], dim=1)  # (B, 3H)
                torch.sum(dgx, dim=0, out=g_b)
                dgx_lp = dgx.to(lp)
                g_wh_rz.copy_(h_lp.t() @ dgx_lp[:, : 2 * H])
                g_wh_n.copy_(rh_lp.t() @ dgx_lp[:, 2 * H :])
                if Wx_ is not None:
                    g_wx.copy_(inp_lp.t() @ dgx_lp)
                    d = (dgx_lp @ Wx_.t()).float()  # d input of this layer
            if Wx is None:  # one-hot first layer: dgx are the gathered rows' gradients
                d_x = dgx
            elif layer == 0:
                d_x = d
        assert d_x is not None
        if noise_e is not None:
            d_x = _dropout_backward(d_x, noise_e, pe)

        # ---- row gradients
        R = rows.shape[0]
        if self.exact:
            g_wy = aten.index_select_backward(d_wc, (R, Wy.shape[1]), 0, inv_c)
            g_in = aten.index_select_backward(d_x, tab_shape, 0, inv_x)
            g_by = aten.index_select_backward(d_bc, (R,), 0, inv_c)
            if self.mode == "constrained":
                g_wy = g_wy + g_in
        else:
            g_wy = Wy.new_zeros(R, Wy.shape[1]).index_add_(0, inv_c, d_wc)
            g_by = torch.zeros_like(by).index_add_(0, inv_c, d_bc)
            if self.mode == "constrained":
                g_wy.index_add_(0, inv_x, d_x)
            else:
                g_in = torch.zeros_like(tab_in).index_add_(0, inv_x, d_x)

        # ---- updates
        opt = self.opt
        opt.tick()
        opt.step_dense_many(self.dense_names, self.dense_grads)
        opt.step_rows("Wy", rows, g_wy, old=wy)
        opt.step_rows("By", rows, g_by, old=by)
        if self.mode != "constrained":
            opt.step_rows(self.in_name, rows_in, g_in, old=tab_in)

        new_state = torch.cat(new_parts, dim=1) if len(new_parts) > 1 else new_parts[0]
        if active is None:
            task.state = new_state
        else:
            state[active] = new_state
            task.state = state
        return loss, n
