"""Catalog marking (`nowm batch`): mirror, resume, idempotence, in place, bad cases, crashes."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import nowm
from nowm import batch, files
from nowm.cli import main

from .conftest import synth_music

SR = 44100
STRENGTH = 3.0  # the test files are a few seconds long


@pytest.fixture(scope="module")
def base():
    return synth_music(6.0, SR, seed=21)


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write(path, y, fmt="WAV", subtype="PCM_16", seed=0):
    """A distinct variant of ``y`` (rolled, scaled) at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(seed)
    v = np.roll(y, int(r.integers(0, len(y))), axis=0) * float(r.uniform(0.6, 0.9))
    sf.write(path, v, SR, format=fmt, subtype=subtype)
    return path


def _rows(manifest) -> dict:
    with sqlite3.connect(manifest) as db:
        db.row_factory = sqlite3.Row
        return {r["rel"]: dict(r) for r in db.execute("SELECT * FROM files")}


def _partials(root) -> list:
    return [p for p in Path(root).rglob("*") if batch._PARTIAL in p.name or p.name.endswith(".part")]


def _mark(src, out=None, **kw):
    kw.setdefault("strength", STRENGTH)
    return nowm.mark_catalog(src, out, **kw)


def _by_rel(report) -> dict:
    return {f.rel: f for f in report.files}


def _marked_once(original, output, tmp_path, **kw):
    """The output holds exactly the samples of one embed_file of the original."""
    ref = tmp_path / ("ref" + Path(output).suffix)
    nowm.embed_file(original, ref, strength=STRENGTH, force=True, **kw)
    a, _ = sf.read(output, dtype="int32")
    b, _ = sf.read(ref, dtype="int32")
    return a.shape == b.shape and np.array_equal(a, b)


def test_mirror_formats_manifest_and_resume(tmp_path, base):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write(src / "a" / "one.wav", base, seed=1)
    _write(src / "a" / "b" / "two.flac", base, "FLAC", "PCM_24", seed=2)
    _write(src / "three.mp3", base, "MP3", "MPEG_LAYER_III", seed=3)
    _write(src / "four.ogg", base, "OGG", "VORBIS", seed=4)
    (src / "cover.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    before = {p: _sha(p) for p in src.rglob("*") if p.is_file()}

    report = _mark(src, dst, jobs=2, copy_other=True, owner=7)
    got = _by_rel(report)
    assert {r: f.status for r, f in got.items()} == {
        "a/one.wav": "marked", "a/b/two.flac": "marked", "three.mp3": "marked",
        "four.ogg": "marked", "cover.jpg": "copied"}
    assert report.exit_status == 0 and report.jobs == 2
    assert {p: _sha(p) for p in before} == before  # sources untouched
    for rel in ("a/one.wav", "a/b/two.flac", "three.mp3", "four.ogg"):
        out = dst / rel
        a, b = sf.info(src / rel), sf.info(out)
        assert (a.format, a.subtype, a.samplerate, a.channels) == (b.format, b.subtype, b.samplerate, b.channels)
        det = nowm.detect_file(out)
        assert det.marked and det.policy == "no-ai-training"
        assert got[rel].verified is True
    assert (dst / "cover.jpg").read_bytes() == (src / "cover.jpg").read_bytes()
    assert not _partials(dst)

    rows = _rows(dst / batch.MANIFEST_NAME)
    for rel in ("a/one.wav", "a/b/two.flac", "three.mp3", "four.ogg"):
        row = rows[rel]
        assert row["status"] == "marked" and row["verified"] == 1 and row["owner"] == 7
        assert row["src_sha256"] == _sha(src / rel) and row["out_sha256"] == _sha(dst / rel)
        assert row["policy"] == "no-ai-training" and row["started_at"] and row["finished_at"]

    # resume: nothing to do; then a changed source is redone, the rest skipped
    again = _mark(src, dst, jobs=2, copy_other=True, owner=7)
    assert {f.status for f in again.files if f.rel != "cover.jpg"} == {"up-to-date"}
    mtime = (dst / "three.mp3").stat().st_mtime_ns
    _write(src / "a" / "one.wav", base, seed=11)
    third = _by_rel(_mark(src, dst, jobs=1, copy_other=True, owner=7))
    assert third["a/one.wav"].status == "marked"
    assert third["three.mp3"].status == "up-to-date"
    assert (dst / "three.mp3").stat().st_mtime_ns == mtime
    assert _rows(dst / batch.MANIFEST_NAME)["a/one.wav"]["src_sha256"] == _sha(src / "a" / "one.wav")


def test_already_marked_and_conflict(tmp_path, base):
    src, dst = tmp_path / "src", tmp_path / "dst"
    plain = _write(tmp_path / "plain.wav", base, seed=5)
    src.mkdir()
    nowm.embed_file(plain, src / "same.wav", strength=STRENGTH)
    nowm.embed_file(plain, src / "other.wav", policy="ai-allowed", strength=STRENGTH)
    _write(src / "fresh.wav", base, seed=6)

    report = _mark(src, dst)
    got = _by_rel(report)
    assert got["same.wav"].status == "already-marked"
    assert _sha(dst / "same.wav") == _sha(src / "same.wav")  # carried over, not marked twice
    assert got["other.wav"].status == "conflict" and "ai-allowed" in got["other.wav"].reason
    assert not (dst / "other.wav").exists()  # left alone
    assert got["fresh.wav"].status == "marked"
    assert report.exit_status == 3
    assert "conflict: other.wav" in report.summary()

    forced = _by_rel(_mark(src, dst, force=True))
    assert forced["other.wav"].status != "conflict"
    assert forced["same.wav"].status == "up-to-date"


def test_in_place_backup_and_exactly_once(tmp_path, base):
    src = tmp_path / "src"
    _write(src / "x.wav", base, seed=7)
    _write(src / "sub" / "y.flac", base, "FLAC", "PCM_16", seed=8)
    originals = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    keep = tmp_path / "originals"
    for rel, data in originals.items():
        (keep / rel).parent.mkdir(parents=True, exist_ok=True)
        (keep / rel).write_bytes(data)

    report = _mark(src, in_place=True, jobs=2)
    assert report.exit_status == 0 and report.count("marked") == 2
    for rel, data in originals.items():
        assert (src / batch.BACKUP_DIR / rel).read_bytes() == data
        assert _marked_once(keep / rel, src / rel, tmp_path)
    again = _mark(src, in_place=True)
    assert {f.status for f in again.files} == {"up-to-date"}
    assert all(_marked_once(keep / rel, src / rel, tmp_path) for rel in originals)

    # another policy in place starts again from the kept original
    third = _by_rel(_mark(src, in_place=True, policy="no-tdm"))
    assert third["x.wav"].status == "marked"
    assert nowm.detect_file(src / "x.wav").policy == "no-tdm"
    assert _marked_once(keep / "x.wav", src / "x.wav", tmp_path, policy="no-tdm")

    nb = tmp_path / "nb"
    _write(nb / "z.wav", base, seed=9)
    assert _mark(nb, in_place=True, no_backup=True).count("marked") == 1
    assert not (nb / batch.BACKUP_DIR).exists()


def test_bad_files_links_and_collisions(tmp_path, base):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write(src / "good.wav", base, seed=10)
    (src / "garbage.wav").write_bytes(b"RIFF but not really audio" * 40)
    _write(src / "dup" / "song.wav", base, seed=12)
    _write(src / "dup" / "SONG.WAV", base, seed=13)
    (src / "dup" / "up").symlink_to("..")            # folder loop
    (src / "loop1.wav").symlink_to("loop2.wav")     # link loop
    (src / "loop2.wav").symlink_to("loop1.wav")
    (src / "alias.wav").symlink_to("good.wav")      # a symlink to a file is marked like a file

    report = _mark(src, dst, jobs=2)
    got = _by_rel(report)
    assert got["good.wav"].status == "marked" and got["alias.wav"].status == "marked"
    assert got["garbage.wav"].status == "failed" and "garbage.wav" in got["garbage.wav"].reason
    assert got["dup/up"].status == "skipped" and "loop" in got["dup/up"].reason
    assert got["loop1.wav"].status == "failed" and "loop" in got["loop1.wav"].reason
    # one of the two names wins (sorted order), the other is reported, nothing overwritten
    assert got["dup/SONG.WAV"].status == "marked"
    assert got["dup/song.wav"].status == "failed" and "same output" in got["dup/song.wav"].reason
    assert not [r for r in got if r.startswith("dup/up/")]
    assert report.exit_status == 3
    assert nowm.detect_file(dst / "alias.wav").marked
    assert not _partials(dst)
    rows = _rows(dst / batch.MANIFEST_NAME)
    assert rows["garbage.wav"]["status"] == "failed" and rows["garbage.wav"]["error"]


def test_output_not_writable_and_disk_full(tmp_path, base, monkeypatch):
    """Tests run as root, which chmod does not stop: an output folder that is a file,
    and failing writes injected where nowm writes (EACCES on create, ENOSPC on fsync)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ("ok.wav", "sub/blocked.wav", "deny/x.wav", "full/y.wav"):
        _write(src / name, base, seed=len(name))
    dst.mkdir()
    (dst / "sub").write_text("a file where a folder should be")

    real_mkstemp, real_fsync = files.tempfile.mkstemp, files._fsync

    def mkstemp(*a, dir=None, **kw):
        if dir and Path(dir).name == "deny":
            raise PermissionError(errno.EACCES, "Permission denied", dir)
        return real_mkstemp(*a, dir=dir, **kw)

    def fsync(path):
        if Path(path).parent.name == "full":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_fsync(path)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(files, "_fsync", fsync)
    report = _mark(src, dst, jobs=1, force=True)
    got = _by_rel(report)
    assert got["ok.wav"].status == "marked"
    assert got["sub/blocked.wav"].status == "failed" and "Not a directory" in got["sub/blocked.wav"].reason
    assert got["deny/x.wav"].status == "failed" and "Permission denied" in got["deny/x.wav"].reason
    assert got["full/y.wav"].status == "failed" and "No space left" in got["full/y.wav"].reason
    assert not (dst / "deny" / "x.wav").exists() and not (dst / "full" / "y.wav").exists()
    assert not _partials(dst)
    assert (dst / "sub").read_text().startswith("a file")  # nothing lost

    monkeypatch.undo()
    (dst / "sub").unlink()
    retry = _by_rel(_mark(src, dst, jobs=1))  # failures are retried, done files skipped
    assert retry["ok.wav"].status == "up-to-date"
    assert {retry[r].status for r in ("sub/blocked.wav", "deny/x.wav", "full/y.wav")} == {"marked"}


def test_disk_full_on_a_real_tmpfs(tmp_path, base):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        src = tmp_path / "src"
        for i in range(3):
            _write(src / f"t{i}.wav", base, seed=30 + i)  # 1 MB each; marking needs 2 MB at peak (audio, then tags): the second does not fit
        report = _mark(src, mnt / "out", manifest=tmp_path / "m.sqlite")
        got = _by_rel(report)
        assert got["t0.wav"].status == "marked", got["t0.wav"].reason
        full = [f for f in report.files if f.status == "failed"]
        assert full and all("space" in f.reason for f in full), [f.reason for f in full]
        assert not _partials(mnt)
        assert nowm.detect_file(mnt / "out" / "t0.wav").marked
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_dst_inside_src_and_src_inside_dst(tmp_path, base):
    src = tmp_path / "src"
    _write(src / "a.wav", base, seed=14)
    out = src / "marked"
    first = _mark(src, out)
    assert [f.rel for f in first.files] == ["a.wav"]
    second = _mark(src, out)  # the outputs inside SRC_DIR are not taken for sources
    assert [(f.rel, f.status) for f in second.files] == [("a.wav", "up-to-date")]
    with pytest.raises(nowm.ParameterError, match="contains SRC_DIR"):
        _mark(src, tmp_path)
    with pytest.raises(nowm.ParameterError, match="--in-place"):
        _mark(src, src)


def test_owners_csv_with_a_bad_row(tmp_path, base):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ("a/x.wav", "a/special.wav", "b.wav", "c.wav", "d.wav"):
        _write(src / name, base, seed=len(name) + 40)
    owners = tmp_path / "owners.csv"
    owners.write_text("path,owner\n# comment\na/*,42\na/special.wav,notanumber\nb.wav,0x10\nc.wav,1,2\n")
    report = _mark(src, dst, owners=owners, owner=5)
    got = _by_rel(report)
    assert (got["a/x.wav"].status, got["a/x.wav"].owner) == ("marked", 42)
    assert (got["b.wav"].status, got["b.wav"].owner) == ("marked", 16)
    assert (got["d.wav"].status, got["d.wav"].owner) == ("marked", 5)
    assert got["a/special.wav"].status == "failed" and "line 4" in got["a/special.wav"].reason
    assert got["c.wav"].status == "failed" and "line 6" in got["c.wav"].reason
    assert any("line 4" in w for w in report.warnings)
    rows = _rows(dst / batch.MANIFEST_NAME)
    assert rows["a/x.wav"]["owner"] == 42 and rows["b.wav"]["owner"] == 16
    assert not (dst / "a" / "special.wav").exists()


def test_cli_dry_run_quiet_and_exit_status(tmp_path, base, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write(src / "a.wav", base, seed=15)
    assert main(["batch", str(src), "--out", str(dst), "--dry-run"]) == 0
    assert "would-mark: a.wav" in capsys.readouterr().out
    assert not dst.exists()  # a dry run writes nothing, not even the manifest
    assert main(["batch", str(src), "--out", str(dst), "--strength", "3", "-q"]) == 0
    assert capsys.readouterr().out == ""
    (src / "bad.flac").write_bytes(b"fLaC" + b"\0" * 50)
    assert main(["batch", str(src), "--out", str(dst), "--strength", "3"]) == 3
    out = capsys.readouterr().out
    assert "1 up-to-date" in out and "failed: bad.flac" in out
    assert main(["batch", str(src)]) == 2  # neither --out nor --in-place


# ------------------------------------------------------------------ crash safety (SIGKILL)

def _spawn(args):
    env = dict(os.environ, PYTHONPATH=str(Path(nowm.__file__).resolve().parents[1]))
    return subprocess.Popen([sys.executable, "-m", "nowm", "batch", *args, "--strength", str(STRENGTH), "-q"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _kill_half_way(proc, progress, total):
    """SIGKILL the batch once some but not all files are done."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and progress() < max(2, total // 4):
        time.sleep(0.01)
    alive = proc.poll() is None
    done = progress()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)  # workers die with their parent (PR_SET_PDEATHSIG); sweep the group anyway
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert alive and 0 < done < total, f"the batch was not killed half-way ({done}/{total})"


def _catalog(root, base, n):
    names = [f"d{i % 3}/t{i:02d}.wav" for i in range(n)]
    for i, name in enumerate(names):
        _write(root / name, base, seed=100 + i)
    return names


def test_sigkill_mid_batch_then_resume(tmp_path, base):
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = _catalog(src, base, 16)
    proc = _spawn([str(src), "--out", str(dst), "--jobs", "2"])
    _kill_half_way(proc, lambda: sum((dst / n).exists() for n in names), len(names))

    for n in names:  # whatever carries a final name is complete and marked
        if (dst / n).exists():
            det = nowm.detect_file(dst / n)
            assert det.marked and det.policy == "no-ai-training"

    report = _mark(src, dst, jobs=2)
    assert report.exit_status == 0
    assert {f.status for f in report.files} <= {"marked", "up-to-date"}
    rows = _rows(dst / batch.MANIFEST_NAME)
    assert sorted(rows) == sorted(names)
    for n in names:
        assert rows[n]["status"] == "marked" and rows[n]["out_sha256"] == _sha(dst / n)
        assert rows[n]["src_sha256"] == _sha(src / n)
        assert _marked_once(src / n, dst / n, tmp_path)
    assert not _partials(dst)
    on_disk = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.wav"))
    assert on_disk == sorted(names)


def test_sigkill_in_place_then_resume(tmp_path, base):
    src = tmp_path / "src"
    names = _catalog(src, base, 16)
    keep = {n: (src / n).read_bytes() for n in names}
    ref = tmp_path / "originals"
    for n, data in keep.items():
        (ref / n).parent.mkdir(parents=True, exist_ok=True)
        (ref / n).write_bytes(data)

    def changed():
        return sum((src / n).stat().st_size and (src / n).read_bytes() != keep[n] for n in names)

    proc = _spawn([str(src), "--in-place", "--jobs", "2"])
    _kill_half_way(proc, changed, len(names))
    for n in names:  # every file is either the original or the complete marked file
        assert (src / n).read_bytes() == keep[n] or _marked_once(ref / n, src / n, tmp_path)

    report = _mark(src, in_place=True, jobs=2)
    assert report.exit_status == 0
    assert {f.status for f in report.files} <= {"marked", "up-to-date"}
    rows = _rows(src / batch.MANIFEST_NAME)
    for n in names:
        assert _marked_once(ref / n, src / n, tmp_path)  # exactly once, never twice
        assert (src / batch.BACKUP_DIR / n).read_bytes() == keep[n]
        assert rows[n]["status"] == "marked" and rows[n]["out_sha256"] == _sha(src / n)
    assert not _partials(src)


def test_tags_written_by_default_and_no_tags(tmp_path, base):
    src = tmp_path / "src"
    _write(src / "a.flac", base, "FLAC", "PCM_16", seed=50)
    _mark(src, tmp_path / "with")
    _mark(src, tmp_path / "without", tags=False)
    assert nowm.read_tags(tmp_path / "with" / "a.flac").policy == "no-ai-training"
    assert nowm.read_tags(tmp_path / "without" / "a.flac").policy is None
    assert nowm.detect_file(tmp_path / "without" / "a.flac").marked


def test_a_worker_that_dies_fails_its_file_only(tmp_path, base, monkeypatch):
    """A worker killed while marking (out of memory, a codec crash) breaks the pool:
    the batch starts a new one, retries the files in flight once, and fails the culprit."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ("a.wav", "b.wav", "crash.wav", "d.wav"):
        _write(src / name, base, seed=len(name) + 60)
    real = batch._mark_one

    def mark_one(t, partial):
        if t["rel"] == "crash.wav":
            os._exit(9)  # forked workers inherit this patch
        return real(t, partial)

    monkeypatch.setattr(batch, "_mark_one", mark_one)
    report = _mark(src, dst, jobs=2)
    got = _by_rel(report)
    assert got["crash.wav"].status == "failed" and "died" in got["crash.wav"].reason, got
    assert all(got[n].status == "marked" for n in ("a.wav", "b.wav", "d.wav"))
    assert _rows(dst / batch.MANIFEST_NAME)["crash.wav"]["status"] == "failed"


def test_in_place_replaced_but_not_recorded(tmp_path, base):
    """Killed between the rename and the manifest's commit: the re-run recognises its
    own output instead of marking it again or calling it `already-marked`."""
    src = tmp_path / "src"
    _write(src / "x.wav", base, seed=70)
    original = tmp_path / "x.orig.wav"
    original.write_bytes((src / "x.wav").read_bytes())
    st = original.stat()
    _mark(src, in_place=True)
    manifest = src / batch.MANIFEST_NAME
    with sqlite3.connect(manifest) as db:  # the row as the killed batch left it
        db.execute("UPDATE files SET status='running', src_size=?, src_mtime_ns=?, out_sha256=NULL "
                   "WHERE rel='x.wav'", (st.st_size, st.st_mtime_ns + 1))
    got = _by_rel(_mark(src, in_place=True))["x.wav"]
    assert got.status == "marked" and "interrupted" in got.reason
    assert _marked_once(original, src / "x.wav", tmp_path)
    row = _rows(manifest)["x.wav"]
    assert row["status"] == "marked" and row["out_sha256"] == _sha(src / "x.wav")
    assert row["src_sha256"] == _sha(original)


def test_engine_ray_without_ray_is_a_clear_error(tmp_path, base, monkeypatch, capsys):
    _write(tmp_path / "src" / "a.wav", base, seed=1)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if nowm[ray] were not installed
    code = main(["batch", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--engine", "ray"])
    assert code == 2 and "pip install 'nowm[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.wav").exists()
    rows = _rows(tmp_path / "out" / batch.MANIFEST_NAME)
    assert all(r["status"] != "running" for r in rows.values())  # nothing was started
