"""Ray Data scanning on a local ``ray.init(num_cpus=2)``: the same records as the
local engine, unreadable items as records, and nothing lost or duplicated when a
worker dies mid-run."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import warnings

import numpy as np
import pytest
import soundfile as sf

import nowm
from nowm.cli import main

from .conftest import synth_music

ray = pytest.importorskip("ray", reason="Ray (the nowm[ray] extra) is not installed")
pytest.importorskip("ray.data", reason="Ray Data (the nowm[ray] extra) is not installed")
pytest.importorskip("pyarrow", reason="pyarrow is not installed")

import nowm.ray as nowm_ray  # noqa: E402

SR = 16000
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Six 10 s clips (three marked), a junk file, a short clip, a shard and a manifest."""
    d = tmp_path_factory.mktemp("raydata")
    (d / "clips").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nowm.NowmWarning)
        for i in range(6):
            y = synth_music(10.0, SR, seed=40 + i, channels=1)
            if i % 2 == 0:
                y = nowm.embed(y, SR, policy=("no-ai-training", "no-tdm", "consent-required")[i // 2],
                               strength=3.0)
            sf.write(d / "clips" / f"clip{i}.flac", y, SR)
    (d / "clips" / "junk.wav").write_bytes(b"junk " * 300)
    sf.write(d / "clips" / "short.wav", synth_music(1.0, SR, seed=49, channels=1), SR)
    with tarfile.open(d / "shard.tar", "w") as tf:
        for name in ("clip0.flac", "clip1.flac"):
            data = (d / "clips" / name).read_bytes()
            ti = tarfile.TarInfo(f"s-{name}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    (d / "m.jsonl").write_text(json.dumps({"audio_filepath": "clips/clip2.flac"}) + "\n{broken\n")
    return d


def _local(paths, **kw):
    return sorted(nowm.scan(paths, **kw), key=lambda r: (r["path"], r.get("line") or 0))


def test_same_records_as_the_local_engine(data):
    paths = [data / "clips"]
    got = nowm_ray.records(nowm_ray.scan(paths))
    assert got == _local(paths)
    assert [r["status"] for r in got] == [
        "reserved-watermark", "allowed", "reserved-watermark", "allowed", "reserved-watermark",
        "allowed", "unreadable", "too-short"]
    assert "not a readable audio file" in got[6]["error"]


def test_shards_manifests_and_missing_paths(data):
    paths = [data / "clips" / "clip1.flac", data / "shard.tar", data / "m.jsonl",
             data / "missing.wav"]
    got = nowm_ray.records(nowm_ray.scan(paths, use="tdm"))
    assert got == _local(paths, use="tdm")
    by_path = {r["path"]: r for r in got}
    assert by_path[f"{data / 'shard.tar'}::s-clip0.flac"]["status"] == "allowed"  # no-ai-training
    assert by_path[str(data / "clips" / "clip2.flac")]["status"] == "reserved-watermark"  # no-tdm
    assert "no such file" in by_path[str(data / "missing.wav")]["error"]
    assert sum(r["status"] == "unreadable" for r in got) == 2


def test_dataset_input(data):
    files = sorted(str(p) for p in (data / "clips").glob("clip*.flac"))
    ds = ray.data.read_binary_files(files, include_paths=True)
    got = nowm_ray.records(nowm_ray.scan(ds, use="genai-training"))
    assert got == _local(files, use="genai-training")


class DyingChecker(nowm_ray.Checker):
    """Kills its own worker process the first time it sees clip3 (a marker file
    makes it happen once across restarts)."""

    marker = None

    def __call__(self, batch):
        paths = batch.column("path").to_pylist()
        if any(p.endswith("clip3.flac") for p in paths) and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().__call__(batch)


def test_worker_killed_mid_run_loses_and_duplicates_nothing(data, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "died"

    class Checker(DyingChecker):
        pass

    Checker.marker = str(marker)
    paths = [data / "clips"]
    ds = nowm_ray.scan(paths, checker=Checker, batch_size=2)
    got = nowm_ray.records(ds)
    assert marker.exists()  # a worker did die
    assert [r["path"] for r in got] == sorted({r["path"] for r in got})  # no duplicate
    assert got == _local(paths)  # nothing lost


def test_cli_engine_ray(data, capsys):
    code = main(["scan", str(data / "clips"), "--engine", "ray", "--quiet"])
    out, err = capsys.readouterr()
    recs = sorted((json.loads(line) for line in out.splitlines()), key=lambda r: r["path"])
    assert code == 3 and recs == _local([data / "clips"])
    code = main(["scan", str(data / "clips"), "--address", "localhost:1"])
    assert code == 2 and "--engine ray" in capsys.readouterr().err


def test_bad_arguments():
    with pytest.raises(nowm.ParameterError, match="no paths"):
        nowm_ray.scan([])
    with pytest.raises(nowm.ParameterError, match="use="):
        nowm_ray.scan(["x.wav"], use="anything")


# --------------------------------------------------------------------------- batch --engine ray

from . import test_batch as tb  # noqa: E402


def _catalog_for_ray(root):
    base = synth_music(6.0, tb.SR, seed=31)
    tb._write(root / "a.wav", base, seed=1)
    tb._write(root / "sub" / "b.flac", base, "FLAC", "PCM_24", seed=2)
    tb._write(root / "c.mp3", base, "MP3", "MPEG_LAYER_III", seed=3)
    tb._write(root / "d.wav", base, seed=4)
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    return ["a.wav", "sub/b.flac", "c.mp3", "d.wav"]


def test_batch_on_ray_same_as_local(tmp_path):
    src = tmp_path / "src"
    audio = _catalog_for_ray(src)
    before = {p: tb._sha(p) for p in src.rglob("*") if p.is_file()}
    local = tb._mark(src, tmp_path / "local", jobs=1, owner=5)
    on_ray = tb._mark(src, tmp_path / "ray", engine="ray", owner=5)
    assert on_ray.exit_status == local.exit_status == 3  # broken.wav failed
    want = {f.rel: f.status for f in local.files}
    assert {f.rel: f.status for f in on_ray.files} == want
    assert want == {**{r: "marked" for r in audio}, "broken.wav": "failed"}
    assert "broken.wav" in tb._by_rel(on_ray)["broken.wav"].reason
    for rel in audio:  # marking is deterministic: the same samples either way
        a, _ = sf.read(tmp_path / "local" / rel, dtype="int32")
        b, _ = sf.read(tmp_path / "ray" / rel, dtype="int32")
        assert np.array_equal(a, b), rel
    rows = tb._rows(tmp_path / "ray" / nowm.batch.MANIFEST_NAME)
    assert {r: rows[r]["status"] for r in rows} == want
    assert all(rows[r]["verified"] == 1 and rows[r]["attempts"] == 1 for r in audio)
    assert {p: tb._sha(p) for p in before} == before  # sources untouched
    again = tb._mark(src, tmp_path / "ray", engine="ray", owner=5)  # resume: nothing left but the failure
    assert {f.rel: f.status for f in again.files} == {**{r: "up-to-date" for r in audio},
                                                      "broken.wav": "failed"}


class DyingMarker(nowm_ray.Marker):
    """Kills its worker right after it has marked (and renamed into place) d.wav,
    before the result reaches the driver; once across restarts."""

    marker = None

    def run(self, task):
        r = super().run(task)
        if task["rel"] == "d.wav" and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return r


def test_batch_on_ray_worker_killed_in_place_marks_once(tmp_path, monkeypatch):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    src = tmp_path / "src"
    audio = _catalog_for_ray(src)
    (src / "broken.wav").unlink()
    keep = tmp_path / "originals"
    for rel in audio:
        (keep / rel).parent.mkdir(parents=True, exist_ok=True)
        (keep / rel).write_bytes((src / rel).read_bytes())

    class Marker(DyingMarker):
        pass

    Marker.marker = str(tmp_path / "died")
    real = nowm_ray.mark_tasks
    monkeypatch.setattr(nowm_ray, "mark_tasks", lambda tasks, **kw: real(tasks, marker=Marker, **kw))
    report = tb._mark(src, in_place=True, engine="ray")
    assert (tmp_path / "died").exists()  # a worker did die, after its file was done
    assert sorted(f.rel for f in report.files) == sorted(audio)  # each file reported once
    by = tb._by_rel(report)
    assert report.exit_status == 0
    assert {by[r].status for r in audio} <= {"marked", "already-marked"}
    for rel in audio:  # marked exactly once, original kept
        assert (src / nowm.batch.BACKUP_DIR / rel).read_bytes() == (keep / rel).read_bytes()
        assert tb._marked_once(keep / rel, src / rel, tmp_path), rel
    assert not tb._partials(src)


def test_cli_batch_engine_ray(tmp_path, capsys):
    src = tmp_path / "src"
    audio = _catalog_for_ray(src)
    (src / "broken.wav").unlink()
    code = main(["batch", str(src), "--out", str(tmp_path / "out"), "--engine", "ray",
                 "--strength", "3", "--quiet"])
    assert code == 0
    assert all(nowm.detect_file(tmp_path / "out" / r).marked for r in audio)
    code = main(["batch", str(src), "--out", str(tmp_path / "o2"), "--address", "localhost:1"])
    assert code == 2 and "--engine ray" in capsys.readouterr().err
