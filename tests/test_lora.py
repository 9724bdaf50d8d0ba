"""LoRA (peft) on the tiny preset: what trains, merged exports that load as plain checkpoints with the same
logits, and an exact resume of the adapters."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("peft")

from openarm_vla.train.lora import apply_lora, has_lora, merged_state_dict  # noqa: E402
from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, VLARunner, get_preset  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _batch(vla, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    ids, mask = vla.prompt_ids(["pick up the box"] * n)
    return vla.model_inputs({"rgb": rgb, "input_ids": ids, "attention_mask": mask})


def _trained_lora_model():
    torch.manual_seed(0)
    model = OpenVLAForActionPrediction(get_preset("tiny"))
    n = apply_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=TARGETS)
    vla = VLARunner(model, ByteTokenizer(), 1)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for s in range(2):  # LoRA's B starts at 0: a few steps make the adapters matter
        model(**_batch(vla, seed=s)).logsumexp(-1).mean().backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), vla, n


def test_lora_trains_adapters_and_projectors_only():
    model, _, n = _trained_lora_model()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert has_lora(model) and n == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert all("lora_" in t or t.startswith("projector.") for t in trainable), sorted(trainable)[:5]
    assert any(t.startswith("projector.") for t in trainable) and not any("vision_backbone" in t for t in trainable)
    assert n < 0.5 * sum(p.numel() for p in model.parameters())


def test_merged_export_loads_as_a_plain_checkpoint_with_the_same_logits(tmp_path):
    from openarm_vla.policies.vla import checkpoint_vla
    from openarm_vla.train.checkpoints import export_final

    model, vla, _ = _trained_lora_model()
    batch = _batch(vla, seed=5)
    with torch.no_grad():
        want = model(**batch)
        plain = OpenVLAForActionPrediction(get_preset("tiny"))
        plain.load_state_dict(merged_state_dict(model))  # strict: the merged names are the plain model's
        assert torch.allclose(plain.eval()(**batch), want, atol=1e-4)
    export_final(tmp_path, model, ByteTokenizer(), {})
    loaded = checkpoint_vla(tmp_path / "final", num_envs=2, device="cpu")
    with torch.no_grad():
        assert torch.allclose(loaded.model(**batch), want, atol=1e-4)


def test_lora_resume_restores_the_adapters_exactly(tmp_path):
    from openarm_vla.train.checkpoints import newest_good_checkpoint, restore_training, save_training_checkpoint
    from openarm_vla.train.distributed import Dist, wrap
    from openarm_vla.train.optim import make_optimizer
    from openarm_vla.train.rng import rng_state

    model, _, _ = _trained_lora_model()
    agent = type("A", (), {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.0, "warmup_steps": 0})()
    opt, sched = make_optimizer(model, agent, fused=False)
    save_training_checkpoint(tmp_path, 3, model, ByteTokenizer(), {}, {"optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "rng": [rng_state()]})
    torch.manual_seed(0)  # the base as agent.init would give it again, fresh adapters
    again = OpenVLAForActionPrediction(get_preset("tiny"))
    apply_lora(again, rank=4, alpha=8, dropout=0.0, target_modules=TARGETS)
    par = wrap(Dist(), again)
    opt2, sched2 = make_optimizer(again, agent, fused=False)
    state = restore_training(newest_good_checkpoint(tmp_path), par, opt2, sched2, {})
    assert state["iteration"] == 3
    for (n1, p1), (_, p2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(p1, p2), n1


def test_frozen_weights_held_in_bf16_give_the_same_autocast_forward_and_an_fp32_export():
    from openarm_vla.train.lora import hold_frozen_weights_in

    model, vla, _ = _trained_lora_model()
    batch = _batch(vla, seed=7)
    with torch.no_grad():
        want = model(**batch, dtype="bfloat16")  # bf16 autocast (on the CPU here; CUDA in training)
        want_export = merged_state_dict(model)
    frozen_before = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    n = hold_frozen_weights_in(model, torch.bfloat16)
    params = dict(model.named_parameters())
    assert n > 0 and all(p.dtype == torch.float32 for p in params.values() if p.requires_grad)
    assert params["language_model.model.layers.0.self_attn.q_proj.base_layer.weight"].dtype == torch.bfloat16
    assert params["language_model.model.layers.0.input_layernorm.weight"].dtype == torch.float32  # norms keep fp32
    assert params["language_model.model.embed_tokens.weight"].dtype == torch.float32
    frozen_after = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    assert frozen_after < 0.6 * frozen_before
    with torch.no_grad():
        assert torch.equal(model(**batch, dtype="bfloat16"), want)  # autocast multiplied with these bf16 values already
    export = merged_state_dict(model)
    assert set(export) == set(want_export) and all(v.dtype == want_export[k].dtype for k, v in export.items())
    # the export sums in fp32: the bf16-rounded base plus the adapters' delta, which bf16 would round away
    name = "language_model.model.layers.0.self_attn.q_proj"
    layer = model.get_submodule(name)
    delta = layer.get_delta_weight("default").float()
    assert delta.abs().max() > 0
    assert torch.equal(export[f"{name}.weight"], layer.get_base_layer().weight.float() + delta)
    base32 = want_export[f"{name}.weight"] - delta  # the fp32 base before: the export moved by its bf16 rounding only
    assert ((export[f"{name}.weight"] - want_export[f"{name}.weight"]).abs() <= 2 ** -8 * base32.abs() + 1e-9).all()


def test_compiled_layers_match_eager_and_share_their_graphs():
    """agent.compile on the LoRA model: same names, same logits and gradients as eager at batch sizes other than the
    warm-up's (the batch is dynamic), and the graphs built by the warm-up serve every later call: layers of a kind
    share theirs per grad mode (no per-layer or per-batch recompiles, which would hit dynamo's recompile limit on the
    7B's 32 decoder layers and 24 + 27 ViT blocks)."""
    from torch._dynamo.utils import counters

    from openarm_vla.train.model_init import compile_model_passes
    from openarm_vla.train import distributed

    model, vla, _ = _trained_lora_model()
    compiled, _, _ = _trained_lora_model()
    torch._dynamo.reset()
    counters.clear()
    compiled.compile_layers()
    assert compiled.compiled_layers and not model.compiled_layers
    assert list(compiled.state_dict()) == list(model.state_dict())
    # GRPO's warm-up builds both graphs (rollout: eval, no grad; update: train, backward) before iteration 1
    rng = torch.get_rng_state()
    compile_model_passes(VLARunner(compiled, ByteTokenizer(), 1), "pick up the box", rollout_batch=4, micro_batch=3)
    warm_graphs = counters["stats"]["unique_graphs"]  # decoder layers and each tower's ViT blocks, in both grad modes
    assert warm_graphs == 6, dict(counters["stats"])
    assert torch.equal(torch.get_rng_state(), rng) and not compiled.training
    assert all(p.grad is None for p in compiled.parameters())

    def run(m, n, grad):
        batch = _batch(vla, n=n, seed=n)
        m.train(grad)
        with torch.set_grad_enabled(grad):
            logits = m(**batch)
        if not grad:
            return logits, []
        m.zero_grad()
        logits.logsumexp(-1).mean().backward()
        return logits.detach(), [p.grad for p in m.parameters() if p.requires_grad]

    for n in (3, 2):
        for grad in (False, True):
            want, want_grads = run(model, n, grad)
            got, got_grads = run(compiled, n, grad)
            assert torch.allclose(got, want, atol=1e-5), (n, grad, (got - want).abs().max())
            for g, w in zip(got_grads, want_grads):
                assert torch.allclose(g, w, atol=1e-6, rtol=1e-4), (n, grad, (g - w).abs().max())
    assert counters["stats"]["unique_graphs"] == warm_graphs, dict(counters["stats"])  # none compiled since the warm-up
    assert distributed.plain_replica(_plain_compiled(), "cpu").compiled_layers  # FSDP's rollout copy: compiled too


def _plain_compiled():
    model = OpenVLAForActionPrediction(get_preset("tiny"))
    model.compile_layers()
    return model


def test_fsdp_replica_holds_parameters_in_the_compute_dtype():
    """The rollout replica: parameters in the run's autocast dtype (buffers stay fp32), no gradients; filled from
    the trained model (here unsharded: sync_replica reads plain and sharded tensors alike) it gives that model's
    actions under the same autocast."""
    from openarm_vla.train import distributed

    torch.manual_seed(0)
    model = OpenVLAForActionPrediction(get_preset("tiny")).eval()
    replica = distributed.plain_replica(model, "cpu", "bfloat16")
    assert {p.dtype for p in replica.parameters()} == {torch.bfloat16}
    assert {b.dtype for b in replica.buffers() if b.is_floating_point()} == {torch.float32}
    assert not any(p.requires_grad for p in replica.parameters())
    assert {p.dtype for p in distributed.plain_replica(model, "cpu", "float32").parameters()} == {torch.float32}
    distributed.sync_replica(model, replica)
    assert all(torch.equal(p, q.to(torch.bfloat16)) for p, q in zip(replica.parameters(), model.parameters()))
    cfg = model.config
    px = torch.randn(3, 3 * len(cfg.vision), cfg.image_size, cfg.image_size)
    ids, mask = torch.randint(0, 200, (3, 12)), torch.ones(3, 12, dtype=torch.long)
    with torch.no_grad():
        want, got = (m(px, ids, mask, dtype="bfloat16") for m in (model, replica))
    assert got.dtype == torch.float32 and (got - want).abs().max() < 0.05
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.95
