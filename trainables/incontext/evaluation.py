"""A fixed, seeded evaluation set with per-position scores for the model, the oracle and a baseline.

Position k (0 ≤ k < K) is the query x_{k+1} after k labelled in-context examples. Per position:
- the model's prediction at x_{k+1};
- the oracle's (true w): 1[⟨x, w⟩ > 0] for logistic regression (linear regression: exact, no score);
- a baseline fitted per sequence on its first k examples: L2-regularised logistic regression
  without intercept (objective Σ log-loss + l2/2·‖w‖², sklearn's default l2 = 1/C = 1), or the
  minimum-norm least-squares fit (Garg et al.'s baseline; exact from k = d on).
Classification is scored as accuracy against the sampled labels (a logit > 0 predicts 1), so the
oracle's accuracy is the ceiling; regression as squared error / d (Garg et al.'s plots).

Oracle and baseline do not depend on the model: they are computed once, in float64 on the CPU (so
they are the same on every device), for all sequences and positions at once: no Python loop over
sequences or positions, only over Newton iterations and chunks of sequences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .tasks import Task

CHUNK = 64  # sequences per baseline fit: bounds the (chunk, K, K, d) intermediates
NEWTON_MAX_ITERS = 100
NEWTON_TOL = 1e-9


def _prefix_mask(K: int) -> torch.Tensor:
    """(K, K) float64: mask[k, j] = 1 when example j is among the first k (j < k)."""
    return torch.ones(K, K, dtype=torch.float64).tril(-1)


def logistic_prefix_fits(x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """Logit of x_k under the L2 logistic regression fitted on examples 0..k-1: x (N, K, d), y (N, K) → (N, K).

    Batched Newton over all (sequence, prefix) pairs; the objective is strictly convex (l2 > 0),
    and each fit starts at w = 0 and stops when no coordinate moves by more than NEWTON_TOL.
    """
    N, K, d = x.shape
    mask = _prefix_mask(K)
    outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).view(N, K, d * d)  # x_j x_jᵀ per example
    ridge = l2 * torch.eye(d, dtype=x.dtype)
    w = torch.zeros(N, K, d, dtype=x.dtype)  # w[n, k]: fit on the first k examples of sequence n
    for _ in range(NEWTON_MAX_ITERS):
        p = torch.sigmoid(w @ x.transpose(1, 2))  # (N, K, K): P(y_j = 1) under fit k
        grad = ((p - y.unsqueeze(1)) * mask) @ x + l2 * w  # (N, K, d)
        hess = ((p * (1 - p)) * mask @ outer).view(N, K, d, d) + ridge
        step = torch.linalg.solve(hess, grad)
        w = w - step
        if step.abs().max() < NEWTON_TOL:
            break
    return (w * x).sum(-1)


def least_squares_prefix_fits(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Prediction at x_k of the minimum-norm least-squares fit on examples 0..k-1: (N, K, d), (N, K) → (N, K)."""
    mask = _prefix_mask(x.shape[1])
    a = mask[:, :, None] * x.unsqueeze(1)  # (N, K, K, d): fit k sees rows j < k, zeros elsewhere
    b = (mask * y.unsqueeze(1)).unsqueeze(-1)  # (N, K, K, 1)
    w = torch.linalg.lstsq(a, b, driver="gelsd").solution.squeeze(
        -1
    )  # (N, K, d); zero rows change nothing
    return (w * x).sum(-1)


class EvalSet:
    """``n`` sequences at the full (d, k) drawn from ``seed``, shared by every member."""

    def __init__(
        self,
        task: Task,
        *,
        d: int,
        k: int,
        alpha: float,
        n: int,
        seed: int,
        l2: float,
        device: torch.device,
    ) -> None:
        self.task, self.d = task, d
        batch = task.sample(n, k, d, d, alpha, torch.Generator().manual_seed(seed))
        self.x, self.y = batch.x.to(device), batch.y.to(device)  # (N, K, d), (N, K)
        x, y, w = batch.x.double(), batch.y.double(), batch.w.double()
        self.reference: dict[str, torch.Tensor] = {}  # name → (K,) float64 on the CPU
        if task.classification:
            oracle = torch.einsum("nkd,nd->nk", x, w)
            fitted = torch.cat(
                [
                    logistic_prefix_fits(x[i : i + CHUNK], y[i : i + CHUNK], l2)
                    for i in range(0, n, CHUNK)
                ]
            )
            self.reference["oracle_acc"] = self.correct(oracle, y).mean(0)
            self.reference["baseline_acc"] = self.correct(fitted, y).mean(0)
        else:
            fitted = torch.cat(
                [
                    least_squares_prefix_fits(x[i : i + CHUNK], y[i : i + CHUNK])
                    for i in range(0, n, CHUNK)
                ]
            )
            self.reference["baseline_mse"] = ((fitted - y) ** 2).mean(0) / d

    @staticmethod
    def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((logits > 0).to(y.dtype) == y).double()

    def score(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's per-member, per-position scores (S, K) from its outputs ``out`` (S, N, K)."""
        y = self.y.expand_as(out)
        if self.task.classification:
            loss = F.binary_cross_entropy_with_logits(out, y, reduction="none")
            return {"test_acc": self.correct(out, y).mean(1), "test_loss": loss.double().mean(1)}
        err = ((out - y) ** 2).double().mean(1)
        return {"test_mse": err / self.d, "test_loss": err}
