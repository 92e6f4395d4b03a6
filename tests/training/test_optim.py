"""Row-sparse optimisers equal their dense counterparts on the rows they touch."""

import torch

from seqrec.training.optim import AdagradM, RowAdam


def _dense_adagradm(p, grads, lr, mom, eps=1e-6):
    acc = torch.zeros_like(p)
    vel = torch.zeros_like(p)
    for g in grads:
        acc += g * g
        vel = mom * vel + lr * g / torch.sqrt(acc + eps)
        p = p - vel
    return p


def test_adagradm_rows_match_dense_reference_on_touched_rows():
    torch.manual_seed(0)
    W = torch.randn(10, 3)
    rows = torch.tensor([1, 4, 7])
    grads = [torch.randn(3, 3) for _ in range(4)]
    param = torch.nn.Parameter(W.clone())
    opt = AdagradM({"W": param}, lr=0.1, momentum=0.3)
    for g in grads:
        opt.tick()
        opt.step_rows("W", rows, g)
    ref = _dense_adagradm(W[rows], grads, 0.1, 0.3)
    assert torch.allclose(param.data[rows], ref, atol=1e-6)
    untouched = torch.tensor([0, 2, 3, 5, 6, 8, 9])
    assert torch.equal(param.data[untouched], W[untouched])


def test_adagradm_dense_step_uses_grad_and_clears_it():
    p = torch.nn.Parameter(torch.ones(4))
    opt = AdagradM({"p": p}, lr=0.5)
    p.grad = torch.full((4,), 2.0)
    opt.tick()
    opt.step_dense("p")
    assert p.grad is None
    assert torch.allclose(p.data, torch.full((4,), 1 - 0.5 * 2 / (4 + 1e-6) ** 0.5))


def test_row_adam_matches_torch_adam_when_all_rows_touched():
    torch.manual_seed(1)
    W = torch.randn(5, 2)
    grads = [torch.randn(5, 2) for _ in range(3)]
    mine = torch.nn.Parameter(W.clone())
    opt = RowAdam({"W": mine}, lr=0.01)
    ref = torch.nn.Parameter(W.clone())
    topt = torch.optim.Adam([ref], lr=0.01)
    for g in grads:
        opt.tick()
        opt.step_rows("W", torch.arange(5), g)
        ref.grad = g.clone()
        topt.step()
    assert torch.allclose(mine.data, ref.data, atol=1e-6)


def test_state_dict_round_trip():
    p = torch.nn.Parameter(torch.zeros(3, 2))
    opt = AdagradM({"p": p}, lr=0.1, momentum=0.5)
    opt.tick()
    opt.step_rows("p", torch.tensor([0, 2]), torch.ones(2, 2))
    sd = {k: v.clone() for k, v in opt.state_dict().items()}
    opt2 = AdagradM({"p": torch.nn.Parameter(torch.zeros(3, 2))}, lr=0.1, momentum=0.5)
    opt2.load_state_dict(sd)
    assert opt2.t == 1
    assert torch.equal(opt2.state["p"]["acc"], opt.state["p"]["acc"])
    assert torch.equal(opt2.state["p"]["vel"], opt.state["p"]["vel"])
