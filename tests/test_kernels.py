"""The private torch kernels of trainables/stacked/kernels.py against their public fallbacks.

The comparisons are pinned to the torch version they were checked on (kernels.CHECKED_ON): on another
version the private kernels may have changed, and the probe in kernels.py decides at run time instead.
"""

from __future__ import annotations

import pytest
import torch

from trainables.stacked import kernels

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
checked_version = pytest.mark.skipif(
    not torch.__version__.startswith(kernels.CHECKED_ON + "."),
    reason=f"private kernels checked on torch {kernels.CHECKED_ON}.x, this is {torch.__version__}: "
    f"compare them again and update kernels.CHECKED_ON",
)


def _adam_run(update: kernels.AdamUpdate, device: str, skip_at: int) -> list[torch.Tensor]:
    """20 updates of three tensors from a fixed start; the update at ``skip_at`` is skipped."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=gen).to(device) for shape in ((4, 3), (3,), (2, 2, 2))]
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    step = torch.zeros((), device=device)
    for i in range(20):
        grads = [torch.randn(p.shape, generator=gen).to(device) for p in params]
        if i == skip_at:
            grads[0][0, 0] = float("nan")  # a skipped update must not see it
        else:
            step += 1
        update(
            params,
            grads,
            m,
            v,
            step,
            lr=1e-2,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.01,
            eps=1e-8,
            skip=torch.tensor(float(i == skip_at), device=device),
        )
    return [*params, *m, *v]


@checked_version
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_adam_equals_its_public_fallback(device: str, decoupled: bool) -> None:
    fused = _adam_run(kernels.fused_adam(decoupled), device, skip_at=7)
    public = _adam_run(kernels.public_adam(decoupled), device, skip_at=7)
    for a, b in zip(fused, public):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
        assert torch.isfinite(a).all()


@pytest.mark.parametrize("decoupled", [False, True])
def test_public_adam_matches_torch_optim(decoupled: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    start, grads = torch.randn(5, generator=gen), [torch.randn(5, generator=gen) for _ in range(20)]
    mine, m, v, step = start.clone(), torch.zeros(5), torch.zeros(5), torch.zeros(())
    ref = start.clone().requires_grad_()
    ref_opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(
        [ref], lr=1e-2, weight_decay=0.01
    )
    for g in grads:
        step += 1
        kernels.public_adam(decoupled)(
            [mine],
            [g],
            [m],
            [v],
            step,
            lr=1e-2,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.01,
            eps=1e-8,
            skip=torch.tensor(0.0),
        )
        ref.grad = g.clone()
        ref_opt.step()
    torch.testing.assert_close(mine, ref.detach(), rtol=1e-6, atol=1e-7)


@checked_version
@pytest.mark.parametrize("device", DEVICES)
def test_dense_embedding_backward_equals_its_public_fallback(device: str) -> None:
    gen = torch.Generator().manual_seed(2)
    grad = torch.randn(300, 16, generator=gen).to(device)
    index = torch.randint(0, 40, (300,), generator=gen).to(device)
    torch.testing.assert_close(
        kernels.dense_embedding_backward(grad, index, 50),
        kernels.public_embedding_backward(grad, index, 50),
        rtol=1e-6,
        atol=1e-6,
    )


@checked_version
def test_the_private_kernels_pass_their_probes_on_the_checked_version() -> None:
    cpu = torch.device("cpu")
    assert kernels.adam_update(cpu, decoupled=False).__qualname__.startswith("fused_adam")
    assert kernels.adam_update(cpu, decoupled=True).__qualname__.startswith("fused_adam")
    assert kernels._probe_embedding(cpu)


def test_a_private_kernel_that_fails_its_probe_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_passed", {})
    monkeypatch.delattr(torch, "_fused_adam_")  # as on a torch without it
    with pytest.warns(RuntimeWarning, match="_fused_adam_"):
        update = kernels.adam_update(torch.device("cpu"), decoupled=False)
    assert update.__qualname__.startswith("public_adam")
    p = torch.ones(3)
    update(
        [p],
        [torch.ones(3)],
        [torch.zeros(3)],
        [torch.zeros(3)],
        torch.tensor(1.0),
        lr=0.1,
        beta1=0.9,
        beta2=0.999,
        weight_decay=0.0,
        eps=1e-8,
        skip=torch.tensor(0.0),
    )
    torch.testing.assert_close(
        p, torch.full((3,), 0.9)
    )  # Adam's first step moves each coordinate by lr
