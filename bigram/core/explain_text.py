"""An Explanation as text, section by section: what `bigram explain` prints and `print(bigram.explain())` shows.

Each section is a function returning lines; its docstring is its title. No
printing here and no terminal codes: the CLI adds rich headings when it writes
to a terminal.
"""

from __future__ import annotations

import numpy as np


def q(s: str) -> str:
    """A string quoted with its newlines visible: 'First\\nCi'."""
    return "'" + s.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "\\'") + "'"


def _vec(a, n: int = 6) -> str:
    return np.array2string(np.asarray(a)[:n], precision=4, separator=", ")[:-1] + ", ...]"


def _batch(ex) -> list[str]:
    """a batch: xb and yb, (B,T)"""
    out = []
    for name, ids, rows in (("xb (inputs)", ex.xb, ex.x_rows), ("yb (targets)", ex.yb, ex.y_rows)):
        out.append(f"{name} {tuple(ids.shape)}:")
        out += [f"  [{' '.join(f'{int(i):2d}' for i in r)}]  {q(text)}" for r, text in zip(ids, rows)]
    return out + ["yb is xb shifted left by one: each yb[b,t] is the character after xb[b,t]."]


def _pairs(ex) -> list[str]:
    """context -> target: B*T examples in one batch"""
    out = [f"when the input is {q(c)} the target is {q(t)}  (the bigram reads only {q(c[-1])})" for c, t in ex.pairs]
    B, T, _ = ex.logits_shape
    return out + [f"... the same for the other {B - 1} rows: {B * T} (context, target) examples in all."]


def _lookup(ex) -> list[str]:
    """embedding lookup: idx (B,T) -> logits (B,T,C)"""
    w = ex.worked
    return [f"logits = token_embedding_table(xb): shape {ex.logits_shape}",
            f"logits[b,t] is row xb[b,t] of the (V,V) table, a plain lookup: {ex.lookup_matches}",
            f"e.g. logits[0,0] (row {int(ex.xb[0, 0])}, {q(w.input_char)}) starts {_vec(w.logits)}",
            f"cross_entropy wants (N,C) and (N,): logits.view(B*T, C) {ex.flat_shape} "
            f"against targets.view(B*T) {ex.targets_shape}"]


def _softmax(ex) -> list[str]:
    """softmax: each row becomes a probability distribution"""
    s = ex.prob_row_sums
    return [f"probs = softmax(logits, dim=-1): {len(s)} rows, each sums to 1 (min {s.min():.8f}, max {s.max():.8f})"]


def _nll(ex) -> list[str]:
    """one example's negative log-likelihood, by hand"""
    w = ex.worked
    return [f"position (b={w.b}, t={w.t}): input {q(w.input_char)}, target {q(w.target_char)} (id {w.target_id})",
            f"  max logit m                  = {w.max_logit:.6f}",
            f"  sum_j exp(logit_j - m)       = {w.sum_exp:.6f}",
            f"  p(target) = exp(logit_{w.target_id} - m) / sum = {w.prob:.6f}",
            f"  NLL = -ln p(target)          = {w.nll_by_hand:.6f}",
            f"  backend cross-entropy on it  = {w.nll_backend:.6f}  (difference {abs(w.nll_by_hand - w.nll_backend):.1e})",
            f"the batch loss is the mean over all {ex.flat_shape[0]} positions: by hand "
            f"{ex.batch_loss_by_hand:.6f}, backend {ex.batch_loss:.6f}"]


def _init(ex) -> list[str]:
    """the loss to expect at initialization"""
    if ex.weights.startswith("untrained"):
        why = ("N(0,1) logits are not uniform, so an untrained table is confidently wrong and starts above "
               "ln V (about ln V + 1/2); training brings it down toward the optimum (`bigram eval`).")
    else:
        why = "a trained table should sit well below ln V, the loss of knowing nothing."
    return [f"if every next character were equally likely: -ln(1/{ex.vocab_size}) = ln {ex.vocab_size} "
            f"= {ex.expected_init_loss:.4f}", f"observed on this batch: {ex.batch_loss:.4f}. {why}"]


def _dlogits(ex) -> list[str]:
    """backward through the loss: dlogits = (softmax - onehot) / (B*T)"""
    g = ex.dlogits
    ch = lambda j: q(ex.chars[j]) if ex.chars else str(j)  # noqa: E731
    out = [f"the loss is a mean over N = B*T = {g.n_positions} positions, so position (b,t) gets "
           f"dloss/dlogits[b,t] = (softmax(logits[b,t]) - onehot(target)) / {g.n_positions}",
           f"position (b={g.b}, t={g.t}), target {ch(g.target_id)} (id {g.target_id}), by hand:"]
    for j in g.columns:
        hot = 1 if j == g.target_id else 0
        back = "" if g.backend is None else f"   backend {g.backend[j]: .8f}"
        out.append(f"  column {j:3d} {ch(j):6} ({g.probs[j]:.6f} - {hot}) / {g.n_positions} = {g.by_hand[j]: .8f}{back}")
    if g.backend is None:
        return out + ["this backend gives the table's gradient only (no grads()), so dlogits is not compared."]
    return out + [f"all {len(g.by_hand)} columns against the backend's dlogits[{g.b},{g.t}]: largest difference "
                  f"{g.max_abs_diff:.1e}",
                  "only the target's column is negative: gradient descent raises its logit and lowers the rest, "
                  "each in proportion to its probability."]


def _scatter(ex) -> list[str]:
    """backward through the lookup: a scatter-add into the table's rows"""
    s = ex.scatter
    if s is None:
        return ["this backend gives no dlogits (no grads()), so the scatter-add cannot be shown step by step."]
    name = q(ex.chars[s.row]) if ex.chars else str(s.row)
    where = ", ".join(f"({b},{t})" for b, t in s.positions)
    cols = ", ".join(str(j) for j in s.columns)
    out = ["logits[b,t] = W[xb[b,t]], so dW[i] = the sum of dlogits[b,t] over every position with xb[b,t] = i.",
           f"row {s.row} ({name}) is read by {len(s.positions)} positions: {where}"
           + ("" if len(s.positions) > 1 else " (no row is read twice in this batch)"),
           f"their dlogits in columns {cols} (the targets there), each position's contribution:"]
    rows = [(f"({b},{t})", c) for (b, t), c in zip(s.positions, s.contributions)]
    rows += [("sum", s.summed), (f"dW[{s.row}]", s.backend_row)]
    width = max(len(label) for label, _ in rows)
    out += [f"  {label:<{width}}  " + "  ".join(f"{v[j]: .8f}" for j in s.columns) for label, v in rows]
    out[-1] += "   (the backend's)"
    out += [
            f"every column: sum of contributions vs the backend's dW[{s.row}], largest difference {s.max_abs_diff:.1e}",
            f"a plain dW[xb] = dlogits would keep only the last position's; the scatter-add keeps all "
            f"{len(s.positions)}.",
            f"the batch reads {s.rows_read} of the {ex.vocab_size} rows; every other row's gradient is exactly 0: "
            f"{s.unread_zero}"]
    return out


def _adamw(ex) -> list[str]:
    """one AdamW update of one weight, by hand from torch's formula"""
    a = ex.adamw
    c = a.config
    return [f"W[{a.i},{a.j}] at step t = {a.t} (lr {c.lr:g}, betas ({c.beta1:g}, {c.beta2:g}), eps {c.eps:g}, "
            f"weight decay {c.weight_decay:g}); before: w = {a.w:.8f}, g = dW[{a.i},{a.j}] = {a.g:.8f}, "
            f"m = {a.m:.8g}, v = {a.v:.8g}",
            f"  decay      w * (1 - lr*wd)             = {a.decayed:.8f}",
            f"  m <- b1*m + (1-b1)*g                   = {a.m_new:.8g}",
            f"  v <- b2*v + (1-b2)*g^2                 = {a.v_new:.8g}",
            f"  m_hat = m / (1 - b1^{a.t})                = {a.m_hat:.8g}",
            f"  v_hat = v / (1 - b2^{a.t})                = {a.v_hat:.8g}",
            f"  w <- decayed - lr * m_hat / (sqrt(v_hat) + eps) = {a.by_hand:.8f}",
            f"the backend's own step on this batch (forward, backward, AdamW) leaves W[{a.i},{a.j}] = {a.backend:.8f} "
            f"(difference {a.diff:.1e})",
            ("at t = 1, m_hat = g and v_hat = g^2, so every weight with a gradient moves by about lr whatever "
             f"the gradient's size: the largest change in the table was {a.table_moved:.6f}." if a.t == 1 else
             f"the largest change of any weight in this step: {a.table_moved:.6f}.")]


def _generate(ex) -> list[str]:
    """generation: the last time step picks the next character"""
    g = ex.generation
    out = [f"logits {ex.logits_shape} -> logits[:, -1, :] {g.last_logits_shape} -> softmax "
           f"{tuple(g.probs.shape)} -> one sample per row {tuple(g.next_ids.shape)} (the table before the update)"]
    for b, (last, nxt) in enumerate(zip(g.last_chars, g.next_chars)):
        out.append(f"  row {b}: last {q(last)} -> sampled {q(nxt)} (p = {g.probs[b, g.next_ids[b]]:.4f}, "
                   f"coin {g.coins[b]:.4f})")
    return out + ["append the samples to idx, (B,T+1), and repeat: only the last character is ever read."]


def header(ex) -> str:
    B, T, C = ex.logits_shape
    return f"backend {ex.backend}, weights: {ex.weights}; B={B} sequences of T={T} characters, V={C}"


def sections(ex) -> list[tuple[str, list[str]]]:
    """(numbered title, lines) for each step of the walk-through, in order."""
    steps = [_batch, _pairs, _lookup, _softmax, _nll, _init]
    if ex.dlogits is not None:
        steps += [_dlogits, _scatter]
    if ex.adamw is not None:
        steps.append(_adamw)
    steps.append(_generate)
    return [(f"{i}. {step.__doc__}", step(ex)) for i, step in enumerate(steps, 1)]


def render_text(ex) -> str:
    out = [header(ex)]
    for title, lines in sections(ex):
        out += ["", title, "-" * len(title), *lines]
    return "\n".join(out)
