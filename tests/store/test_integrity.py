"""Damaged results are detected before they are used, named in one line, and recomputed exactly."""

import json

import pytest
import torch

from lth.core.errors import LTHError
from lth.plan import Job
from lth.plan.layout import RunKey
from lth.store import artifacts
from lth.store.integrity import verify
from lth.store.results import read_record


def flip_a_byte(path, offset=-5):
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(data)


def test_a_tensor_file_carries_its_checksum_and_damage_is_named(tmp_path):
    path = tmp_path / "w.safetensors"
    artifacts.save_tensors(path, {"w": torch.randn(20, 30), "m": torch.rand(20, 30) < 0.5})
    assert set(artifacts.load_tensors(path)) == {"w", "m"}
    flip_a_byte(path)
    with pytest.raises(LTHError, match=r"w.safetensors: damaged tensor file \(checksum mismatch\); run `lth verify"):
        artifacts.load_tensors(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(LTHError, match="w.safetensors: unreadable or corrupted tensor file"):
        artifacts.load_tensors(path)


@pytest.fixture
def finished(context):
    """A tiny experiment with k = 20 and two levels, every job run."""
    ctx = context({"rewind_iteration": 20, "variants": ["ticket", "reinit"]})
    for job in ctx.plan.jobs():
        ctx.run(job)
    return ctx


def test_a_record_edited_or_cut_short_is_refused(finished):
    path = finished.plan.layout.metrics(RunKey(0, 1, "ticket"))
    record = json.loads(path.read_text())
    record["summary"]["test_accuracy"] = 0.99
    path.write_text(json.dumps(record))
    with pytest.raises(LTHError, match="metrics.json: damaged run record \\(checksum mismatch\\)"):
        read_record(path)
    path.write_text("{\"seed\": 0")
    with pytest.raises(LTHError, match="metrics.json: corrupted JSON"):
        read_record(path)


def test_verify_names_each_damaged_file_and_deletes_what_must_be_recomputed(finished):
    plan, L = finished.plan, finished.plan.layout
    root = L.root
    assert verify(root)[1] == 0
    theta_k, final, mask, record = (L.rewind(0, 20), L.final(RunKey(0, 1, "ticket")), L.mask(RunKey(0, 2, "ticket")),
                                    L.metrics(RunKey(0, 2, "reinit")))
    theta_k.write_bytes(theta_k.read_bytes()[:-50])  # truncated
    flip_a_byte(final)
    mask.unlink()
    record.write_text("garbage")
    lines, bad = verify(root)
    assert bad == 4
    text = "\n".join(lines)
    for path in (theta_k, final, mask, record):
        assert str(path) in text
    lines, bad = verify(root, delete=True)
    assert not theta_k.exists() and not final.exists() and not record.exists()
    level1 = plan.with_runs(Job("level", 0, 1, "ticket"))
    assert not L.metrics(RunKey(0, 1, "ticket")).exists() and not plan.done(level1).exists()
    assert L.metrics(RunKey(0, 1, "reinit")).exists()  # undamaged runs of the same job stay
    assert verify(root)[1] == 0


def test_a_job_refuses_a_damaged_input_before_training(finished):
    theta_k = finished.plan.layout.rewind(0, 20)
    flip_a_byte(theta_k)
    finished.plan.layout.metrics(RunKey(0, 1, "ticket")).unlink()
    with pytest.raises(LTHError, match="rewind20.safetensors: damaged tensor file"):
        finished.run(Job("level", 0, 1, "ticket"))
    assert not finished.plan.layout.metrics(RunKey(0, 1, "ticket")).exists()
