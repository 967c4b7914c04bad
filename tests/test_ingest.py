"""Verdicts for dataset builders: nowm.check, filter_allowed, scan and their CLI."""

from __future__ import annotations

import io
import json
import os
import tarfile
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import nowm
from nowm import ingest, sources
from nowm.cli import main
from nowm.detection import Detection

from .conftest import synth_music

SR = 44100


def _embed(y, policy, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nowm.NowmWarning)
        return nowm.embed(y, SR, policy=policy, strength=kw.pop("strength", 2.0), **kw)


@pytest.fixture(scope="module")
def clips():
    """12 s of generated music: unmarked, and marked with three policies."""
    y = synth_music(12.0, SR, seed=5)
    return {"plain": y, **{p: _embed(y, p) for p in
                           ("no-ai-training", "no-genai-training", "consent-required")}}


def _flac(y):
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="FLAC")
    return buf.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, clips):
    d = tmp_path_factory.mktemp("data")
    (d / "sub").mkdir()
    sf.write(d / "marked.flac", clips["no-ai-training"], SR)
    sf.write(d / "plain.wav", clips["plain"], SR, subtype="PCM_16")
    sf.write(d / "sub" / "genai.flac", clips["no-genai-training"], SR)
    sf.write(d / "sub" / "short.wav", clips["plain"][:SR], SR)
    (d / "sub" / "junk.mp3").write_bytes(b"not audio at all " * 64)
    (d / "notes.txt").write_text("not scanned: no audio suffix")
    os.symlink("..", d / "sub" / "loop")  # a symbolic-link loop
    os.symlink("nowhere.wav", d / "dangling.wav")
    return d


# --- the policy-to-use table ---------------------------------------------------------


EXPECTED = {  # DESIGN section 2: policy -> uses it forbids (consent-required: all, without consent)
    "no-ai-training": {"ai-training", "genai-training"},
    "no-genai-training": {"genai-training"},
    "no-tdm": {"ai-training", "genai-training", "tdm", "inference"},
    "consent-required": {"ai-training", "genai-training", "tdm", "inference"},
    "ai-allowed": set(),
}


@pytest.mark.parametrize("policy", list(EXPECTED))
@pytest.mark.parametrize("use", list(ingest.USES))
def test_policy_use_table(policy, use):
    assert ingest.restricts(policy, use) == (use in EXPECTED[policy])
    assert ingest.restricts(policy, use, consent=True) == (
        use in EXPECTED[policy] and policy != "consent-required")


def test_bad_arguments():
    y = np.zeros(16000 * 4)
    with pytest.raises(nowm.ParameterError, match="use='training'"):
        nowm.check((y, 16000), use="training")
    with pytest.raises(nowm.ParameterError, match="threshold"):
        nowm.check((y, 16000), threshold=2.0)
    with pytest.raises(nowm.ParameterError, match="not supported"):
        nowm.check(12345)
    with pytest.raises(nowm.ParameterError, match="offset"):
        nowm.check((y, 16000), offset=-1)


# --- verdicts -------------------------------------------------------------------------


def test_marked_clip_is_reserved_with_where(clips):
    v = nowm.check((clips["no-ai-training"], SR))
    assert not v.allowed and v.status == "reserved-watermark"
    assert v.marked and v.policy == "no-ai-training" and v.false_alarm <= 1e-6
    assert v.offset is not None and 0.0 <= v.offset < 12.0
    assert "no-ai-training" in v.reason and "ai-training is not allowed" in v.reason
    d = json.loads(json.dumps(v.to_dict()))  # JSON-safe
    assert d["status"] == "reserved-watermark" and d["layers"][0]["key"] == "public"
    # the same mark does not forbid text and data mining
    v = nowm.check((clips["no-ai-training"], SR), use="tdm")
    assert v.allowed and v.status == "allowed" and v.policy == "no-ai-training"
    assert "watermark says no-ai-training" in v.reason


def test_unmarked_clip_is_allowed(clips):
    v = nowm.check((clips["plain"], SR))
    assert v.allowed and v.status == "allowed" and not v.marked and v.policy is None
    assert v.false_alarm > 1e-6 and v.error is None and abs(v.duration - 12.0) < 1e-6
    assert "no mark found" in v.reason


def test_genai_policy_allows_other_training(clips):
    y = clips["no-genai-training"]
    assert nowm.check((y, SR), use="ai-training").allowed
    v = nowm.check((y, SR), use="genai-training")
    assert not v.allowed and v.status == "reserved-watermark" and v.policy == "no-genai-training"


def test_consent_required_needs_consent(clips):
    y = clips["consent-required"]
    for use in ingest.USES:
        v = nowm.check((y, SR), use=use)
        assert not v.allowed and v.status == "reserved-watermark"
    v = nowm.check((y, SR), use="genai-training", consent=True)
    assert v.allowed and v.status == "allowed" and "consent" in v.reason


def test_every_source_kind_gives_the_same_verdict(tmp_path, clips):
    data = _flac(clips["no-ai-training"])
    path = tmp_path / "m.flac"
    path.write_bytes(data)
    decoded = sf.read(io.BytesIO(data))
    verdicts = [nowm.check(path), nowm.check(str(path)), nowm.check(data),
                nowm.check(io.BytesIO(data)), nowm.check(decoded)]
    dicts = [v.to_dict() for v in verdicts]
    for d in dicts:
        d.pop("path")
        d.pop("metadata")
        d.pop("reason")  # "metadata not read" differs for arrays
    assert all(d == dicts[0] for d in dicts)
    assert dicts[0]["status"] == "reserved-watermark"
    assert verdicts[0].source == str(path) and verdicts[2].source == "<bytes>"
    assert nowm.check(data, name="shard.tar::m.flac").source == "shard.tar::m.flac"


def test_segment_of_a_long_file_is_streamed(tmp_path, clips):
    """A 72 s file (more than is decoded at once) is read in windows; a segment is
    checked on its own."""
    y = np.concatenate([clips["plain"]] * 6)
    marked = np.concatenate([y[: 40 * SR], _embed(y[40 * SR:], "no-tdm")])
    path = tmp_path / "long.flac"
    sf.write(path, marked, SR)
    v = nowm.check(path)
    assert v.status == "reserved-watermark" and v.policy == "no-tdm"
    assert 30.0 < v.duration < 72.01  # it may stop early once the owner id is read
    assert v.offset > 30.0  # found in a later window, counted from the file start
    head = nowm.check(path, offset=2.0, duration=20.0)
    assert head.status == "allowed" and abs(head.duration - 20.0) < 1e-6
    tail = nowm.check(path, offset=50.0, duration=12.0)
    assert tail.status == "reserved-watermark" and tail.policy == "no-tdm"
    # the same segment of the decoded file as an array
    arr = nowm.check(sf.read(path), offset=50.0, duration=12.0)
    assert arr.false_alarm == pytest.approx(tail.false_alarm, rel=1e-9)
    past = nowm.check(path, offset=80.0)
    assert past.status == "unreadable" and "past the end" in past.error


def test_memory_stays_bounded_on_a_long_file(tmp_path):
    """Five minutes of 44.1 kHz stereo is checked in windows: the peak of numpy's
    allocations (about 40 MB, a 30 s window's detection) stays far below what one
    decode of the whole file takes (about 410 MB)."""
    import tracemalloc

    rng = np.random.default_rng(3)
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", SR, 2, subtype="PCM_16") as f:
        for _ in range(30):
            f.write(rng.normal(0, 0.1, (10 * SR, 2)))
    ingest.warm()  # one-time tables and kernels are not the item's memory
    tracemalloc.start()
    try:
        v = nowm.check(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert v.status == "allowed" and abs(v.duration - 300.0) < 1e-6
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"


def test_too_short_is_never_plainly_allowed(clips):
    for seconds in (1.0, 2.5):
        v = nowm.check((clips["plain"][: int(seconds * SR)], SR))
        assert v.status == "too-short" and not v.allowed and "too short" in v.reason
    v = nowm.check((clips["plain"][:SR], SR), allow_too_short=True)
    assert v.allowed and v.status == "too-short" and "unchecked" in v.reason
    assert nowm.check((clips["plain"][: 4 * SR], SR), min_seconds=5).status == "too-short"
    assert nowm.check((clips["plain"][: 4 * SR], SR)).status == "allowed"


def test_digital_silence_is_allowed_and_says_so():
    v = nowm.check((np.zeros(SR * 5), SR))
    assert v.allowed and v.status == "allowed" and "silence" in v.reason


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"this is not audio " * 100, "not a readable audio file"),
    (b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00isomiso2" + bytes(500), "MP4/M4A"),
])
def test_unreadable_bytes(data, match):
    v = nowm.check(data)
    assert v.status == "unreadable" and not v.allowed and match in v.error and v.reason == v.error
    assert v.to_dict()["error"] == v.error


def test_unreadable_files(tmp_path, clips):
    v = nowm.check(tmp_path / "missing.wav")
    assert v.status == "unreadable" and "no such file" in v.error
    flac = _flac(clips["plain"])
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) // 3])
    v = nowm.check(tmp_path / "cut.flac")
    assert v.status in ("unreadable", "allowed")  # libsndfile may stop early at a cut
    if v.status == "allowed":
        assert v.duration < 12.0
    y = clips["plain"].copy()
    y[100] = np.nan
    v = nowm.check((y, SR))
    assert v.status == "unreadable" and "NaN" in v.error
    with pytest.raises(nowm.ParameterError, match="seekable"):
        nowm.check(_Unseekable(flac))


class _Unseekable(io.RawIOBase):
    def __init__(self, data):
        self._b = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, n=-1):
        return self._b.read(n)

    def tell(self):
        raise io.UnsupportedOperation("no tell")


def _det(policy, marked=True):
    return Detection(marked, 1e-12 if marked else 0.5, policy if marked else None, None, 9.0,
                     0.0 if marked else None, 1.0, 1.0, 12.0, "public")


def test_ai_allowed_never_overrides_a_restriction_elsewhere():
    """The decision itself, on given layer results and metadata findings."""
    layers = {"public": _det("ai-allowed"), "a1b2c3": _det("no-ai-training")}
    v = ingest._decide("x", "ai-training", False, layers, None, 12.0, None, False, 3.0, False)
    assert v.status == "reserved-watermark" and "private layer a1b2c3" in v.reason
    assert v.policy == "no-ai-training"  # the deciding layer is reported
    md = SimpleNamespace(policy="no-genai-training", findings=[
        SimpleNamespace(vocabulary="XMP", field="plus:DataMining",
                        value="DMI-PROHIBITED-GENAIMLTRAINING", policy="no-genai-training")])
    layers = {"public": _det("ai-allowed")}
    v = ingest._decide("x", "genai-training", False, layers, md, 12.0, None, False, 3.0, False)
    assert v.status == "reserved-metadata" and "DMI-PROHIBITED-GENAIMLTRAINING" in v.reason
    v = ingest._decide("x", "ai-training", False, layers, md, 12.0, None, False, 3.0, False)
    assert v.status == "allowed" and "ai-allowed" in v.reason
    # a watermark reservation wins over metadata, and over an unreadable container
    v = ingest._decide("x", "genai-training", False, {"public": _det("no-tdm")}, md, 12.0,
                       "bad tags", False, 3.0, False)
    assert v.status == "reserved-watermark"
    # metadata reserves even when the audio cannot be decoded
    v = ingest._decide("x", "genai-training", False, {}, md, None, "cannot decode", True, 3.0,
                       False)
    assert v.status == "reserved-metadata" and v.error == "cannot decode"
    # a restriction found in too-short audio is still a restriction
    v = ingest._decide("x", "ai-training", False, {"public": _det("no-ai-training")}, None, 2.0,
                       None, False, 3.0, True)
    assert v.status == "reserved-watermark"


def test_metadata_reservation(tmp_path, clips):
    """Tags written by nowm.metadata reserve unmarked audio; a watermark's ai-allowed
    does not override them; they are read from tar members' bytes too."""
    from nowm.metadata import write_tags

    plain = tmp_path / "plain.flac"
    sf.write(plain, clips["plain"], SR)
    tagged = tmp_path / "tagged.flac"
    sf.write(tagged, clips["plain"], SR)
    write_tags(tagged, "no-genai-training")
    assert nowm.check(plain).reason.endswith("no mark found (best false-alarm probability "
                                             f"{nowm.check(plain).false_alarm:.2g})")
    assert "no reservation metadata" in nowm.check(plain).reason
    v = nowm.check(tagged, use="genai-training")
    assert v.status == "reserved-metadata" and not v.allowed and not v.marked
    assert "no-genai-training" in v.reason and v.metadata.policy == "no-genai-training"
    d = v.to_dict()
    assert d["metadata_policy"] == "no-genai-training"
    assert any(f["policy"] == "no-genai-training" for f in d["metadata"])
    assert nowm.check(tagged, use="ai-training").status == "allowed"
    assert nowm.check(tagged, use="genai-training", tags=False).status == "allowed"
    assert nowm.check(tagged.read_bytes(), use="genai-training").status == "reserved-metadata"
    wav = tmp_path / "opted-in.wav"
    sf.write(wav, _embed(clips["plain"], "ai-allowed"), SR)
    write_tags(wav, "no-ai-training")
    v = nowm.check(wav)
    assert v.marked and v.policy == "ai-allowed" and v.status == "reserved-metadata"


def test_private_layer(clips):
    key = nowm.generate_key()
    y = _embed(clips["plain"], "no-tdm", key=key)
    v = nowm.check((y, SR), key=key)
    assert set(v.layers) == {"public", key.fingerprint}
    assert all(d.marked and d.policy == "no-tdm" for d in v.layers.values())
    assert v.status == "reserved-watermark"
    assert [d["key"] for d in v.to_dict()["layers"]] == ["public", key.fingerprint]


def test_filter_allowed(clips):
    items = [("plain", clips["plain"]), ("marked", clips["no-ai-training"]),
             ("genai", clips["no-genai-training"]), ("short", clips["plain"][:SR])]
    rejected = []
    kept = list(nowm.filter_allowed(items, source=lambda it: (it[1], SR),
                                    on_reject=lambda it, v: rejected.append((it[0], v.status))))
    assert [k for k, _ in kept] == ["plain", "genai"]
    assert rejected == [("marked", "reserved-watermark"), ("short", "too-short")]
    kept = list(nowm.filter_allowed([(clips["no-genai-training"], SR)], use="genai-training"))
    assert kept == []


# --- items of a dataset ---------------------------------------------------------------


def _labels(records):
    return [os.path.basename(r["path"].split("::")[-1]) for r in records]


def test_scan_folder_walks_recursively_past_a_link_loop(folder):
    recs = list(nowm.scan([folder]))
    by_name = dict(zip(_labels(recs), recs))
    assert sorted(by_name) == ["dangling.wav", "genai.flac", "junk.mp3", "marked.flac",
                               "plain.wav", "short.wav"]
    assert by_name["marked.flac"]["status"] == "reserved-watermark"
    assert by_name["plain.wav"]["status"] == "allowed"
    assert by_name["genai.flac"]["status"] == "allowed"  # ai-training, not generative
    assert by_name["short.wav"]["status"] == "too-short"
    assert by_name["junk.mp3"]["status"] == "unreadable"
    assert by_name["dangling.wav"]["status"] == "unreadable"
    assert all(r["shard"] is None and r["manifest"] is None for r in recs)
    genai = list(nowm.scan(folder, use="genai-training"))
    assert dict(zip(_labels(genai), genai))["genai.flac"]["status"] == "reserved-watermark"


def test_scan_globs_and_missing_paths(folder, tmp_path):
    recs = list(nowm.scan([str(folder / "**" / "*.flac"), str(tmp_path / "none*.wav"),
                           tmp_path / "missing.wav"]))
    assert _labels(recs)[:2] == ["marked.flac", "genai.flac"]
    assert "no file matches" in recs[2]["error"] and "no such file" in recs[3]["error"]


def test_scan_in_processes_matches_one_process(folder):
    one = list(nowm.scan([folder]))
    two = list(nowm.scan([folder], jobs=2))
    assert one == two


def _tar(path, members, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(path, "w", format=fmt) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))


def test_tar_shard_streamed_member_by_member(tmp_path, clips):
    shard = tmp_path / "shard-000.tar"
    _tar(shard, [("k1.flac", _flac(clips["no-ai-training"])), ("k1.json", b'{"text": "x"}'),
                 ("k2.flac", _flac(clips["plain"])), ("k3.wav", b"RIFF garbage" * 10)])
    recs = list(nowm.scan([shard]))
    assert [r["member"] for r in recs] == ["k1.flac", "k2.flac", "k3.wav"]
    assert [r["status"] for r in recs] == ["reserved-watermark", "allowed", "unreadable"]
    assert all(r["shard"] == str(shard) for r in recs)
    assert recs[0]["path"] == f"{shard}::k1.flac"
    # from a pipe-like object that cannot seek
    with open(shard, "rb") as fh:
        items = list(sources.iter_tar("stdin", fileobj=_Unseekable(fh.read())))
    assert [i.extra["member"] for i in items] == ["k1.flac", "k2.flac", "k3.wav"]


def test_tar_bombs_and_truncation(tmp_path, clips):
    big = tmp_path / "big.tar"
    _tar(big, [("a.flac", _flac(clips["plain"])), ("b.flac", _flac(clips["plain"]))])
    recs = list(nowm.scan([big], max_member_bytes=1000))
    assert [r["status"] for r in recs] == ["unreadable", "unreadable"]
    assert "refused" in recs[0]["error"] and "cap" in recs[0]["error"]
    # a member that declares 10 GB but holds nothing: refused, then the shard ends
    ti = tarfile.TarInfo("huge.wav")
    ti.size = 10 * 2**30
    bomb = tmp_path / "bomb.tar"
    bomb.write_bytes(ti.tobuf(tarfile.GNU_FORMAT) + bytes(1024))
    recs = list(nowm.scan([bomb]))
    assert "refused" in recs[0]["error"] and "10737418240" in recs[0]["error"]
    assert recs[-1]["status"] == "unreadable" and recs[-1]["member"] is None
    # a GNU long-name header declaring 1 GB is refused before it is read
    ln = tarfile.TarInfo("././@LongLink")
    ln.type, ln.size = tarfile.GNUTYPE_LONGNAME, 2**30
    lbomb = tmp_path / "longname.tar"
    lbomb.write_bytes(_flac_tar_head(clips) + ln.tobuf(tarfile.GNU_FORMAT) + bytes(4096))
    recs = list(nowm.scan([lbomb]))
    assert recs[0]["status"] == "allowed"
    assert "extended header" in recs[-1]["error"] and "tar bomb" in recs[-1]["error"]
    # a shard cut in the middle of a member
    with tarfile.open(big) as tf:
        b = tf.getmember("b.flac")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(big.read_bytes()[: b.offset_data + b.size // 2])
    recs = list(nowm.scan([cut]))
    assert recs[0]["status"] == "allowed" and recs[-1]["status"] == "unreadable"
    assert "truncated" in recs[-1]["error"] and recs[-1]["member"] == "b.flac"
    (tmp_path / "not.tar").write_bytes(b"plain text, no tar" * 40)
    recs = list(nowm.scan([tmp_path / "not.tar"]))
    assert len(recs) == 1 and "not a readable tar shard" in recs[0]["error"]


def _flac_tar_head(clips):
    """One member's header and data, with no end-of-archive blocks."""
    data = _flac(clips["plain"])
    ti = tarfile.TarInfo("ok.flac")
    ti.size = len(data)
    return ti.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)


def _manifest(folder, tmp_path):
    rows = [
        json.dumps({"audio_filepath": "marked.flac", "duration": 12.0, "text": "a"}),
        json.dumps({"audio_filepath": str(folder / "plain.wav"), "text": "b"}),
        "{not json",
        json.dumps({"text": "no audio"}),
        json.dumps({"audio_filepath": "sub/genai.flac", "offset": 1.0, "duration": 8.0}),
        "",
        json.dumps(["a list"]),
        json.dumps({"audio_filepath": "missing.wav"}),
        json.dumps({"audio_filepath": "plain.wav", "offset": "soon"}),
    ]
    m = folder / "train.jsonl"
    m.write_text("\n".join(rows) + "\n")
    return m, rows


def test_manifest_rows(folder, tmp_path):
    m, _ = _manifest(folder, tmp_path)
    recs = list(nowm.scan([m]))
    assert [r["line"] for r in recs] == [1, 2, 3, 4, 5, 7, 8, 9]
    assert [r["status"] for r in recs] == ["reserved-watermark", "allowed", "unreadable",
                                           "unreadable", "allowed", "unreadable", "unreadable",
                                           "unreadable"]
    assert recs[0]["path"] == str(folder / "marked.flac")  # relative to the manifest
    assert abs(recs[4]["duration"] - 8.0) < 1e-6  # the row's segment
    assert "not valid JSON" in recs[2]["error"] and ":3:" in recs[2]["error"]
    assert "no audio_filepath" in recs[3]["error"]
    assert "JSON object" in recs[5]["error"] and "no such file" in recs[6]["error"]
    assert "numbers" in recs[7]["error"]
    assert all(r["manifest"] == str(m) for r in recs)


# --- command line ---------------------------------------------------------------------


def _cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_cli_scan_jsonl_and_summary(folder, tmp_path, capsys):
    code, out, err = _cli(["scan", folder], capsys)
    recs = [json.loads(line) for line in out.splitlines()]
    assert code == 3  # some items unreadable
    assert len(recs) == 6 and {r["status"] for r in recs} == set(ingest.STATUSES) - {"reserved-metadata"}
    assert ("6 items: 2 allowed, 1 reserved by watermark, 0 reserved by metadata, 1 too short "
            "to check, 2 unreadable") in err
    out_file = tmp_path / "scan.jsonl"
    code, out, err = _cli(["scan", folder / "marked.flac", "--jsonl", out_file, "--quiet"], capsys)
    assert code == 0 and out == "" and err == ""
    rec = json.loads(out_file.read_text())
    assert rec["status"] == "reserved-watermark" and rec["policy"] == "no-ai-training"
    code, _, err = _cli(["scan", folder / "marked.flac", "--jsonl", out_file], capsys)
    assert code == 3 and "exists" in err and "--force" in err
    code, _, _ = _cli(["scan", folder / "plain.wav", "--jsonl", out_file, "--force"], capsys)
    assert code == 0 and json.loads(out_file.read_text())["status"] == "allowed"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    code, _, err = _cli(["scan", folder, "--use", "nothing"], capsys)
    assert code == 2 and "invalid choice" in err
    code, _, err = _cli(["scan", folder, "--jobs", "-1"], capsys)
    assert code == 2


def test_cli_scan_parquet(folder, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (the scan extra) is not installed")
    out_file = tmp_path / "scan.parquet"
    code, out, _ = _cli(["scan", folder, "--parquet", out_file, "--jobs", "2"], capsys)
    assert code == 3 and out == ""
    table = pq.read_table(out_file)
    from nowm._arrow import table_to_records

    recs = table_to_records(table)
    assert recs == list(nowm.scan([folder]))


def test_cli_filter_manifest(folder, tmp_path, capsys):
    m, rows = _manifest(folder, tmp_path)
    out = tmp_path / "clean.jsonl"
    code, _, err = _cli(["filter-manifest", m, out], capsys)
    assert code == 3
    assert out.read_text().splitlines() == [rows[1], rows[4]]  # verbatim, in order
    rej = [json.loads(line) for line in (tmp_path / "clean.rejected.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rej] == [1, 3, 4, 7, 8, 9]
    assert rej[0]["status"] == "reserved-watermark" and rej[0]["policy"] == "no-ai-training"
    assert rej[0]["row"] == json.loads(rows[0]) and "ai-training" in rej[0]["reason"]
    assert rej[1]["row"] == "{not json" and "not valid JSON" in rej[1]["reason"]
    assert "2 rows written" in err
    # genai-training also rejects the genai row; outputs are not replaced without --force
    code, _, err = _cli(["filter-manifest", m, out, "--use", "genai-training"], capsys)
    assert code == 3 and "exists" in err
    code, _, _ = _cli(["filter-manifest", m, out, "--use", "genai-training", "--force",
                       "--rejected", tmp_path / "r.jsonl", "--jobs", "2"], capsys)
    assert out.read_text().splitlines() == [rows[1]]
    code, _, err = _cli(["filter-manifest", m, m], capsys)
    assert code == 2 and "must differ" in err
    code, _, err = _cli(["filter-manifest", tmp_path / "none.jsonl", out], capsys)
    assert code == 3 and "no such manifest" in err
