"""Action tokenizer (OpenVLA conventions), text tokenizers, prompt and sampling math."""

import math

import numpy as np
import pytest
import torch

from openarm_vla.vla import (
    ActionTokenizer,
    ByteTokenizer,
    HFTokenizer,
    build_prompt,
    entropy,
    get_preset,
    load_text_tokenizer,
    logprobs_of,
    make_text_tokenizer,
    sample_actions,
    tokenize_prompts,
)




LLAMA_VOCAB = 32000
HALF_BIN = 1.0 / 255.0  # bin width is 2/255


# ----------------------------------------------------------------------------- ActionTokenizer


def test_action_ids_hand_computed():
    tok = ActionTokenizer(LLAMA_VOCAB)
    a = torch.tensor([-1.0, 0.0, 1.0, 0.5, -3.0, 2.0])
    # digitize: -1 -> 1, 0 -> 128 (bins[127] = -1/255 <= 0 < 1/255), 1 -> 256, 0.5 -> 192; out of range clips
    assert tok.encode(a).tolist() == [31999, 31872, 31744, 31808, 31999, 31744]
    assert tok.token_begin == 31744
    assert tok.actions_to_slice(a).tolist() == [255, 128, 0, 64, 255, 0]


def test_action_decode_hand_computed():
    tok = ActionTokenizer(LLAMA_VOCAB)
    ids = torch.tensor([31999, 31872, 31744, 31745])
    out = tok.decode(ids)
    assert out.dtype == torch.float32
    expected = [-1 + HALF_BIN, 0.0, 1 - HALF_BIN, 1 - HALF_BIN]  # 31744 and 31745 share the last center
    assert torch.allclose(out, torch.tensor(expected), atol=1e-7)
    assert out[1].item() == 0.0


def test_slice_mapping_matches_token_mapping():
    tok = ActionTokenizer(LLAMA_VOCAB)
    s = torch.arange(256)
    ids = tok.slice_to_token_ids(s)
    assert ids[0].item() == 31744 and ids[-1].item() == 31999
    assert torch.equal(tok.token_ids_to_slice(ids), s)
    assert torch.equal(tok.slice_to_actions(s), tok.decode(ids))
    # large slice index = small action; s = 0 and s = 1 decode to the same (last) center
    assert tok.slice_to_actions(torch.tensor([0])).item() == tok.slice_to_actions(torch.tensor([1])).item()
    assert torch.all(tok.slice_to_actions(s[1:])[:-1] > tok.slice_to_actions(s[1:])[1:])


def test_encode_matches_numpy_digitize_including_edges():
    tok = ActionTokenizer(LLAMA_VOCAB)
    bins = np.linspace(-1, 1, 256)
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(-1.2, 1.2, 5000), bins, bins.astype(np.float32).astype(np.float64)])
    expected = LLAMA_VOCAB - np.digitize(np.clip(a, -1, 1), bins)
    got = tok.encode(torch.from_numpy(a)).numpy()
    np.testing.assert_array_equal(got, expected)


def test_round_trip_within_half_bin_and_batched_shapes():
    tok = ActionTokenizer(LLAMA_VOCAB)
    a = torch.rand(4, 8, 8) * 2 - 1
    back = tok.decode(tok.encode(a))
    assert back.shape == a.shape
    assert (back - a).abs().max().item() <= HALF_BIN + 1e-6
    back_s = tok.slice_to_actions(tok.actions_to_slice(a))
    assert torch.equal(back, back_s)
    # decoding is idempotent on bin centers
    assert torch.equal(tok.decode(tok.encode(back)), back)


def test_byte_vocab_action_ids_are_the_reserved_tail():
    byte = ByteTokenizer()
    tok = ActionTokenizer(byte.vocab_size)
    ids = tok.encode(torch.tensor([-1.0, 1.0]))
    assert ids.tolist() == [514, 259]  # 259..514 are reserved, never produced by text
    text_ids = byte.encode("\xff\x00 any text ÿ", add_bos=True)
    assert max(text_ids) <= 258


# ----------------------------------------------------------------------------- text tokenizers


def test_byte_tokenizer_layout_and_save_load(tmp_path):
    tok = ByteTokenizer()
    assert (tok.vocab_size, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (515, 1, 2, 515)
    assert tok.encode("Ab") == [1, 65 + 3, 98 + 3]
    assert tok.encode("Ab", add_bos=False) == [68, 101]
    assert tok.decode(tok.encode("héllo")) == "héllo"
    tok.save_pretrained(tmp_path)
    loaded = load_text_tokenizer(tmp_path)
    assert isinstance(loaded, ByteTokenizer) and loaded.vocab_size == 515


def test_hf_tokenizer_wrapper_from_local_files(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "in": 3, ":": 4, "what": 5, "<PAD>": 6}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(tmp_path)
    tok = load_text_tokenizer(tmp_path, pad_token_id=6)
    assert isinstance(tok, HFTokenizer)
    assert tok.encode("in: what") == [1, 3, 4, 5]  # BOS prepended once
    assert tok.pad_token_id == 6 and tok.vocab_size == 7


def test_missing_tokenizer_files_error_and_the_fresh_model_stand_in(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_text_tokenizer(tmp_path)
    # a fresh model: bytes; the 7B's Llama tokenizer needs files, so its stand-in puts the byte ids inside the
    # preset's 32000-id vocabulary (its last 256 ids stay the action tokens)
    assert make_text_tokenizer(get_preset("tiny")).vocab_size == 515
    stand_in = make_text_tokenizer(get_preset("openvla-oft-7b"))
    assert isinstance(stand_in, ByteTokenizer) and stand_in.vocab_size == 32000 and stand_in.pad_token_id == 32000
    assert stand_in.encode("a") == [1, 3 + ord("a")]


# ----------------------------------------------------------------------------- prompt


def test_prompt_text_lowercases_instruction():
    assert build_prompt("Pick up the RED box") == "In: What action should the robot take to pick up the red box?\nOut:"


def test_tokenize_prompts_left_and_right_padding():
    tok = ByteTokenizer()
    long, short = "Lift the box", "go"
    ids, mask = tokenize_prompts(tok, [long, short], suffix_ids=(7,), padding_side="left")
    n_long = 1 + len(build_prompt(long)) + 1
    n_short = 1 + len(build_prompt(short)) + 1
    assert ids.shape == mask.shape == (2, n_long)
    assert mask[0].sum().item() == n_long and mask[1].sum().item() == n_short
    assert mask[1, : n_long - n_short].sum().item() == 0  # left padding
    assert ids[1, : n_long - n_short].eq(tok.pad_token_id).all()
    assert ids[1, n_long - n_short].item() == tok.bos_token_id and ids[1, -1].item() == 7
    assert ids[1, n_long - n_short :].tolist() == tok.encode(build_prompt(short)) + [7]

    ids_r, mask_r = tokenize_prompts(tok, [long, short], suffix_ids=(7,), padding_side="right")
    assert ids_r[1, :n_short].tolist() == ids[1, n_long - n_short :].tolist()
    assert mask_r[1, n_short:].sum().item() == 0
    with pytest.raises(ValueError, match="padding_side"):
        tokenize_prompts(tok, [short], padding_side="middle")


def test_tokenize_prompts_repeated_instructions_match_their_own_rows():
    """Thousands of envs share a few instructions: each row is the same as that instruction tokenized alone
    (padded to the batch's longest), in the order given."""
    tok = ByteTokenizer()
    texts = ["pick up the red box", "go", "pick up the red box", "grab the small blue carton", "go", "go"]
    for side in ("left", "right"):
        ids, mask = tokenize_prompts(tok, texts, suffix_ids=(7,), padding_side=side)
        assert ids.shape == mask.shape == (6, 1 + len(build_prompt(texts[3])) + 1)
        for i, text in enumerate(texts):
            own = tok.encode(build_prompt(text), add_bos=True) + [7]
            assert ids[i][mask[i].bool()].tolist() == own and int(mask[i].sum()) == len(own)
            assert (mask[i, -len(own):] if side == "left" else mask[i, :len(own)]).all()


# ----------------------------------------------------------------------------- sampling


def test_sampling_hand_computed():
    p = torch.tensor([0.1, 0.2, 0.7])
    logits = p.log()
    idx, lp = sample_actions(logits, temperature=None)
    assert idx.item() == 2 and lp.item() == pytest.approx(math.log(0.7), abs=1e-6)
    idx0, _ = sample_actions(logits, temperature=0.0)
    assert idx0.item() == 2
    # T = 2: p_i ** 0.5 renormalized
    z = sum(math.sqrt(x) for x in [0.1, 0.2, 0.7])
    lp_t2 = logprobs_of(logits, torch.tensor(0), temperature=2.0)
    assert lp_t2.item() == pytest.approx(math.log(math.sqrt(0.1) / z), abs=1e-6)
    assert entropy(torch.zeros(256)).item() == pytest.approx(math.log(256), abs=1e-5)
    h = -sum(x * math.log(x) for x in [0.1, 0.2, 0.7])
    assert entropy(logits).item() == pytest.approx(h, abs=1e-6)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample_actions(logits, temperature=-1.0)


def test_sampling_frequencies_logprobs_and_seeding():
    logits = torch.tensor([0.1, 0.2, 0.7]).log().expand(20000, 3)
    g = torch.Generator().manual_seed(0)
    idx, lp = sample_actions(logits, temperature=1.0, generator=g)
    freq = torch.bincount(idx, minlength=3).float() / idx.numel()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.015)
    assert torch.allclose(lp, logprobs_of(logits, idx, 1.0))
    idx2, _ = sample_actions(logits, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(idx, idx2)


def test_higher_temperature_higher_entropy():
    logits = torch.randn(16, 256, generator=torch.Generator().manual_seed(1)) * 3
    h = [entropy(logits, t).mean().item() for t in (0.5, 1.0, 1.6, 4.0)]
    assert h == sorted(h) and h[0] < h[-1] < math.log(256)
