"""A PyTorch CPU peer of the float EqProp training (`pip install memprop[peer]`).

The same task, seed and protocol as `model.training.train`: the same seeded initial weights
and the same noisy samples in the same order (drawn from the same numpy generator), the same
bounded relaxation with per-sample convergence, the same EqProp update, clip and
symmetrisation, in float64. Written the way one writes it in PyTorch (converged samples are
masked, not compacted). `memprop bench` runs it beside the numpy model and reports samples/s
and accuracy side by side; the two agree to rounding (tests/cli/test_peer.py).
"""

from __future__ import annotations

import numpy as np

from memprop.model import activations
from memprop.model.config import Config
from memprop.model.network import Params
from memprop.model.patterns import PatternSet, check_size
from memprop.model.training import History, epoch_samples

INSTALL_HINT = "the PyTorch peer needs torch: pip install 'memprop[peer]' (torch==2.13.0, a CPU build)"


def unavailable_reason() -> str | None:
    """None when torch imports, else why not."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


def check_supported(cfg: Config) -> None:
    net, tr = cfg.network, cfg.train
    if cfg.numerics != "float" or tr.algo != "eqprop":
        raise ValueError(f"the PyTorch peer trains float EqProp, not {cfg.numerics} {tr.algo}")
    if net.dynamics != "bounded" or net.layered or net.init_state != "input":
        raise ValueError("the PyTorch peer implements the project's protocol: bounded dynamics of a hard "
                         "activation, an autoassociative network, v(0) = the input")


def train_peer(cfg: Config, patterns: PatternSet, threads: int = 1) -> tuple[Params, History]:
    """EqProp training in PyTorch; returns numpy `Params` (evaluate them with `model.recall`)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    import torch

    check_supported(cfg)
    check_size(patterns, cfg.network.n)
    net, tr = cfg.network, cfg.train
    act = activations.get(net.activation)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rng = np.random.default_rng(tr.seed)
        init = Params.initial(net, tr.init_scale, rng)
        f64 = torch.float64
        W, b = torch.tensor(init.W, dtype=f64), torch.tensor(init.b, dtype=f64)
        mask = torch.tensor(init.mask, dtype=f64)
        upper = torch.triu(torch.ones_like(mask))

        def relax(v, cur, target, beta):
            active = torch.ones(v.shape[0], dtype=torch.bool)
            steps = torch.zeros(v.shape[0], dtype=torch.int64)
            for _ in range(net.max_steps):
                if not bool(active.any()):
                    break
                grad = v - (v @ W + b + cur)
                if target is not None:
                    grad = grad - beta * (target - v)
                vn = torch.clamp(v - net.eps * grad, act.lo, act.hi)
                delta = (vn - v).abs().amax(dim=1)
                v = torch.where(active[:, None], vn, v)
                steps += active
                active = active & (delta > net.tol)
            return v, steps

        def correlation(a):
            corr = a.T @ a
            corr.diagonal().mul_(0.5)
            return corr * mask

        history = History()
        for epoch in range(1, tr.epochs + 1):
            inputs, targets = epoch_samples(cfg, patterns.values, rng, epoch)
            losses, steps = [], []
            for start in range(0, len(inputs), tr.batch_size):
                x = torch.tensor(inputs[start:start + tr.batch_size], dtype=f64)
                y = torch.tensor(act.encode(targets[start:start + tr.batch_size]), dtype=f64)
                cur = net.input_gain * x
                v0 = torch.where(x > 0, act.hi, act.lo).to(f64)
                free, s_free = relax(v0, cur, None, 0.0)
                beta = tr.beta * (rng.choice((-1.0, 1.0)) if tr.nudge == "random_sign" else 1.0)
                if tr.nudge == "centered":
                    hi, s_hi = relax(free, cur, y, beta)
                    lo, s_lo = relax(free, cur, y, -beta)
                    scale, extra = 2.0 * beta, float(s_lo.double().mean())
                else:
                    hi, s_hi = relax(free, cur, y, beta)
                    lo, scale, extra = free, beta, 0.0
                batch = x.shape[0]
                dW = (correlation(hi) - correlation(lo)) / (scale * batch)
                db = (hi - lo).mean(dim=0) / scale
                step = torch.clamp(tr.lr * dW, -tr.max_step, tr.max_step) * mask
                step = step * upper + (step * upper).T - torch.diag(torch.diagonal(step))
                W += step
                b += torch.clamp(tr.lr * db, -tr.max_step, tr.max_step)
                losses.append(float((0.5 * ((y - free) ** 2).sum(dim=1)).mean()))
                steps.append(float(s_free.double().mean() + s_hi.double().mean()) + extra)
            history.loss.append(float(np.mean(losses)))
            history.steps.append(float(np.mean(steps)))
        return Params(W=W.numpy().copy(), b=b.numpy().copy(), mask=init.mask), history
    finally:
        torch.set_num_threads(saved_threads)
