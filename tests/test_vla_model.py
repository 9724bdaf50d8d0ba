"""OpenVLAForActionPrediction: shapes, the exact attention mask, parallel-decoding semantics,
padding invariance, gradient checkpointing, bf16 autocast, presets and preprocessing."""


import pytest
import torch

from openarm_vla.vla import (
    ByteTokenizer,
    ImagePreprocessor,
    OpenVLAForActionPrediction,
    VLAConfig,
    count_parameters,
    get_preset,
    tokenize_prompts,
)




INSTR = ["pick up the box", "lift it"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return OpenVLAForActionPrediction(get_preset("tiny")).eval()


def _inputs(model, instructions=INSTR, padding_side="left", seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (len(instructions), 40, 48, 3), dtype=torch.uint8, generator=g)
    ids, mask = tokenize_prompts(ByteTokenizer(), instructions, padding_side=padding_side)
    return ImagePreprocessor(model.config)(rgb), ids, mask


def test_forward_shapes(tiny):
    pv, ids, mask = _inputs(tiny)
    assert pv.shape == (2, 6, 32, 32)
    with torch.no_grad():
        logits = tiny(pv, ids, mask)
    assert logits.shape == (2, 8, 8, 256) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    with pytest.raises(ValueError, match=r"pixel_values must be \[B, 6, 32, 32\]"):
        tiny(pv[:, :3], ids, mask)


def test_exact_mask_positions_and_readout():
    # 8 px images with patch 4 -> P = 4 patches; action_dim 2 x chunk 1 -> A = 2 slots; + stop token.
    cfg = get_preset("tiny").replace(image_size=8, action_dim=2, chunk=1)
    model = OpenVLAForActionPrediction(cfg).eval()
    assert model.num_patches == 4
    BOS, PAD, a, b = 1, 515, 100, 101
    ids = torch.tensor([[BOS, a, b], [PAD, BOS, a]])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    seq = model.build_sequence(torch.zeros(2, 6, 8, 8), ids, mask)
    # columns: [t0 | p1 p2 p3 p4 | t1 t2 | s1 s2 | stop]
    assert seq.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 1, 2, 3, 4, 0, 5, 6, 7, 8]]
    assert seq.is_action.tolist() == [False] * 7 + [True] * 3
    assert seq.readout.tolist() == [6, 7]  # last prompt token predicts action 0, slot 1 predicts action 1
    unpadded = [  # causal prefix, slots + stop see everything
        "1000000000", "1100000000", "1110000000", "1111000000", "1111100000",
        "1111110000", "1111111000", "1111111111", "1111111111", "1111111111",
    ]
    padded = [  # column 0 is padding (never a key); BOS sits in column 5 at position 0
        "0000010000",  # the pad query attends to BOS only (no empty softmax row)
        "0100010000", "0110010000", "0111010000", "0111110000",
        "0000010000",  # BOS
        "0111111000",  # prompt token a (position 5)
        "0111111111", "0111111111", "0111111111",
    ]
    to_bool = lambda rows: torch.tensor([[c == "1" for c in r] for r in rows])  # noqa: E731
    assert torch.equal(seq.mask[0, 0], to_bool(unpadded))
    assert torch.equal(seq.mask[1, 0], to_bool(padded))

    bidir = OpenVLAForActionPrediction(cfg.replace(attention_mode="bidirectional")).eval()
    m = bidir.build_sequence(torch.zeros(2, 6, 8, 8), ids, mask).mask
    assert m[0, 0].all() and torch.equal(m[1, 0], to_bool(["0111111111"] * 10))


@pytest.mark.parametrize("mode", ["prefix_causal", "bidirectional"])
def test_matches_reference_oft_forward_unpadded(tiny, mode):
    """Independent re-statement of the published OFT forward for one unpadded prompt:
    [BOS, patches, prompt, A zero slots, EOS] at positions 0..T-1, logits read at P+L-1 .. P+L-2+A."""
    model = OpenVLAForActionPrediction(tiny.config.replace(attention_mode=mode)).eval()
    model.load_state_dict(tiny.state_dict())
    pv, ids, mask = _inputs(model, instructions=["pick up the box"])
    cfg, P, L = model.config, model.num_patches, ids.shape[1]
    A, D = cfg.num_action_tokens, cfg.llm.hidden_size
    with torch.no_grad():
        emb = model.language_model.get_input_embeddings()
        text, patches = emb(ids), model.projector(model.vision_backbone(pv))
        seq = torch.cat([text[:, :1], patches, text[:, 1:], torch.zeros(1, A, D), emb(torch.tensor([[2]]))], 1)
        T = seq.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool)
        if mode == "prefix_causal":
            allowed = torch.tril(allowed)
            allowed[P + L:] = True  # slots and stop see everything
        out = model.language_model(inputs_embeds=seq, attention_mask=allowed[None, None]).logits
        begin = cfg.action_token_begin
        ref = out[:, P + L - 1: P + L - 1 + A, begin: begin + 256].reshape(1, cfg.chunk, cfg.action_dim, 256)
        got = model(pv, ids, mask)
    assert torch.allclose(got, ref, atol=1e-5, rtol=0)


def test_slots_bidirectional_and_prefix_untouched(tiny):
    pv, ids, mask = _inputs(tiny)
    A, D = tiny.config.num_action_tokens, tiny.config.llm.hidden_size
    slots = torch.zeros(2, A, D)
    changed = slots.clone()
    changed[:, -1] = torch.randn(2, D)  # only the LAST slot's input changes
    with torch.no_grad():
        base = tiny(pv, ids, mask, slot_embeds=slots).flatten(1, 2)  # [B, A, 256] in token order
        new = tiny(pv, ids, mask, slot_embeds=changed).flatten(1, 2)
        # earlier slots see the later slot: action tokens 1.. (read at slots 1..) change
        assert (new[:, 1] - base[:, 1]).abs().max() > 1e-3
        # token 0 is read at the last prompt token, which never attends to slots
        assert torch.equal(new[:, 0], base[:, 0])
        # every prefix hidden state is unaffected by any slot input
        s0 = tiny.build_sequence(pv, ids, mask, slots)
        s1 = tiny.build_sequence(pv, ids, mask, changed)
        h0 = tiny.language_model.model(inputs_embeds=s0.embeds, attention_mask=s0.mask, position_ids=s0.position_ids).last_hidden_state
        h1 = tiny.language_model.model(inputs_embeds=s1.embeds, attention_mask=s1.mask, position_ids=s1.position_ids).last_hidden_state
    prefix = ~s0.is_action
    assert torch.allclose(h0[:, prefix], h1[:, prefix], atol=1e-6, rtol=0)
    assert (h0[:, s0.is_action] - h1[:, s0.is_action]).abs().max() > 1e-3


def test_bidirectional_mode_lets_prefix_see_slots(tiny):
    model = OpenVLAForActionPrediction(tiny.config.replace(attention_mode="bidirectional")).eval()
    model.load_state_dict(tiny.state_dict())
    pv, ids, mask = _inputs(model)
    slots = torch.zeros(2, model.config.num_action_tokens, model.config.llm.hidden_size)
    changed = slots.clone()
    changed[:, -1] = 1.0
    with torch.no_grad():
        base = model(pv, ids, mask, slot_embeds=slots).flatten(1, 2)
        new = model(pv, ids, mask, slot_embeds=changed).flatten(1, 2)
    assert (new[:, 0] - base[:, 0]).abs().max() > 1e-3


def test_padding_invariance_left_right_and_unpadded(tiny):
    pv, ids_l, mask_l = _inputs(tiny, padding_side="left")
    _, ids_r, mask_r = _inputs(tiny, padding_side="right")
    with torch.no_grad():
        left = tiny(pv, ids_l, mask_l)
        right = tiny(pv, ids_r, mask_r)
        n = int(mask_l[1].sum())
        alone = tiny(pv[1:], ids_l[1:, -n:], mask_l[1:, -n:])  # the short prompt without any padding
    assert torch.allclose(left, right, atol=1e-5, rtol=0)
    assert torch.allclose(left[1:], alone, atol=1e-5, rtol=0)


def test_eager_additive_mask_matches_sdpa_boolean_mask(tiny):
    eager = OpenVLAForActionPrediction(tiny.config, attn_implementation="eager").eval()
    eager.load_state_dict(tiny.state_dict())
    pv, ids, mask = _inputs(tiny)
    with torch.no_grad():
        assert torch.allclose(eager(pv, ids, mask), tiny(pv, ids, mask), atol=1e-5, rtol=0)


def test_images_and_prompts_change_logits(tiny):
    pv, ids, mask = _inputs(tiny)
    with torch.no_grad():
        base = tiny(pv, ids, mask)
        other_img = tiny(pv.flip(0), ids, mask)
    assert (base[0] - other_img[0]).abs().max() > 1e-4


def test_unused_parameters_frozen_and_all_trainable_get_grads(tiny):
    model = OpenVLAForActionPrediction(tiny.config).train()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "vision_backbone.featurizer.blocks.1.mlp.fc2.weight" in frozen  # last block of a depth-2 ViT
    assert "vision_backbone.fused_featurizer.attn_pool.latent" in frozen  # SigLIP pooling head
    assert not any(n.startswith(("language_model", "projector")) for n in frozen)
    pv, ids, mask = _inputs(model)
    model(pv, ids, mask).logsumexp(-1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []


def test_gradient_checkpointing_same_grads(tiny):
    pv, ids, mask = _inputs(tiny)
    grads = []
    for ckpt in (False, True):
        model = OpenVLAForActionPrediction(tiny.config).train()
        model.load_state_dict(tiny.state_dict())
        if ckpt:
            model.gradient_checkpointing_enable()
        model(pv, ids, mask)[..., 0].sum().backward()
        grads.append(model.projector.fc1.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bf16_autocast(tiny):
    pv, ids, mask = _inputs(tiny)
    with torch.no_grad():
        fp32 = tiny(pv, ids, mask, dtype="float32")
        bf16 = tiny(pv, ids, mask, dtype="bfloat16")
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    gap = (bf16 - fp32).abs().max().item()
    print(f"bf16 vs fp32 max |logit gap| (tiny): {gap:.4f}")
    assert 0 < gap < 0.5


def test_single_tower_variant_uses_two_layer_projector():
    cfg = get_preset("tiny")
    cfg = cfg.replace(vision=(cfg.vision[1],))  # SigLIP only
    model = OpenVLAForActionPrediction(cfg).eval()
    assert not cfg.use_fused_vision and not hasattr(model.projector, "fc3")
    assert not hasattr(model.vision_backbone, "fused_featurizer")
    pv, ids, mask = _inputs(model)
    assert pv.shape == (2, 3, 32, 32)
    with torch.no_grad():
        assert model(pv, ids, mask).shape == (2, 8, 8, 256)


def test_presets_sizes_and_config_json_round_trip():
    tiny = OpenVLAForActionPrediction(get_preset("tiny"))
    assert 1_000_000 <= count_parameters(tiny) <= 3_000_000
    small = OpenVLAForActionPrediction(get_preset("small"))
    assert 20_000_000 <= count_parameters(small) <= 100_000_000
    assert small.vision_backbone.num_patches == 64 and small.vision_backbone.embed_dim == 768  # 128 px, ViT/16
    assert small.num_patches == 64 and small.config.action_frame == "delta" and not small.config.use_proprio
    mini = OpenVLAForActionPrediction(get_preset("mini"))  # the README's CPU policy: 64 px, 8-px patches, ~6 M
    assert 4_000_000 <= count_parameters(mini) <= 8_000_000 and mini.num_patches == 64 and mini.config.image_size == 64
    for name in ("tiny", "mini", "small", "openvla-oft-7b"):
        cfg = get_preset(name)
        assert VLAConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        VLAConfig.from_dict({**get_preset("tiny").to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="flash_attention_2 cannot express attention_mode=prefix_causal"):
        get_preset("tiny").replace(attn_implementation="flash_attention_2").resolved_attn_implementation("cuda")


def test_openvla_oft_7b_dimensions_on_meta_device():
    cfg = get_preset("openvla-oft-7b")
    with torch.device("meta"):
        model = OpenVLAForActionPrediction(cfg)
        feats = model.vision_backbone(torch.empty(1, 6, 224, 224))
        proj = model.projector(feats)
    assert feats.shape == (1, 256, 2176) and proj.shape == (1, 256, 4096)
    p = model.projector
    assert (p.fc1.in_features, p.fc1.out_features, p.fc2.out_features, p.fc3.out_features) == (2176, 8704, 4096, 4096)
    lm = model.language_model.config
    assert (lm.hidden_size, lm.num_hidden_layers, lm.num_attention_heads, lm.intermediate_size, lm.vocab_size) == (
        4096, 32, 32, 11008, 32064)
    assert cfg.action_token_begin == 31744
    assert count_parameters(model) == 7_541_237_184


def test_preprocess_values():
    cfg = get_preset("tiny")
    pre = ImagePreprocessor(cfg)
    rgb = torch.full((2, 32, 32, 3), 255, dtype=torch.uint8)  # already at image_size: no resize
    pv = pre(rgb)
    assert pv.shape == (2, 6, 32, 32)
    dino = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(pv[0, :3, 0, 0], dino) and torch.allclose(pv[0, 3:, 0, 0], torch.ones(3))
    big = pre(torch.full((1, 90, 120, 3), 128, dtype=torch.uint8))  # resized, constant stays constant
    assert big.shape == (1, 6, 32, 32) and torch.allclose(big[0, 3], torch.full((32, 32), 128 / 255 * 2 - 1), atol=1e-5)
    bicubic = ImagePreprocessor(cfg.replace(resize_interpolation="bicubic"))
    edge = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    edge[:, :, 32:] = 255  # a step edge: bicubic overshoots before the clamp, bilinear does not
    a, b = pre(edge), bicubic(edge)
    assert not torch.equal(a, b) and b.min() >= pre(torch.zeros_like(edge)).min() - 1e-6
    with pytest.raises(ValueError, match=r"rgb must be uint8 \[B, H, W, 3\]"):
        pre(rgb.float())


def test_attention_never_takes_cudnn_and_the_choice_is_scoped(tiny, monkeypatch):
    """Every attention call of a forward (the ViT towers' and the LLM's) runs with cuDNN's SDPA backend off (it
    builds a plan per unseen batch size), the others on; the process's own setting is back after the forward."""
    import torch.nn.functional as F

    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(*a, **k):
        seen.append((torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()))
        return sdpa(*a, **k)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    with torch.no_grad():
        tiny(*_inputs(tiny))
    towers = (tiny.vision_backbone.featurizer, tiny.vision_backbone.fused_featurizer)
    n_blocks = sum(len(v.blocks) - 1 for v in towers)  # each tower stops before its last block (featurize)
    assert len(seen) == n_blocks + tiny.config.llm.num_layers
    assert set(seen) == {(False, True)} and torch.backends.cuda.cudnn_sdp_enabled() == before
