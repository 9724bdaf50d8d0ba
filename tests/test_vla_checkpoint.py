"""Checkpoints: our format and the published HF layout round-trip with identical logits; clear
errors for missing/unexpected keys, missing tokenizer files; atomic writes."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from openarm_vla.vla import (
    ByteTokenizer,
    CheckpointError,
    ImagePreprocessor,
    OpenVLAForActionPrediction,
    TextTokenizer,
    count_parameters,
    get_preset,
    load_checkpoint,
    save_checkpoint,
    save_published_layout,
    tokenize_prompts,
)
from openarm_vla.vla.checkpoint import config_from_published




NORM_STATS = {"openarm_box": {"action": {"q01": [-0.9] * 8, "q99": [0.8] * 8, "mask": [True] * 7 + [False]}}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = OpenVLAForActionPrediction(get_preset("tiny")).eval()
    with torch.no_grad():  # non-trivial LayerScale values so a dropped/renamed key would show in the logits
        for name, p in m.named_parameters():
            if name.endswith("scale_factor"):
                p.uniform_(0.5, 1.5)
    return m


@pytest.fixture(scope="module")
def inputs():
    cfg = get_preset("tiny")
    rgb = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ids, mask = tokenize_prompts(ByteTokenizer(), ["pick up the box", "lift"])
    return ImagePreprocessor(cfg)(rgb), ids, mask


def _logits(model, inputs):
    with torch.no_grad():
        return model(*inputs, dtype="float32")


def test_our_format_round_trip(model, inputs, tmp_path):
    path = save_checkpoint(model, tmp_path / "ckpt", ByteTokenizer(), NORM_STATS)
    assert sorted(p.name for p in path.iterdir()) == [
        "byte_tokenizer.json", "config.json", "dataset_statistics.json", "manifest.json", "model.safetensors"]
    ck = load_checkpoint(path)
    assert ck.format == "openarm_vla" and ck.config == model.config and ck.norm_stats == NORM_STATS
    assert isinstance(ck.tokenizer, ByteTokenizer)
    assert torch.equal(_logits(ck.model, inputs), _logits(model, inputs))
    assert [p.requires_grad for p in ck.model.parameters()] == [p.requires_grad for p in model.parameters()]
    # overwrite in place: still atomic, no temp dirs left behind
    save_checkpoint(model, tmp_path / "ckpt", ByteTokenizer(), {})
    assert load_checkpoint(path).norm_stats == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_damaged_checkpoint_is_named_in_one_line(model, tmp_path):
    """The manifest (sizes and hashes, written last) names a truncated or corrupt file before anything reads it;
    without a manifest (a published checkpoint) safetensors' own failure still comes as one CheckpointError."""
    path = save_checkpoint(model, tmp_path / "ckpt", ByteTokenizer(), NORM_STATS)
    weights = path / "model.safetensors"
    full = weights.read_bytes()
    weights.write_bytes(full[:1000])
    with pytest.raises(CheckpointError, match=r"model.safetensors is 1000 bytes, the manifest says \d+ \(truncated"):
        load_checkpoint(path)
    weights.write_bytes(full[:-8] + bytes(8))  # same size, last bytes zeroed
    with pytest.raises(CheckpointError, match="model.safetensors does not match its SHA-256"):
        load_checkpoint(path)
    (path / "manifest.json").unlink()
    weights.write_bytes(full[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable weights"):
        load_checkpoint(path)


@pytest.mark.parametrize("shard", [None, 1 << 20])
def test_published_layout_round_trip(model, inputs, tmp_path, shard):
    path = save_published_layout(model, tmp_path / "pub", ByteTokenizer(), NORM_STATS, max_shard_bytes=shard)
    hf = json.loads((path / "config.json").read_text())
    for key in ("vision_backbone_id", "llm_backbone_id", "image_sizes", "text_config", "norm_stats",
                "n_action_bins", "pad_to_multiple_of", "timm_model_ids"):
        assert key in hf
    files = sorted(p.name for p in path.iterdir())
    if shard:
        index = json.loads((path / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) > 1 and "model.safetensors" not in files
        keys = list(index["weight_map"])
    else:
        keys = list(load_file(str(path / "model.safetensors")))
    assert any(k.startswith("vision_backbone.fused_featurizer.") for k in keys)
    assert any(k.endswith(".ls1.scale_factor") for k in keys) and not any(k.endswith(".gamma") for k in keys)
    assert {k.split(".")[0] for k in keys} == {"vision_backbone", "projector", "language_model"}

    ck = load_checkpoint(path, dtype=torch.float32)  # strict load: any missing/unexpected key raises
    assert ck.format == "published" and ck.norm_stats == NORM_STATS
    assert ck.config.vision == model.config.vision and ck.config.llm == model.config.llm
    assert ck.config.attention_mode == model.config.attention_mode
    assert torch.equal(_logits(ck.model, inputs), _logits(model, inputs))


def test_timm_gamma_names_accepted(model, inputs, tmp_path):
    path = save_published_layout(model, tmp_path / "pub", ByteTokenizer())
    sd = load_file(str(path / "model.safetensors"))
    renamed = {(k[: -len("scale_factor")] + "gamma" if k.endswith("scale_factor") else k): v for k, v in sd.items()}
    save_file(renamed, str(path / "model.safetensors"))
    assert torch.equal(_logits(load_checkpoint(path).model, inputs), _logits(model, inputs))


def test_missing_and_unexpected_keys_fail_with_one_line(model, tmp_path):
    path = save_published_layout(model, tmp_path / "pub", ByteTokenizer())
    sd = load_file(str(path / "model.safetensors"))
    key = "vision_backbone.featurizer.blocks.0.ls1.scale_factor"
    save_file({k: v for k, v in sd.items() if k != key}, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: .*1 missing keys \['" + key.replace(".", r"\.")) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)
    save_file({**sd, "projector.fc4.weight": torch.zeros(2)}, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"0 missing keys \[\], 1 unexpected keys \['projector\.fc4\.weight'\]"):
        load_checkpoint(path)
    sd["projector.fc3.bias"] = torch.zeros(3)
    save_file(sd, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 shape mismatches .*projector\.fc3\.bias \(3,\) vs \(128,\)"):
        load_checkpoint(path)


def test_missing_tokenizer_and_weights_errors(model, tmp_path):
    path = save_published_layout(model, tmp_path / "pub")  # no tokenizer written
    with pytest.raises(FileNotFoundError, match=r"pub: no tokenizer files \(expected byte_tokenizer\.json"):
        load_checkpoint(path)
    ByteTokenizer().save_pretrained(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors or model.safetensors.index.json"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path / "nowhere")


def test_failed_save_leaves_previous_checkpoint(model, tmp_path):
    save_checkpoint(model, tmp_path / "ckpt", ByteTokenizer(), NORM_STATS)

    class Broken(ByteTokenizer):
        def save_pretrained(self, directory):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, tmp_path / "ckpt", Broken(), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert load_checkpoint(tmp_path / "ckpt").norm_stats == NORM_STATS


def test_checkpoint_larger_than_the_free_disk_fails_before_writing(model, tmp_path, monkeypatch):
    import collections
    import errno

    from openarm_vla.utils import io as io_mod
    from openarm_vla.utils.io import DiskFullError

    need = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(io_mod.shutil, "disk_usage", lambda p: usage(10**12, 10**12 - need // 2, need // 2))
    with pytest.raises(DiskFullError, match=r"not enough disk space to write a checkpoint to .*ckpt.*GB free") as e:
        save_checkpoint(model, tmp_path / "ckpt", ByteTokenizer(), NORM_STATS)
    assert e.value.errno == errno.ENOSPC and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_disk_full_while_writing_is_one_line_and_keeps_the_previous_checkpoint(model, tmp_path, monkeypatch):
    from openarm_vla.utils.io import DiskFullError, atomic_write_text
    from openarm_vla.vla import checkpoint as ckpt_mod

    save_checkpoint(model, tmp_path / "ckpt", ByteTokenizer(), NORM_STATS)

    def full(*a, **k):  # what safetensors raises: its own exception type, the OS error only as text
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ckpt_mod, "save_file", full)
    with pytest.raises(DiskFullError, match=r"no space left on the device writing .*ckpt \(.* GB free"):
        save_checkpoint(model, tmp_path / "ckpt", ByteTokenizer(), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # the partial write removed
    assert load_checkpoint(tmp_path / "ckpt").norm_stats == NORM_STATS

    class FullFile:  # a plain OSError(ENOSPC) from a file write
        def __init__(self, *a, **k):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("builtins.open", FullFile)
    with pytest.raises(DiskFullError, match=r"writing .*notes.txt"):
        atomic_write_text(tmp_path / "notes.txt", "x")
    monkeypatch.undo()
    assert not (tmp_path / "notes.txt").exists()


def test_final_export_links_the_last_training_checkpoint(model, inputs, tmp_path, monkeypatch):
    import os
    import shutil

    from openarm_vla.train.checkpoints import export_final, save_training_checkpoint
    from openarm_vla.utils.manifest import MANIFEST_FILE, verify_manifest
    from openarm_vla.utils.run_files import STATE_FILE

    run = tmp_path / "run"
    last = save_training_checkpoint(run, 7, model, ByteTokenizer(), NORM_STATS, {"optimizer": {}}, keep_last=1)
    final = export_final(run, model, ByteTokenizer(), NORM_STATS, iteration=7)
    assert os.stat(final / "model.safetensors").st_ino == os.stat(last / "model.safetensors").st_ino  # written once
    assert not (final / STATE_FILE).exists() and (last / STATE_FILE).is_file()
    assert sorted(p.name for p in final.iterdir()) == sorted(p.name for p in last.iterdir() if p.name != STATE_FILE)
    assert verify_manifest(final) is None and STATE_FILE not in (final / MANIFEST_FILE).read_text()
    shutil.rmtree(last)  # keep_last's rotation removes the checkpoint: final/ keeps its weights
    assert torch.equal(_logits(load_checkpoint(final).model, inputs), _logits(model, inputs))

    # no checkpoint of that iteration: written from the model; links refused (another file system): copied
    assert export_final(run, model, ByteTokenizer(), NORM_STATS, iteration=9) == final
    last = save_training_checkpoint(run, 9, model, ByteTokenizer(), NORM_STATS, {"optimizer": {}}, keep_last=1)
    monkeypatch.setattr(os, "link", lambda a, b: (_ for _ in ()).throw(OSError(18, "Invalid cross-device link")))
    export_final(run, model, ByteTokenizer(), NORM_STATS, iteration=9)
    assert os.stat(final / "model.safetensors").st_ino != os.stat(last / "model.safetensors").st_ino
    assert load_checkpoint(final).norm_stats == NORM_STATS


def test_background_checkpoint_holds_the_state_at_save_time(inputs, tmp_path):
    """The trainers' checkpoint write runs in a thread while training goes on: the checkpoint holds the weights and
    optimizer moments as they were when it was submitted, however the model changes meanwhile; a failed write is
    raised by the next submit or wait, and leaves the previous checkpoint the newest good one."""
    import threading

    from openarm_vla.train.checkpoints import (CheckpointWriter, load_trainer_state, newest_good_checkpoint,
                                               training_checkpoint_state, write_training_checkpoint)

    run, writer = tmp_path / "run", CheckpointWriter()
    torch.manual_seed(0)
    model = OpenVLAForActionPrediction(get_preset("tiny"))  # its own: training changes it
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(*inputs, dtype="float32").float().pow(2).mean().backward()
    opt.step()
    model.eval()
    want_logits = _logits(model, inputs)
    want_moment = next(iter(opt.state.values()))["exp_avg"].clone()

    release, started = threading.Event(), threading.Event()

    def slow_save(*args, **kwargs):  # the write starts, then waits until training has moved on
        started.set()
        release.wait(30)
        return write_training_checkpoint(*args, **kwargs)

    weights, state = training_checkpoint_state(model, {"optimizer": opt.state_dict(), "rows": [{"a": 1}]})
    writer.submit(slow_save, run, 1, model, ByteTokenizer(), NORM_STATS, weights, state, 2)
    assert started.wait(30)
    with torch.no_grad():  # training goes on: weights and moments change in place
        for p in model.parameters():
            p.add_(1.0)
        for st in opt.state.values():
            st["exp_avg"].add_(1.0)
    state["rows"].append({"b": 2})  # the caller's lists are its own: this copy is the checkpoint's
    release.set()
    writer.wait()
    ck = newest_good_checkpoint(run)
    assert ck is not None and ck.name == "iter_000001"
    assert torch.equal(_logits(load_checkpoint(ck).model, inputs), want_logits)
    saved = load_trainer_state(ck)
    assert torch.equal(next(iter(saved["optimizer"]["state"].values()))["exp_avg"], want_moment)

    # a write that fails: raised by the next wait, the finished checkpoint stays the newest good one
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    writer.submit(broken)
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    writer.wait()  # raised once
    assert newest_good_checkpoint(run).name == "iter_000001"


class LlamaLikeTokenizer(TextTokenizer):
    """Stands in for the Llama-2 tokenizer of a published checkpoint (vocab 32000, <PAD> 32000)."""

    kind = "hf"
    vocab_size, bos_token_id, eos_token_id, pad_token_id = 32000, 1, 2, 32000


def test_sparse_published_config_means_openvla_7b():
    hf = {  # what OpenVLA / OpenVLA-OFT config.json files carry
        "vision_backbone_id": "dinosiglip-vit-so-224px", "llm_backbone_id": "llama2-7b-pure",
        "use_fused_vision_backbone": True, "image_sizes": [224, 224],
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "timm_override_act_layers": [None, None], "n_action_bins": 256, "pad_token_id": 32000,
        "pad_to_multiple_of": 64, "text_config": {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064},
    }
    cfg = config_from_published(hf, LlamaLikeTokenizer(), action_dim=7)
    ref = get_preset("openvla-oft-7b")
    assert cfg.vision == ref.vision and cfg.llm == ref.llm
    assert cfg.prompt_suffix_ids == (29871,) and cfg.attention_mode == "bidirectional" and cfg.action_dim == 7
    assert cfg.resize_interpolation == "bicubic"
    with torch.device("meta"):
        assert count_parameters(OpenVLAForActionPrediction(cfg)) == 7_541_237_184
    no_vocab = {**hf, "text_config": {"model_type": "llama"}}  # padded vocab from pad_to_multiple_of
    assert config_from_published(no_vocab, LlamaLikeTokenizer()).llm.vocab_size == 32064
    with pytest.raises(CheckpointError, match="llm_backbone_id 'phi-2-3b' is not supported"):
        config_from_published({**hf, "llm_backbone_id": "phi-2-3b"}, LlamaLikeTokenizer())
    with pytest.raises(CheckpointError, match="text_config.model_type 'mistral' is not supported"):
        config_from_published({**hf, "text_config": {"model_type": "mistral"}}, LlamaLikeTokenizer())


def test_export_policy_in_bf16_shards_loads_back_in_fp32(model, inputs, tmp_path, capsys):
    """scripts/export_policy.py: the policy as bf16 safetensors shards under a size bound (how a policy leaves a
    machine that passes files back 16 MiB at a time, and how the shipped CPU policy is stored), loaded back in
    fp32 with the logits of the bf16-rounded weights."""
    import importlib.util

    from openarm_vla.utils.manifest import verify_manifest

    src = save_checkpoint(model, tmp_path / "src", ByteTokenizer(), NORM_STATS)
    spec = importlib.util.spec_from_file_location("export_policy", Path(__file__).resolve().parents[1] / "scripts" / "export_policy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(src), str(tmp_path / "dst"), "--max_shard_mb", "0.5"]) == 0
    shards = sorted((tmp_path / "dst").glob("model-*.safetensors"))
    assert len(shards) >= 2 and all(f.stat().st_size <= 0.5 * 2**20 + 4096 for f in shards), [f.stat().st_size for f in shards]
    assert verify_manifest(tmp_path / "dst") is None and "bfloat16" in capsys.readouterr().out
    from openarm_vla.policies.vla import checkpoint_vla

    runner = checkpoint_vla(tmp_path / "dst", num_envs=2, device="cpu")
    assert {p.dtype for p in runner.model.parameters()} == {torch.float32} and runner.stats is not None
    rounded = OpenVLAForActionPrediction(model.config)
    rounded.load_state_dict({k: v.to(torch.bfloat16).float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    assert torch.allclose(_logits(runner.model, inputs), _logits(rounded, inputs), atol=1e-5)
