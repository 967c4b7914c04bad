"""Integrations with the real libraries: Hugging Face datasets, webdataset, datadiligence.

Each test skips with the reason when its library is missing; ``.ci/run`` installs
them (the ``test`` extra), so CI runs them.
"""

from __future__ import annotations

import io
import tarfile
import warnings

import numpy as np
import pytest
import soundfile as sf

import nowm

from .conftest import synth_music

SR = 44100


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Four files: marked no-ai-training, marked no-genai-training, unmarked, and junk."""
    d = tmp_path_factory.mktemp("hf")
    y = synth_music(12.0, SR, seed=21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nowm.NowmWarning)
        marks = {p: nowm.embed(y, SR, policy=p, strength=2.0)
                 for p in ("no-ai-training", "no-genai-training")}
    sf.write(d / "noai.flac", marks["no-ai-training"], SR)
    sf.write(d / "nogenai.wav", marks["no-genai-training"], SR, subtype="PCM_16")
    sf.write(d / "plain.flac", y, SR)
    (d / "junk.wav").write_bytes(b"junk " * 200)
    return d


NAMES = ["noai.flac", "nogenai.wav", "plain.flac", "junk.wav"]


# --- Hugging Face datasets --------------------------------------------------------------


def _hf_dataset(files, as_bytes):
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is not installed")
    from datasets import Audio, Dataset

    cells = [{"bytes": (files / n).read_bytes() if as_bytes else None,
              "path": n if as_bytes else str(files / n)} for n in NAMES]
    ds = Dataset.from_dict({"audio": cells, "name": NAMES})
    return ds.cast_column("audio", Audio(decode=False)), datasets


@pytest.mark.parametrize("as_bytes", [False, True], ids=["paths", "bytes"])
def test_hf_filter_undecoded_rows_in_processes(files, as_bytes):
    from nowm.integrations.hf import allowed

    ds, datasets = _hf_dataset(files, as_bytes)
    assert isinstance(ds.features["audio"], datasets.Audio) and not ds.features["audio"].decode
    kept = ds.filter(allowed("audio"), num_proc=2)
    assert kept["name"] == ["nogenai.wav", "plain.flac"]
    kept = ds.filter(allowed("audio", use="genai-training"), batched=True, batch_size=3)
    assert kept["name"] == ["plain.flac"]
    kept = ds.filter(allowed("audio", use="tdm"))
    assert kept["name"] == ["noai.flac", "nogenai.wav", "plain.flac"]


def test_hf_verdict_columns(files):
    from nowm.integrations.hf import verdicts

    ds, _ = _hf_dataset(files, as_bytes=True)
    out = ds.map(verdicts("audio"), num_proc=2)
    assert out["nowm_status"] == ["reserved-watermark", "allowed", "allowed", "unreadable"]
    assert out["nowm_policy"][:2] == ["no-ai-training", "no-genai-training"]
    assert out["nowm_allowed"] == [False, True, True, False]
    assert "not a readable audio file" in out["nowm_reason"][3]
    assert out.column_names == ["audio", "name", "nowm_allowed", "nowm_status", "nowm_reason",
                                "nowm_policy", "nowm_owner", "nowm_false_alarm"]


def test_hf_filter_decoded_rows(files):
    """Decoded {array, sampling_rate} rows, as datasets < 4 gives them and as a map()
    that decodes produces; here with the numpy format."""
    pytest.importorskip("datasets", reason="Hugging Face datasets is not installed")
    from datasets import Dataset

    from nowm.integrations.hf import allowed

    rows = []
    for n in NAMES[:3]:
        y, sr = sf.read(files / n, dtype="float32")
        rows.append({"array": y.mean(axis=1)[::2].copy(), "sampling_rate": sr // 2, "path": n})
    ds = Dataset.from_dict({"audio": rows, "name": NAMES[:3]}).with_format("numpy")
    kept = ds.filter(allowed("audio", use="genai-training"), num_proc=2)
    assert list(kept["name"]) == ["plain.flac"]


class _FakeSamples:
    def __init__(self, data, sr):
        self.data, self.sample_rate = data, sr


class _FakeDecoder:
    """The interface of torchcodec's AudioDecoder that nowm uses (torchcodec needs torch,
    which the CI does not install)."""

    def __init__(self, y, sr):
        self._y, self._sr = y, sr

    def get_all_samples(self):
        class _T(np.ndarray):
            def cpu(self):
                return self

            def numpy(self):
                return np.asarray(self)

        return _FakeSamples(np.ascontiguousarray(self._y.T).view(_T), self._sr)


def test_hf_cells_of_every_kind(files):
    from nowm.integrations.hf import allowed, check_value

    y, sr = sf.read(files / "noai.flac")
    f = allowed("audio")
    assert not f({"audio": _FakeDecoder(y, sr)})
    assert not f({"audio": str(files / "noai.flac")})
    assert f({"audio": [str(files / "plain.flac"), {"bytes": None, "path": str(files / "plain.flac")}]}) == [True, True]
    assert check_value(None).status == "unreadable"
    with pytest.raises(nowm.ParameterError, match="no column 'sound'"):
        allowed("sound")({"audio": "x.wav"})
    with pytest.raises(nowm.ParameterError, match="not supported"):
        f({"audio": 3.5})
    with pytest.raises(nowm.ParameterError, match="use="):
        allowed("audio", use="everything")


# --- webdataset ---------------------------------------------------------------------------


def _shard(path, files):
    with tarfile.open(path, "w") as tf:
        for i, n in enumerate(NAMES):
            for name, data in ((f"s{i:03d}.{n.split('.')[-1]}", (files / n).read_bytes()),
                               (f"s{i:03d}.txt", n.encode())):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return path


def test_webdataset_select_before_decode(files, tmp_path):
    wds = pytest.importorskip("webdataset", reason="webdataset is not installed")
    from nowm.integrations.wds import allowed

    shard = _shard(tmp_path / "shard-000000.tar", files)
    rejected = []
    ds = wds.WebDataset(str(shard), shardshuffle=False).select(
        allowed(on_reject=lambda s, vs: rejected.append((s["__key__"], vs[0].status))))
    kept = [s["txt"].decode() for s in ds]
    assert kept == ["nogenai.wav", "plain.flac"]
    assert rejected == [("s000", "reserved-watermark"), ("s003", "unreadable")]
    # as a pipeline stage, before decoding, for generative training
    pipe = wds.DataPipeline(wds.SimpleShardList([str(shard)]), wds.tarfile_to_samples(),
                            wds.select(allowed(use="genai-training")), wds.decode())
    assert [s["txt"] for s in pipe] == ["plain.flac"]


def test_webdataset_refuses_decoded_audio(files):
    from nowm.integrations.wds import allowed, audio_keys

    sample = {"__key__": "a", "flac": np.zeros(10), "json": b"{}"}
    assert audio_keys({"__key__": "a", "mic1.wav": b"", "flac": b"", "txt": b""}) == ["mic1.wav", "flac"]
    with pytest.raises(nowm.ParameterError, match="before .decode"):
        allowed()(sample)
    y, sr = sf.read(files / "noai.flac", dtype="float32")
    assert not allowed()({"__key__": "b", "flac": (y.T.copy(), sr)})  # torchaudio layout
    assert allowed()({"__key__": "c", "txt": b"no audio"})


# --- datadiligence ------------------------------------------------------------------------


def test_is_allowed_without_datadiligence(files):
    from nowm.integrations.datadiligence import filter_allowed, is_allowed

    assert not is_allowed(path=str(files / "noai.flac"))
    assert is_allowed(body=(files / "nogenai.wav").read_bytes())
    assert not is_allowed(body=(files / "nogenai.wav").read_bytes(), use="genai-training")
    paths = [str(files / n) for n in NAMES]
    assert filter_allowed(paths) == paths[1:3]
    with pytest.raises(nowm.ParameterError, match="exactly one"):
        is_allowed()


def test_datadiligence_evaluator(files, caplog):
    dd = pytest.importorskip("datadiligence", reason="datadiligence is not installed")
    from nowm.integrations.datadiligence import NowmEvaluator, NowmRule, register

    ev = register(use="genai-training")
    assert "nowm" in dd.list_evaluators() and dd.get_evaluator("nowm") is ev
    assert not dd.is_allowed(name="nowm", path=str(files / "nogenai.wav"))
    assert dd.is_allowed(name="nowm", path=str(files / "plain.flac"))
    assert not dd.is_allowed(name="nowm", body=(files / "noai.flac").read_bytes())
    paths = [str(files / n) for n in NAMES]
    assert ev.filter_allowed(paths=paths) == [paths[2]]
    # the rule also joins datadiligence's own file evaluator (C2PA for images)
    dd.get_evaluator("file").add_rule(NowmRule("ai-training"))
    try:
        assert not dd.is_allowed(path=str(files / "noai.flac"))
        assert dd.is_allowed(path=str(files / "nogenai.wav"))
    finally:
        dd.get_evaluator("file").rules.pop()
    assert isinstance(NowmEvaluator(), dd.Evaluator)
    dd.deregister_evaluator("nowm")
