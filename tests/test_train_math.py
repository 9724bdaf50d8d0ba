"""The pure math of SFT and GRPO against hand-computed tensors (no simulator)."""

import math

import pytest
import torch

from openarm_vla.errors import TrainError
from openarm_vla.train.optim import lr_factor, rewarm
from openarm_vla.train.losses import (
    action_token_mask,
    clipped_token_loss,
    group_advantages,
    keep_groups,
    sft_token_loss,
    token_weights,
)


def test_group_advantages_hand_computed_and_zero_variance():
    # group 0: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735
    # group 1: all 0 -> zero variance -> advantage 0 (not NaN)
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]), group_size=4)
    s = math.sqrt(1.0 / 3.0)
    assert torch.allclose(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (s + 1e-6))
    assert adv[4:].tolist() == [0.0, 0.0, 0.0, 0.0]
    # 1 success of 8: mean 1/8, std sqrt(1/8 * 7/8 * 8/7) = sqrt(1/8)
    a = group_advantages(torch.tensor([1.0] + [0.0] * 7), group_size=8)
    assert a[0].item() == pytest.approx((7 / 8) / (math.sqrt(1 / 8) + 1e-6), rel=1e-6)
    assert a[1].item() == pytest.approx((-1 / 8) / (math.sqrt(1 / 8) + 1e-6), rel=1e-6)


def test_keep_groups_band():
    r = torch.tensor([0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1], dtype=torch.float)  # rates 0, .25, 1, .75
    assert keep_groups(r, 4).tolist() == [False, True, False, True]
    assert keep_groups(r, 4, low=0.3, high=1.0).tolist() == [False, False, False, True]
    assert keep_groups(r, 4, low=-1.0, high=2.0).all()


def test_action_token_mask_from_finish_steps():
    # chunk of 4 actions, 2 dims; a chunk that started at step 8 of a trajectory finished after 10 steps
    # keeps actions 8, 9 (c = 0, 1) and masks 10, 11; a chunk of a later-finishing trajectory is all valid
    m = action_token_mask(torch.tensor([8, 0, 4]), torch.tensor([10, 100, 4]), chunk=4, action_dim=2)
    assert m.shape == (3, 4, 2)
    assert m[0, :, 0].tolist() == [True, True, False, False] and m[0].all(dim=1).tolist() == [True, True, False, False]
    assert m[1].all() and not m[2].any()


def test_token_weights_both_aggregations():
    # trajectory 0: 3 valid tokens (two chunks), trajectory 1: 1 valid token
    mask = torch.tensor([[[1, 1]], [[1, 0]], [[0, 1]]], dtype=torch.bool)  # [M=3, C=1, D=2]
    traj = torch.tensor([0, 0, 1])
    w = token_weights(mask, traj, "seq-mean-token-mean")
    # (1/N) * (1/|K_i|): N = 2 -> traj 0 tokens weigh 1/6, traj 1's token 1/2
    assert torch.allclose(w, torch.tensor([[[1 / 6, 1 / 6]], [[1 / 6, 0.0]], [[0.0, 1 / 2]]]))
    assert w.sum().item() == pytest.approx(1.0)
    w = token_weights(mask, traj, "token-mean")
    assert torch.allclose(w, mask.float() / 4)
    # with the counts of all ranks (here: 4 trajectories, 10 tokens in the global mini-batch)
    assert torch.allclose(token_weights(mask, traj, "seq-mean-token-mean", n_traj=4), torch.tensor(
        [[[1 / 12, 1 / 12]], [[1 / 12, 0.0]], [[0.0, 1 / 4]]]))
    assert torch.allclose(token_weights(mask, traj, "token-mean", n_tokens=10), mask.float() / 10)
    with pytest.raises(ValueError, match="aggregation 'sum'"):
        token_weights(mask, traj, "sum")


def test_clipped_loss_asymmetric_clip_hand_computed():
    # four tokens: rho = 1.5 (A>0: clipped to 1.28), 0.5 (A<0: clipped to 0.8), 1.1 (A>0, inside),
    # 0.7 (A>0: unclipped min keeps 0.7); equal weights 1/4
    rho = torch.tensor([1.5, 0.5, 1.1, 0.7])
    old = torch.zeros(4)
    logp = torch.log(rho).requires_grad_()
    adv = torch.tensor([2.0, -1.0, 1.0, 1.0])
    w = torch.full((4,), 0.25)
    loss, st = clipped_token_loss(logp, old, adv, w, clip_low=0.2, clip_high=0.28)
    # per token -min(rho A, clip(rho) A): -min(3, 2.56) = -2.56; -min(-0.5, -0.8) = 0.8; -1.1; -min(0.7, 0.8) = -0.7
    assert loss.item() == pytest.approx(0.25 * (-2.56 + 0.8 - 1.1 - 0.7), rel=1e-6)
    st = {k: float(v) for k, v in st.items()}
    assert st["clip_frac_high"] == pytest.approx(0.25) and st["clip_frac_low"] == pytest.approx(0.25)
    k3 = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1, 0.7)]
    assert st["approx_kl"] == pytest.approx(sum(k3) / 4, rel=1e-5)
    assert st["ratio_dev"] == pytest.approx((0.5 + 0.5 + 0.1 + 0.3) / 4, rel=1e-5)
    loss.backward()
    # clipped tokens pass no gradient; d(-rho A)/dlogp = -rho A for the others, times the weight
    assert torch.allclose(logp.grad, torch.tensor([0.0, 0.0, -0.25 * 1.1, -0.25 * 0.7]))


def test_clipped_loss_zero_advantage_group_has_no_gradient():
    logp = torch.randn(2, 3, 2, requires_grad=True)
    loss, st = clipped_token_loss(logp, logp.detach() + 0.1, torch.zeros(2), torch.full((2, 3, 2), 1 / 12))
    loss.backward()
    assert loss.item() == 0.0 and logp.grad.abs().max() == 0.0


def test_micro_batches_give_the_mini_batch_gradient():
    """The weighted sum over micro-batches equals the whole mini-batch's loss, for either aggregation."""
    torch.manual_seed(0)
    M, C, D = 6, 2, 3
    logp = torch.randn(M, C, D, requires_grad=True)
    old = logp.detach() + 0.05 * torch.randn(M, C, D)
    traj = torch.tensor([0, 0, 1, 2, 2, 2])
    adv = torch.tensor([1.0, 1.0, -0.5, 0.3, 0.3, 0.3])
    mask = action_token_mask(torch.tensor([0, 2, 0, 0, 2, 4]), torch.tensor([3, 3, 2, 5, 5, 5]), C, D)
    for agg in ("seq-mean-token-mean", "token-mean"):
        w = token_weights(mask, traj, agg)
        full, _ = clipped_token_loss(logp, old, adv, w)
        parts = sum(clipped_token_loss(logp[s], old[s], adv[s], w[s])[0] for s in (slice(0, 2), slice(2, 5), slice(5, 6)))
        assert parts.item() == pytest.approx(full.item(), rel=1e-6)


def test_sft_token_loss_hand_computed():
    # one chunk of 2 actions x 1 dim over 3 bins; uniform logits -> CE = log 3, argmax = bin 0
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 1, 0, 2] = math.log(2.0)  # p = [1/4, 1/4, 1/2] -> CE of target 2 = log 2
    loss, acc = sft_token_loss(logits, torch.tensor([[[0], [2]]]))
    assert loss.item() == pytest.approx((math.log(3.0) + math.log(2.0)) / 2, rel=1e-6)
    assert acc.item() == pytest.approx(1.0)
    loss, acc = sft_token_loss(logits, torch.tensor([[[1], [2]]]), mask=torch.tensor([[True, False]]))
    assert loss.item() == pytest.approx(math.log(3.0), rel=1e-6) and acc.item() == 0.0


def test_augmentation_is_identity_without_jitter_and_keeps_layout():
    from openarm_vla.train.augment import augment_images

    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8, generator=g)
    same = augment_images(rgb, crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0, generator=g)
    assert torch.equal(same, rgb)
    out = augment_images(rgb, crop_scale=(0.5, 0.5), brightness=0.3, contrast=0.3, saturation=0.3, generator=g)
    assert out.shape == rgb.shape and out.dtype == torch.uint8 and not torch.equal(out, rgb)
    # a half-area crop (side 0.707) magnifies: a constant image stays constant, brightness scales it
    flat = torch.full((2, 8, 8, 3), 100, dtype=torch.uint8)
    b = augment_images(flat, crop_scale=(0.5, 0.5), brightness=0.5, contrast=0.0, saturation=0.0, generator=g)
    assert all(len(torch.unique(b[i])) == 1 for i in range(2)) and 50 <= int(b[0, 0, 0, 0]) <= 150


def test_lr_factor_warmup_then_constant_or_cosine():
    const = lr_factor(warmup=4, total=0)
    assert [const(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor(0, 0)(0) == 1.0  # no warm-up: the full LR from the first step
    # cosine from 1 at the end of a 2-step warm-up to 0.1 at step 12: half-way (step 7) 0.1 + 0.9 * 0.5 = 0.55
    cos = lr_factor(warmup=2, total=12, schedule="cosine", min_ratio=0.1)
    assert [cos(0), cos(1), cos(2)] == pytest.approx([0.5, 1.0, 1.0])
    assert cos(7) == pytest.approx(0.55) and cos(12) == pytest.approx(0.1) and cos(50) == pytest.approx(0.1)
    with pytest.raises(TrainError, match="LR schedule 'step'"):
        lr_factor(1, 10, "step")


def test_rewarm_ramps_the_scheduled_lr_again_from_a_step():
    # a fresh AdamW resumed at optimizer step 6 of a cosine schedule: the LR climbs back over 4 steps onto the schedule
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    f = lr_factor(warmup=2, total=12, schedule="cosine", min_ratio=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    for _ in range(6):
        opt.step()
        sched.step()
    rewarm(opt, sched, start=sched.last_epoch, warmup=4)
    got = []
    for _ in range(6):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert got == pytest.approx([f(6) / 4, f(7) * 2 / 4, f(8) * 3 / 4, f(9), f(10), f(11)])
    rewarm(opt, sched, start=0, warmup=0)  # no warm-up: the schedule as it is
    assert opt.param_groups[0]["lr"] == pytest.approx(f(12))


def test_grpo_iteration_summary_line():
    from openarm_vla.train.grpo import iteration_summary

    m = {"perf/iteration_s": 44.42, "perf/rollout_s": 20.61, "perf/rollout_policy_s": 13.26, "perf/logprob_s": 6.04, "perf/update_s": 17.77,
         "rollout/success_rate": 0.2168, "rollout/kept_groups": 256.0, "rollout/rounds": 1.0,
         "perf/env_steps_per_s": 39719.3, "policy/approx_kl": 0.005188, "perf/peak_mem_gb": 37.26}
    assert iteration_summary(12, 12, m) == (
        "[grpo] iteration 12/12: 44.4 s (rollout 20.6 [policy 13.3], log-probs 6.0, update 17.8); sampled success 0.217, "
        "256 groups kept in 1 round(s), 39.7k env-steps/s, approx_kl 0.0052, peak 37.3 GB")


def test_training_state_bytes_and_oom_line(monkeypatch):
    from openarm_vla.train import memory

    # Linear(10, 10): 110 fp32 parameters = 440 B; after one AdamW step: + grads 440 + exp_avg 440 + exp_avg_sq 440
    # + 4-byte step counters (weight, bias); a shared module counts once
    lin = torch.nn.Linear(10, 10)
    opt = torch.optim.AdamW(lin.parameters())
    assert memory.training_state_bytes([lin]) == 440
    lin(torch.ones(2, 10)).sum().backward()
    opt.step()
    assert memory.training_state_bytes([lin, lin], opt) == 4 * 440 + 2 * 4

    # an OOM names the state; one that alone fills most of the GPU points at LoRA or sharding, not the batch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (2 * 2**30, 140 * 2**30))
    with pytest.raises(TrainError, match=r"138.0 of 140.0 GiB in use, 121.0 GiB of it the weights.*agent.lora.enabled=true"):
        with memory.cuda_oom_as_error("--num_envs", held=lambda: 121 * 2**30):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(TrainError, match=r"138.0 of 140.0 GiB in use, 30.0 GiB of it .*\); lower --num_envs$"):
        with memory.cuda_oom_as_error("--num_envs", held=lambda: 30 * 2**30):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
