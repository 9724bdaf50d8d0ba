"""VLARunner: per-env chunk queues, resets, greedy/sampled decoding, log-prob consistency,
un-normalization and input validation."""


import pytest
import torch

from openarm_vla.action_space import action_stats, normalize, unnormalize
from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, VLARunner, get_preset
from openarm_vla.vla.batch import collate_chunks

N = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return OpenVLAForActionPrediction(get_preset("tiny")).eval()


def _obs(n=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"rgb": torch.randint(0, 256, (n, 36, 36, 3), dtype=torch.uint8, generator=g),
            "proprio": torch.rand(n, 8, generator=g) * 2 - 1}


class CountingModel(torch.nn.Module):
    """Records the batch size of every forward (to check which envs get forwarded)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config, self.batches = inner, inner.config, []

    @property
    def device(self):
        return self.inner.device

    def forward(self, pixel_values, *args, **kw):
        self.batches.append(pixel_values.shape[0])
        return self.inner(pixel_values, *args, **kw)


def test_chunk_queues_resets_and_partial_forward(model):
    counting = CountingModel(model)
    policy = VLARunner(counting, ByteTokenizer(), num_envs=N)
    obs, instr = _obs(), ["pick up the box", "lift the box", "grasp"]
    outs = [policy.act(obs, instr, temperature=1.6, generator=torch.Generator().manual_seed(0)) for _ in range(3)]
    assert counting.batches == [N]  # one forward for the first chunk of all envs
    assert [o["chunk_step"].tolist() for o in outs] == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    assert outs[0]["new_chunk"].all() and not outs[1]["new_chunk"].any()
    first = outs[0]
    tokens = first["chunks"]["token_idx"]  # only freshly drawn chunks are returned: all N at the first call
    assert first["actions"].shape == (N, 8) and tokens.shape == (N, 8, 8)
    assert first["chunks"]["logprobs"].shape == (N, 8, 8) and first["chunks"]["logprobs"].dtype == torch.float32
    assert first["chunks"]["rgb"].dtype == torch.uint8 and first["chunks"]["rgb"].shape == (N, 36, 36, 3)
    assert all(o["chunks"]["env_ids"].numel() == 0 and "token_idx" not in o["chunks"] for o in outs[1:])
    # every step replays the next action of the same chunk
    for o in outs:
        assert torch.equal(policy.queued_token_idx, tokens)
        expected = policy.action_tokenizer.slice_to_actions(tokens[torch.arange(N), o["chunk_step"]])
        assert torch.equal(o["actions"], expected)
        assert o["actions"].abs().max() < 1.0

    policy.reset([1])
    out = policy.act(obs, instr, temperature=1.6)
    assert counting.batches == [N, 1]  # only the reset env is forwarded
    assert out["new_chunk"].tolist() == [False, True, False]
    assert out["chunk_step"].tolist() == [3, 0, 3]
    assert out["chunks"]["env_ids"].tolist() == [1] and out["chunks"]["rgb"].shape[0] == 1
    assert torch.equal(policy.queued_token_idx[[0, 2]], tokens[[0, 2]])

    for _ in range(4):  # envs 0 and 2 exhaust their chunk (steps 4..7)
        out = policy.act(obs, instr, temperature=1.6)
    assert out["chunk_step"].tolist() == [7, 4, 7]
    out = policy.act(obs, instr, temperature=1.6)
    assert out["new_chunk"].tolist() == [True, False, True] and out["chunk_step"].tolist() == [0, 5, 0]
    assert counting.batches == [N, 1, 2]

    policy.reset()
    out = policy.act(obs, instr, temperature=1.6)
    assert out["new_chunk"].all() and counting.batches[-1] == N

    # inactive envs (finished GRPO members) are never forwarded, even with an empty queue
    policy.reset()
    out = policy.act(obs, instr, temperature=1.6, active=torch.tensor([True, False, True]))
    assert counting.batches[-1] == 2 and out["new_chunk"].tolist() == [True, False, True]
    assert out["chunks"]["env_ids"].tolist() == [0, 2]


def test_greedy_is_deterministic_argmax(model):
    policy = VLARunner(model, ByteTokenizer(), num_envs=N)
    obs = _obs()
    a = policy.act(obs, "pick up the box")
    policy.reset()
    b = policy.act(obs, "pick up the box", temperature=0.0)
    assert torch.equal(a["chunks"]["token_idx"], b["chunks"]["token_idx"]) and torch.equal(a["actions"], b["actions"])
    ci = a["chunks"]
    with torch.no_grad():
        logits = model(**policy.model_inputs(ci))
    assert torch.equal(a["chunks"]["token_idx"], logits.argmax(-1))


def test_sampling_is_seedable_and_temperature_raises_entropy(model):
    policy = VLARunner(model, ByteTokenizer(), num_envs=N)
    obs = _obs()
    a = policy.act(obs, "lift", temperature=1.6, generator=torch.Generator().manual_seed(3))
    policy.reset()
    b = policy.act(obs, "lift", temperature=1.6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a["chunks"]["token_idx"], b["chunks"]["token_idx"])
    batch = {k: v for k, v in a["chunks"].items() if k != "env_ids"}
    with torch.no_grad():
        h = [policy.logprobs(batch, temperature=t)["entropy"].mean().item() for t in (0.5, 1.0, 1.6)]
    assert h[0] < h[1] < h[2]


def test_rollout_logprobs_match_recomputed_fp32_and_report_bf16_gap(model):
    policy = VLARunner(model, ByteTokenizer(), num_envs=N)
    obs = _obs(seed=1)
    instr = ["pick up the box", "lift the red box now", "go"]
    first = policy.act(obs, instr, temperature=1.6, generator=torch.Generator().manual_seed(0))
    policy.reset([2, 0])
    second = policy.act(_obs(seed=2), instr, temperature=1.6, generator=torch.Generator().manual_seed(1))

    # training batch: chunks from both calls, a different batch composition and padding length
    c1, c2 = first["chunks"], second["chunks"]
    batch = collate_chunks([c2, c1], pad_token_id=515)
    rollout = torch.cat([c2["logprobs"], c1["logprobs"]])
    with torch.no_grad():
        fp32 = policy.logprobs(batch, temperature=1.6, dtype="float32")["logprobs"]
        bf16 = policy.logprobs(batch, temperature=1.6, dtype="bfloat16")["logprobs"]
    assert (fp32 - rollout).abs().max().item() < 1e-5
    gap = (bf16 - rollout).abs().max().item()
    print(f"bf16 vs fp32 rollout log-prob max gap (tiny, T=1.6): {gap:.5f}")
    assert torch.isfinite(bf16).all() and gap < 0.5

    # the update needs gradients through the recomputed log-probs (pixel_values are recomputed from uint8)
    lp = policy.logprobs(batch, temperature=1.6)["logprobs"]
    lp.sum().backward()
    assert model.projector.fc3.weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_unnormalize_hand_computed_and_policy_option(model):
    stats = {"q01": [-2.0, 0.0], "q99": [4.0, 1.0], "mask": [True, False]}
    a = torch.tensor([[0.0, 0.5], [-1.0, 1.0], [1.0, -1.0]])
    assert unnormalize(a, stats).tolist() == [[1.0, 0.5], [-2.0, 1.0], [4.0, -1.0]]
    nested = {"box": {"action": {"q01": [0.0] * 8, "q99": [2.0] * 8}}, "other": {"action": {}}}
    with pytest.raises(ValueError, match="pass unnorm_key"):
        action_stats(nested)
    assert action_stats(nested, "box")["q99"] == [2.0] * 8
    plain = VLARunner(model, ByteTokenizer(), num_envs=N).act(_obs(), "lift")
    shifted = VLARunner(model, ByteTokenizer(), num_envs=N, norm_stats=nested, unnorm_key="box",
                        unnormalize_actions=True).act(_obs(), "lift")
    assert torch.allclose(shifted["actions"], plain["actions"] + 1.0)
    # normalize: 2 (a - q01) / (q99 - q01) - 1, clipped, only where mask; it inverts unnormalize inside the bounds
    got = normalize(torch.tensor([[1.0, 0.5], [-2.0, 3.0], [7.0, 0.2]]), stats)
    assert torch.allclose(got, torch.tensor([[0.0, 0.5], [-1.0, 3.0], [1.0, 0.2]]), atol=1e-6)
    assert torch.allclose(normalize(unnormalize(a, stats), stats), a)


def test_input_errors(model):
    tok = ByteTokenizer()
    with pytest.raises(ValueError, match="env action_dim 7 != model action_dim 8"):
        VLARunner(model, tok, num_envs=N, action_dim=7)
    policy = VLARunner(model, tok, num_envs=N)
    with pytest.raises(ValueError, match=r"obs\['rgb'\] must be uint8 \[3, H, W, 3\]"):
        policy.act(_obs(n=2), "lift")
    with pytest.raises(ValueError, match=r"obs\['rgb'\] must be uint8"):
        policy.act({"rgb": _obs()["rgb"].float()}, "lift")
    with pytest.raises(KeyError, match="obs needs key 'rgb'"):
        policy.act({"image": _obs()["rgb"]}, "lift")
    proprio_model = OpenVLAForActionPrediction(get_preset("tiny", use_proprio=True)).eval()
    with pytest.raises(ValueError, match=r"obs\['proprio'\] must be \[3, 8\]; got \(2, 9\)"):
        VLARunner(proprio_model, tok, num_envs=N).act({"rgb": _obs()["rgb"], "proprio": torch.zeros(2, 9)}, "lift")
    with pytest.raises(ValueError, match="got 2 instructions for 3 envs"):
        policy.act(_obs(), ["a", "b"])


def test_delta_frame_decodes_relative_to_the_joint_state():
    from openarm_vla.action_space import from_token_frame, to_token_frame

    a = torch.tensor([[[0.5, -0.2, 0.0, 0.1, 0.9, -0.9, 0.3, 0.2], [0.6, -0.1, 0.0, 0.1, 0.9, -0.9, 0.3, 1.0]]])
    j = torch.tensor([[0.4, -0.2, 0.1, 0.0, 0.8, -1.0, 0.3, -1.0]])
    v = to_token_frame(a, j, "delta")
    assert torch.allclose(v[0, :, :7], a[0, :, :7] - j[:, :7]) and torch.equal(v[..., 7], a[..., 7])  # gripper absolute
    assert torch.allclose(from_token_frame(v, j, "delta"), a) and torch.equal(to_token_frame(a, j, "absolute"), a)
    # the policy adds the joint state at the chunk's start back to every action of the chunk
    torch.manual_seed(0)
    model = OpenVLAForActionPrediction(get_preset("tiny", use_proprio=True, action_frame="delta")).eval()
    policy = VLARunner(model, ByteTokenizer(), num_envs=N)
    obs = _obs()
    first = policy.act(obs, "lift")
    values = policy.action_tokenizer.slice_to_actions(first["chunks"]["token_idx"])
    expected = from_token_frame(values, obs["proprio"], "delta")
    assert torch.allclose(first["actions"], expected[:, 0])
    obs2 = {**obs, "proprio": obs["proprio"] + 0.1}  # the chunk was fixed when drawn: later joint states do not move it
    assert torch.allclose(policy.act(obs2, "lift")["actions"], expected[:, 1])
    with pytest.raises(ValueError, match=r"takes proprio: obs\['proprio'\] must be \[3, 8\]; got nothing"):
        VLARunner(model, ByteTokenizer(), num_envs=N).act({"rgb": obs["rgb"]}, "lift")


def test_each_chunk_is_prompted_with_its_envs_current_instruction(model):
    """The per-env prompt ids are built once per set of instructions and taken by row: a partial forward gets its
    envs' own prompts, and a changed instruction (a reset into a new episode) is picked up at the next chunk."""
    tok = ByteTokenizer()
    policy = VLARunner(model, tok, num_envs=N)
    instr = ["pick up the red box", "lift the blue box", "grasp"]

    def prompts(out):
        c = out["chunks"]
        return [tok.decode(c["input_ids"][i][c["attention_mask"][i].bool()].tolist()) for i in range(len(c["env_ids"]))]

    def own(text):
        return tok.decode(tok.encode(f"In: What action should the robot take to {text}?\nOut:", add_bos=True))

    assert prompts(policy.act(_obs(), instr)) == [own(t) for t in instr]
    policy.reset([1])
    instr = [instr[0], "pick up the green box", instr[2]]
    again = policy.act(_obs(), instr)
    assert again["chunks"]["env_ids"].tolist() == [1] and prompts(again) == [own("pick up the green box")]
