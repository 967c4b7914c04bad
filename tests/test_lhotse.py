"""lhotse integration, with the real lhotse.

lhotse imports torch at module level, though what is used here (Recording,
MonoCut/MixedCut.load_audio through soundfile, CutSet.filter) runs on numpy. CI
installs lhotse without its dependency on torch (2 GB of CUDA wheels): when torch
is missing, this module puts a stand-in ``torch`` module in place for lhotse's
imports, and removes it afterwards. With torch installed, the real one is used.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

import numpy as np
import pytest
import soundfile as sf

import nowm

from .conftest import synth_music

SR = 16000
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread's imports


class _Anything(type):
    """A class whose attributes, calls and subscripts are more such classes."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(name, (), {})

    def __call__(cls, *args, **kwargs):
        return _Anything("value", (), {})

    def __getitem__(cls, key):
        return cls

    def __or__(cls, other):
        return cls

    __ror__ = __or__


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(name, (), {})


class _TorchStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = _StubModule(spec.name)
        mod.__path__ = []
        return mod

    def exec_module(self, module):
        pass


@pytest.fixture(scope="module")
def lhotse():
    stub = None
    if importlib.util.find_spec("lhotse") is None:
        pytest.skip("lhotse is not installed")
    if importlib.util.find_spec("torch") is None:
        stub = _TorchStub()
        sys.meta_path.insert(0, stub)
    try:
        import lhotse as lh

        yield lh
    finally:
        if stub is not None:
            sys.meta_path.remove(stub)
            for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.")]:
                if isinstance(sys.modules[name], _StubModule):
                    del sys.modules[name]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, lhotse):
    """A 30 s file whose second half is marked no-ai-training, and a 12 s unmarked file."""
    d = tmp_path_factory.mktemp("lhotse")
    y = synth_music(30.0, SR, seed=31, channels=1)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nowm.NowmWarning)
        tail = nowm.embed(y[15 * SR:], SR, policy="no-ai-training", strength=3.0)
    sf.write(d / "half.flac", np.concatenate([y[: 15 * SR], tail]), SR)
    sf.write(d / "plain.wav", synth_music(12.0, SR, seed=32, channels=1), SR)
    return [lhotse.Recording.from_file(d / "half.flac", recording_id="half"),
            lhotse.Recording.from_file(d / "plain.wav", recording_id="plain")]


def test_cutset_filter_checks_each_cut_segment(lhotse, recordings):
    from nowm.integrations.lhotse import allowed

    cuts = lhotse.CutSet.from_manifests(recordings=lhotse.RecordingSet.from_recordings(recordings))
    windows = cuts.cut_into_windows(duration=10.0).to_eager()
    ids = [c.id for c in windows]
    assert len(ids) == 5  # half: 0-10, 10-20, 20-30; plain: 0-10, 10-12
    rejected = []
    kept = windows.filter(allowed(on_reject=lambda c, v: rejected.append((c.start, v.status))))
    kept = kept.to_eager()
    starts = [(c.recording_id, c.start) for c in kept]
    # 0-10 s of "half" is unmarked; 20-30 s is marked; "plain" 10-12 s is too short
    assert ("half", 0.0) in starts and ("plain", 0.0) in starts
    assert ("half", 20.0) not in starts and (20.0, "reserved-watermark") in rejected
    assert (10.0, "too-short") in rejected
    # a cut into the marked half is checked on its own segment only
    seg = next(iter(cuts.subset(cut_ids=[cuts[0].id]))).truncate(offset=18.0, duration=11.0)
    v = allowed().verdict(seg)
    assert v.status == "reserved-watermark" and abs(v.duration - 11.0) < 1e-3
    head = next(iter(cuts)).truncate(offset=0.0, duration=12.0)
    assert allowed().verdict(head).status == "allowed"
    assert allowed(use="tdm").verdict(seg).allowed


def test_metadata_of_the_source_file_applies_to_its_cuts(lhotse, tmp_path):
    from nowm.integrations.lhotse import allowed
    from nowm.metadata import write_tags

    p = tmp_path / "tagged.wav"
    sf.write(p, synth_music(12.0, SR, seed=33, channels=1), SR)
    write_tags(p, "no-genai-training")
    cut = lhotse.Recording.from_file(p).to_cut().truncate(offset=2.0, duration=5.0)
    v = allowed(use="genai-training").verdict(cut)
    assert v.status == "reserved-metadata" and "no-genai-training" in v.reason
    assert allowed(use="ai-training")(cut)
    assert allowed(use="genai-training", tags=False)(cut)


def test_missing_audio_is_unreadable(lhotse, tmp_path):
    from nowm.integrations.lhotse import allowed

    p = tmp_path / "gone.wav"
    sf.write(p, synth_music(5.0, SR, seed=34, channels=1), SR)
    cut = lhotse.Recording.from_file(p).to_cut()
    p.unlink()
    v = allowed().verdict(cut)
    assert v.status == "unreadable" and not v.allowed and "cannot load" in v.error
