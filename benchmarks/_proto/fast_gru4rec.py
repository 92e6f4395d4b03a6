"""Prototype of a faster GRU4Rec training step (NOT imported by the package).

``FastTask`` subclasses seqrec's ``_Task`` and replaces ``train_step`` for the
configuration the speed benchmark uses (gru cell, one layer, constrained embedding,
Adagrad, no false-negative masking). Levels (cumulative):

  level 1  bit-exact, keeps autograd: Adagrad row update writes ``old_rows + step`` with
           ``index_copy_`` (no ``index_add_``), dense Adagrad on one flat buffer for all
           dense parameters (Wx, Wh, b are views into it), less Python per step.
  level 2  level 1 + manual backward of the whole step (no autograd graph), written with
           the same aten kernels autograd calls (mm orientation, sigmoid/tanh_backward,
           index_select_backward, logsumexp backward), gradients of dense parameters
           computed straight into a flat buffer with ``out=``. Bit-exact with the
           reference. The loss: cross-entropy is differentiated by hand (the same ops
           autograd runs), other losses run autograd on a (B, C) leaf only.
  level 3  level 2 + cross-entropy via ``log_softmax`` (2 passes over (B, C) instead of
           ~8); logq folded into the bias. Changes float rounding only.
  level 4  level 3 + the Adagrad updates (row tables and the flat dense buffer) in one
           fused C++ pass each (fused_ext.py, JIT-compiled): no gather/scatter copies of
           the optimiser state. Changes float rounding only (torch.sqrt on this build is
           MKL VML, not correctly rounded; the kernel's sqrt is).
  level 5  level 4 + cross-entropy from one fused ``softmax`` (loss from the row max of the
           logits and of the softmax, so no log/exp passes over (B, C)); 1/B applied
           to the small operands (out, d_out, d_b) instead of (B, C); the row gradient
           assembled with one zeros + two index_add_ (instead of two
           index_select_backward + add); bpr-max loss and gradient in closed form
           (``_bpr_max_manual``). Rounding only.

The carried state follows seqrec's ``carry_dropout`` (the dropped-out hidden vector when
on). Bit-exactness of levels 1-2 (and the background sampler) is checked by
``compare.py exact``.

``bg_sampler=True`` additionally draws the next negative-sample cache in a background
thread (identical draws: same generator, same order).
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F

from seqrec.models.gru4rec import _Task
from seqrec.training.losses import BPR_MAX_EPS

aten = torch.ops.aten


class _BgSampler:
    """Wraps a PopularitySampler: the next cache is drawn in a thread while the current
    one is consumed. Same generator, same call order => identical draws."""

    def __init__(self, sampler) -> None:
        self.s = sampler
        self._next = None
        self._next_state = None
        self._thread = None

    def _draw_next(self) -> None:
        self._next_state = self.s._gen.get_state()
        self._next = self.s._draw()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._draw_next, daemon=True)
        self._thread.start()

    def sample(self) -> torch.Tensor:
        s = self.s
        if s._cache is None or s._pos + s.n_sample > s.cache_len:
            if self._thread is None:  # first cache: draw synchronously
                s._refresh()
            else:
                self._thread.join()
                s._cache_gen_state, s._cache = self._next_state, self._next
                s._pos = 0
                s._refreshes += 1
            self._start()
        out = s._cache[s._pos : s._pos + s.n_sample]
        s._pos += s.n_sample
        return out


def _bpr_max_manual(S: torch.Tensor, elu: float, bpreg: float):
    """BPR-max (with optional ELU) loss and n * dL/dS by hand, no mask (every row has
    C - 1 >= 1 negatives). Row i, r = elu(S): s = softmax of r over j != i,
    sig_j = sigmoid(r_i - r_j), A = sum s sig, Q = sum s r^2;
    L_i = -log(A + eps) + bpreg Q;
    dL_i/dr_k = s_k [(A - sig_k^2) / (A + eps) + bpreg (r_k^2 + 2 r_k - Q)]  (k != i),
    dL_i/dr_i = -sum_j s_j sig_j (1 - sig_j) / (A + eps)."""
    r = F.elu(S, alpha=elu) if elu > 0 else S
    rm = r.clone()
    rm.diagonal().fill_(-math.inf)
    sm = torch.softmax(rm, dim=1)  # (B, C), 0 on the diagonal
    sig = (r.diagonal().unsqueeze(1) - r).sigmoid_()  # (B, C)
    ssig = sm * sig
    A = ssig.sum(1)  # (B,)
    r2 = r * r
    Q = (sm * r2).sum(1)  # (B,)
    Ae = A + BPR_MAX_EPS
    W = Ae.reciprocal()
    loss = (bpreg * Q - torch.log(Ae)).mean()
    diag = (ssig.mul_(sig).sum(1) - A).mul_(W)  # -sum s sig (1 - sig) / (A + eps)
    # g = s * (bpreg r^2 + 2 bpreg r - W sig^2 + (A W - bpreg Q))
    g = r2.mul_(bpreg).add_(r, alpha=2.0 * bpreg)
    g.add_(sig.square_().mul_(W.unsqueeze(1)), alpha=-1.0)
    g.add_((A * W - bpreg * Q).unsqueeze(1))
    g.mul_(sm)
    g.diagonal().copy_(diag)
    if elu > 0:  # d elu / dS = 1 (S > 0) else r + alpha, from the result (no exp, no where)
        g = aten.elu_backward(g, elu, 1, 1, True, r)
    return loss, g


class FastTask(_Task):
    level = 2
    bg_sampler = False

    def __init__(self, model, train, valid) -> None:
        super().__init__(model, train, valid)
        cfg, net = self.cfg, self.net
        assert cfg.cell == "gru" and len(net.layers) == 1 and net.input_mode == "constrained"
        assert cfg.optimizer == "adagrad" and not cfg.mask_false_negatives
        # flat dense buffers: parameters, Adagrad accumulators (and velocity), gradients
        names = self.dense_names  # Wx.0, Wh.0, b.0
        sizes = [self.params[n].numel() for n in names]
        total = sum(sizes)
        self.flat_p = torch.empty(total)
        self.flat_acc = torch.empty(total)
        self.flat_vel = torch.empty(total)
        self.flat_g = torch.zeros(total)
        self.gviews = {}
        off = 0
        for n, k in zip(names, sizes, strict=True):
            p = self.params[n]
            sl = slice(off, off + k)
            self.flat_p[sl].copy_(p.data.reshape(-1))
            p.data = self.flat_p[sl].view(p.shape)
            st = self.opt.state[n]
            self.flat_acc[sl].copy_(st["acc"].reshape(-1))
            st["acc"] = self.flat_acc[sl].view(p.shape)
            self.flat_vel[sl].copy_(st["vel"].reshape(-1))
            st["vel"] = self.flat_vel[sl].view(p.shape)
            self.gviews[n] = self.flat_g[sl].view(p.shape)
            off += k
        self.H = net.layers[0]
        self.eps = self.opt.eps
        self.lr = self.opt.lr
        self.mom = self.opt.momentum
        if self.bg_sampler:
            self.sampler = _BgSampler(self.sampler)
        if self.level >= 4:
            from fused_ext import ext

            self._ext = ext()

    # ---------------------------------------------------------------- optimiser
    def _rows_update(self, name, rows, old, g):
        """Adagrad(+momentum) on rows ``rows`` (unique) of table ``name``; ``old`` are the
        rows' current values (gathered this step, untouched since). Bit-exact with
        AdagradM._update (2-D: add_(alpha) == index_add_; 1-D: x + u*(-lr) == the
        scalar index_add_ loop)."""
        st = self.opt.state[name]
        p = self.params[name].data
        if self.level >= 4:
            self._ext.adagrad_rows_(p, st["acc"], st["vel"], rows, g, self.lr, self.eps, self.mom)
            return
        acc = st["acc"].index_select(0, rows).addcmul_(g, g)
        st["acc"].index_copy_(0, rows, acc)
        upd = g / acc.add_(self.eps).sqrt_()  # acc no longer needed: reuse in place
        if self.mom > 0:
            vel = st["vel"].index_select(0, rows).mul_(self.mom).add_(upd, alpha=self.lr)
            st["vel"].index_copy_(0, rows, vel)
            new = old.add_(vel, alpha=-1.0) if p.dim() > 1 else old + vel * -1.0
        else:
            new = old.add_(upd, alpha=-self.lr) if p.dim() > 1 else old + upd * -self.lr
        p.index_copy_(0, rows, new)

    def _dense_update(self):
        g, acc, p = self.flat_g, self.flat_acc, self.flat_p
        if self.level >= 4:
            self._ext.adagrad_dense_(p, acc, self.flat_vel, g, self.lr, self.eps, self.mom)
            return
        acc.addcmul_(g, g)
        upd = g / (acc + self.eps).sqrt_()
        if self.mom > 0:
            self.flat_vel.mul_(self.mom).add_(upd, alpha=self.lr)
            p.sub_(self.flat_vel)
        else:
            p.sub_(upd, alpha=self.lr)

    # ---------------------------------------------------------------- step
    def train_step(self, batch):
        if self.level == 1:
            return self._step_autograd(batch)
        return self._step_manual(batch)

    def _prologue(self, batch):
        inp, tgt, reset, full = batch
        state = self.state.masked_fill(reset.unsqueeze(1), 0.0)
        if not full:
            active = (tgt >= 0).nonzero().squeeze(1)
            inp, tgt, state_in = inp[active], tgt[active], state[active]
        else:
            active, state_in = None, state
        return inp, tgt, state, state_in, active

    def _epilogue(self, new_state, state, active):
        if active is None:
            self.state = new_state
        else:
            state = state.clone()
            state[active] = new_state
            self.state = state

    def _step_autograd(self, batch):
        cfg, net = self.cfg, self.net
        inp, tgt, state, state_in, active = self._prologue(batch)
        n = tgt.shape[0]
        neg = self.sampler.sample()
        cand = torch.cat([tgt, neg])
        rows, inv = torch.unique(torch.cat([inp, cand]), return_inverse=True)
        wy_old = self.params["Wy"].data.index_select(0, rows)
        by_old = self.params["By"].data.index_select(0, rows)
        wy = (
            wy_old.detach().requires_grad_()
        )  # shares memory with wy_old: read-only until the update
        by = by_old.detach().requires_grad_()
        inv_c = inv[n:]
        x = wy.index_select(0, inv[:n])
        w_c = wy.index_select(0, inv_c)
        b_c = by.index_select(0, inv_c)
        new_state, out = net.recur(state_in, x, cfg.dropout_p_embed, cfg.dropout_p_hidden, True)
        scores = torch.addmm(b_c, out, w_c.t())
        if cfg.elu_param > 0:
            scores = F.elu(scores, alpha=cfg.elu_param)
        log_q = self.log_q.index_select(0, cand) if self.log_q is not None else None
        loss = self.loss_fn(scores, log_q=log_q, logq=cfg.logq, bpreg=cfg.bpreg, mask=None)
        loss.backward()
        with torch.no_grad():
            self.opt.tick()
            for nm in self.dense_names:
                p = self.params[nm]
                self.gviews[nm].copy_(p.grad)
                p.grad = None
            self._dense_update()
            self._rows_update("Wy", rows, wy_old, wy.grad)
            self._rows_update("By", rows, by_old, by.grad)
        self._epilogue(new_state.detach(), state, active)
        return loss.detach(), n

    @torch.no_grad()
    def _step_manual(self, batch):
        cfg = self.cfg
        H = self.H
        inp, tgt, state, h, active = self._prologue(batch)
        n = tgt.shape[0]
        neg = self.sampler.sample()
        cand = torch.cat([tgt, neg])
        rows, inv = torch.unique(torch.cat([inp, cand]), return_inverse=True)
        R = rows.shape[0]
        Wy, By = self.params["Wy"].data, self.params["By"].data
        wy = Wy.index_select(0, rows)  # (R, H)
        by = By.index_select(0, rows)  # (R,)
        inv_x, inv_c = inv[:n], inv[n:]
        x = wy.index_select(0, inv_x)  # (B, H) (== Wy[inp])
        w_c = wy.index_select(0, inv_c)  # (C, H)
        b_c = by.index_select(0, inv_c)  # (C,)
        Wx, Wh, b = self.params["Wx.0"].data, self.params["Wh.0"].data, self.params["b.0"].data
        # ---- forward (same ops as GRU4RecNet.recur)
        pe, ph = cfg.dropout_p_embed, cfg.dropout_p_hidden
        if pe > 0:
            noise_e = torch.empty_like(x).bernoulli_(1 - pe).div_(1 - pe)
            xin = x * noise_e
        else:
            xin = x
        gx = torch.addmm(b, xin, Wx)  # (B, 3H)
        xr, xz, xn = gx.split(H, dim=1)
        Wh_rz, Wh_n = Wh[:, : 2 * H], Wh[:, 2 * H :]
        hr, hz = (h @ Wh_rz).split(H, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        rh = r * h
        nn_ = torch.tanh(xn + rh @ Wh_n)
        h_new = torch.lerp(h, nn_, z)
        if ph > 0:
            noise_h = torch.empty_like(h_new).bernoulli_(1 - ph).div_(1 - ph)
            out = h_new * noise_h
        else:
            out = h_new
        # ---- scores, loss and dL/dscores
        use_logq = self.log_q is not None and cfg.logq != 0.0
        scaled = False
        if cfg.loss == "cross-entropy" and self.level >= 5:
            bias = b_c - cfg.logq * self.log_q.index_select(0, cand) if use_logq else b_c
            scores = torch.addmm(bias, out, w_c.t())  # (B, C) logits
            dS = torch.softmax(scores, dim=1)  # (B, C)
            # lse = max + log(sum exp(s - max)) and max_j softmax_j = 1 / sum exp(s - max)
            # (>= 1/C, never underflows): lse = max_j s_j - log(max_j softmax_j)
            lse = scores.amax(dim=1) - dS.amax(dim=1).log_()
            loss = (lse - scores.diagonal()).mean()
            dS.diagonal().sub_(1.0)  # n * dL/dscores; the 1/n goes on the small operands
            scaled = True
        elif cfg.loss == "bpr-max" and self.level >= 5:
            scores = torch.addmm(b_c, out, w_c.t())  # (B, C)
            loss, dS = _bpr_max_manual(scores, cfg.elu_param, cfg.bpreg)
            scaled = True
        elif cfg.loss == "cross-entropy" and self.level >= 3:
            # logq folded into the bias (rounding differs); log_softmax gives loss and grad
            bias = b_c - cfg.logq * self.log_q.index_select(0, cand) if use_logq else b_c
            scores = torch.addmm(bias, out, w_c.t())  # (B, C) logits
            ls = torch.log_softmax(scores, dim=1)
            loss = -ls.diagonal().mean()
            dS = ls.exp_().mul_(1.0 / n)
            dS.diagonal().sub_(1.0 / n)
        elif cfg.loss == "cross-entropy":
            scores = torch.addmm(b_c, out, w_c.t())  # (B, C)
            if use_logq:
                log_q = self.log_q.index_select(0, cand)
                logits = scores - cfg.logq * log_q[None, :]
            else:
                logits = scores
            lse = torch.logsumexp(logits, dim=1)  # (B,)
            pos = logits.diagonal()
            loss = (lse - pos).mean()
            gB = torch.full((), 1.0, dtype=scores.dtype).div_(n)  # mean backward: 1/B
            # logsumexp backward: g * exp(x - lse); diagonal backward adds -g
            dS = (logits - lse.unsqueeze(1)).exp_().mul_(gB)
            dS.diagonal().sub_(gB)
        else:
            scores = torch.addmm(b_c, out, w_c.t())  # (B, C)
            with torch.enable_grad():
                s_leaf = scores.requires_grad_()
                sc = F.elu(s_leaf, alpha=cfg.elu_param) if cfg.elu_param > 0 else s_leaf
                log_q = self.log_q.index_select(0, cand) if self.log_q is not None else None
                loss = self.loss_fn(sc, log_q=log_q, logq=cfg.logq, bpreg=cfg.bpreg, mask=None)
                (dS,) = torch.autograd.grad(loss, s_leaf)
        # ---- backward
        if scaled:
            inv_n = 1.0 / n
            d_bc = dS.sum(0).mul_(inv_n)  # (C,)
            d_out = dS.mm(w_c).mul_(inv_n)  # (B, H)
            d_wc = dS.t().mm(out * inv_n)  # (C, H)
        else:
            d_bc = dS.sum(0)  # (C,)
            d_out = dS.mm(w_c)  # (B, H)
            d_wc = dS.t().mm(out)  # (C, H)
        d_hnew = d_out * noise_h if ph > 0 else d_out
        d_n = d_hnew * z  # lerp: end
        d_z = d_hnew * (nn_ - h)  # lerp: weight
        da_n = aten.tanh_backward(d_n, nn_)
        da_z = aten.sigmoid_backward(d_z, z)
        d_rh = da_n.mm(Wh_n.t())
        da_r = aten.sigmoid_backward(d_rh * h, r)
        gWx, gWh, gb = self.gviews["Wx.0"], self.gviews["Wh.0"], self.gviews["b.0"]
        dgx = torch.cat([da_r, da_z, da_n], dim=1)  # (B, 3H)
        torch.mm(xin.t(), dgx, out=gWx)
        torch.sum(dgx, 0, out=gb)
        torch.mm(h.t(), torch.cat([da_r, da_z], dim=1), out=gWh[:, : 2 * H])
        torch.mm(rh.t(), da_n, out=gWh[:, 2 * H :])
        d_xin = dgx.mm(Wx.t())
        d_x = d_xin * noise_e if pe > 0 else d_xin
        if self.level >= 5:
            g_wy = torch.zeros(R, H).index_add_(0, inv_c, d_wc).index_add_(0, inv_x, d_x)
            g_by = torch.zeros(R).index_add_(0, inv_c, d_bc)
        else:
            g_wy = aten.index_select_backward(d_wc, (R, H), 0, inv_c) + aten.index_select_backward(
                d_x, (R, H), 0, inv_x
            )
            g_by = aten.index_select_backward(d_bc, (R,), 0, inv_c)
        # ---- update
        self.opt.tick()
        self._dense_update()
        self._rows_update("Wy", rows, wy, g_wy)
        self._rows_update("By", rows, by, g_by)
        # seqrec >= 798bcf4: with carry_dropout the dropped-out vector is the carried state
        carried = out if getattr(cfg, "carry_dropout", False) else h_new
        self._epilogue(carried, state, active)
        return loss.detach(), n
