"""Detection: sync search over offset, pitch and tempo, calibrated statistics, payload.

The clip is taken to the 16 kHz mono detection domain, turned into log band
energies on a quarter-semitone grid, whitened, then for every tempo factor of
the search grid folded modulo the pattern period. A circular correlation (by
FFT) with each policy's sync pattern over every offset and band shift gives a
normalised statistic ``z`` that is close to N(0, 1) when the clip carries no mark
of this key: conditionally on the audio, it is a sum of independent +-1 chips
weighted by the audio's own tile values, divided by its exact standard deviation.

``false_alarm`` is the probability that unmarked audio gives a maximum ``z`` at
least this large over the whole search: ``1 - (1 - Q(z)) ** effective_tests``,
with ``effective_tests`` fitted on unmarked real music by
``benchmarks/calibrate.py`` (the search's hypotheses overlap, so this is fewer
than their count). The nominal part of the search (tempo 1, no band shift: a
clip that was transcoded, resampled or filtered but not stretched) has far fewer
hypotheses and its own fitted count; both maxima are tested, each at half the
budget (:func:`two_stage_false_alarm`), so an unstretched clip is judged against
a lower bar than the full search needs. The nominal search runs on
``scheme.sub_grids`` frame grids half a hop apart, so a clip cut between the
embedder's frames loses little (:func:`_nominal_sub_grids`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np

from . import _kernels, _stft, audio, ecc, payload
from ._scheme import SCHEME, Scheme, band_weights, patterns
from .errors import ParameterError
from .keys import Key, resolve_key
from .policy import policy_from_code

__all__ = ["detect", "Detection", "DEFAULT_THRESHOLD", "MIN_DETECT_SECONDS", "false_alarm"]

#: Default decision threshold: false-alarm probability per file or clip.
DEFAULT_THRESHOLD = 1e-6
#: Shortest clip the detector looks at.
MIN_DETECT_SECONDS = 1.5
#: Owner ids are decoded when the sync is at least this clear (the CRC-16 then
#: guards against a wrong id; a lenient sync threshold lets long quiet audio count).
_OWNER_SYNC_FA = 1e-3
_FLOOR = 1e-9  # relative floor of band energies (digital silence)


@dataclass
class Detection:
    """What :func:`detect` found.

    Attributes
    ----------
    marked : bool
        ``false_alarm <= threshold``.
    false_alarm : float
        Probability that audio without this key's mark scores at least as high.
    policy : str or None
        Policy name when marked.
    owner : int or None
        Rightsholder id when marked and its checksum holds; None otherwise.
    score : float
        The maximum normalised statistic ``z`` over the whole search.
    offset : float or None
        Seconds from the clip start to the first pattern period start found.
    tempo : float or None
        Duration ratio of the clip to the marked original found by the search.
    pitch : float or None
        Frequency ratio found by the search.
    duration : float
        Seconds of audio examined.
    key : str
        Fingerprint of the key searched (``public`` for the built-in key).
    reason : str or None
        Why no verdict could be reached (e.g. ``too-short``), else None.
    nominal_score : float or None
        The maximum ``z`` of the nominal search alone (tempo 1, no pitch shift).
    """

    marked: bool
    false_alarm: float
    policy: str | None
    owner: int | None
    score: float
    offset: float | None
    tempo: float | None
    pitch: float | None
    duration: float
    key: str
    reason: str | None = None
    candidates: dict = field(default_factory=dict, repr=False)
    _soft: np.ndarray | None = field(default=None, repr=False)
    _policy_code: int | None = field(default=None, repr=False)
    tags: object = None  # nowm.metadata.TagReport from detect_file, separate from the verdict
    #: maximum ``z`` of the nominal search alone (tempo 1, no band shift)
    nominal_score: float | None = field(default=None, repr=False)
    #: frame grid (samples from the clip start) of the nominal hypothesis that
    #: carried the verdict; None when the full search did
    _lag: int | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "marked", "false_alarm", "policy", "owner", "score", "offset", "tempo",
            "pitch", "duration", "key", "reason")}
        d["tags"] = self.tags.to_dict() if self.tags is not None else None
        return d


_erfc = np.vectorize(math.erfc, otypes=[np.float64])  # scipy.special costs 0.2 s to import


def false_alarm(z, duration: float, scheme: Scheme = SCHEME, *, nominal: bool = False):
    """False-alarm probability of a maximum statistic ``z`` over the whole search
    of a clip of ``duration`` seconds (over the nominal search alone if ``nominal``)."""
    q = 0.5 * _erfc(np.asarray(z, np.float64) / math.sqrt(2.0))
    n_eff = scheme.n_effective(duration, nominal)
    return -np.expm1(n_eff * np.log1p(-np.minimum(q, 1 - 1e-16)))


def two_stage_false_alarm(z_full, z_nominal, duration: float, scheme: Scheme = SCHEME):
    """False-alarm probability of a clip searched in two stages, and the stage that won.

    The nominal search (tempo 1, no band shift) is a small part of the full one, so
    its maximum needs a lower ``z`` to reach the same probability. Both are tested,
    each at half the budget: ``2 * min(p_full, p_nominal)``, a union bound (valid
    whatever the dependence between the two, conservative by at most a factor 2).
    Returns ``(false_alarm, nominal_won)``.
    """
    p_full = float(false_alarm(z_full, duration, scheme))
    if not scheme.nominal_tests or z_nominal is None:
        return p_full, False
    p_nom = float(false_alarm(z_nominal, duration, scheme, nominal=True))
    return min(1.0, 2.0 * min(p_full, p_nom)), p_nom < p_full


class _Tables:
    """Per (key, scheme) FFTs of the patterns, and detector band weights."""

    _cache: dict = {}

    @classmethod
    def get(cls, key: Key, scheme: Scheme):
        ck = (key.secret, scheme)
        if ck not in cls._cache:
            if len(cls._cache) > 8:
                cls._cache.clear()
            pat = patterns(key, scheme)
            T, tile = scheme.period_frames, scheme.tile_frames
            imp = np.zeros((pat.sync.shape[0], T, scheme.n_bands))
            imp[:, ::tile, :] = pat.sync
            mask = np.zeros((T, scheme.n_bands))
            mask[::tile, :] = pat.is_sync
            sync_hat = np.fft.rfft(imp, axis=1)  # (policies, f, bands)
            mask_hat = np.fft.rfft(mask, axis=0)  # (f, bands)
            cols = (scheme.steps * np.arange(scheme.n_bands))[None, :] + np.arange(scheme.n_shifts)[:, None]
            cls._cache[ck] = (pat, sync_hat, mask_hat, cols)
        return cls._cache[ck]


def features(x16: np.ndarray, scheme: Scheme = SCHEME) -> np.ndarray:
    """Whitened log band energies ``(frames, n_det_bands)`` of a 16 kHz mono clip."""
    n_fft, hop = scheme.n_fft, scheme.hop
    t1 = (len(x16) - 1) // hop + 1
    spec = _stft.rfft(_stft.windowed_frames(x16, 0, 0, t1, n_fft, hop, _stft.hann(n_fft)))
    starts, stops, weights = band_weights_cached(scheme)
    logs = np.empty((t1, len(starts)))
    _kernels.band_energy(spec, starts, stops, weights, _FLOOR * n_fft / 32, logs)
    out = np.empty_like(logs)
    _kernels.whiten(logs, scheme.tile_frames, scheme.steps, scheme.whiten_ridge,
                    scheme.feature_clip, scheme.norm_frames, out)
    return out


_BANDS: dict = {}


def band_weights_cached(scheme: Scheme):
    if scheme not in _BANDS:
        _BANDS[scheme] = band_weights(scheme.det_band_centres(), scheme.n_fft, scheme.sr,
                                      scheme.bands_per_octave)
    return _BANDS[scheme]


def _search(feat, key, scheme, scales=None, lag=0):
    """Best hypothesis over tempo, policy, shift and offset; returns a dict.

    ``scales`` restricts the tempo factors searched (default: ``scheme.time_scales``).
    ``best["nominal"]`` is the best hypothesis at tempo 1 and no band shift. ``lag``
    (samples from the clip start to the features' first frame) is recorded in both.
    """
    pat, sync_hat, mask_hat, cols = _Tables.get(key, scheme)
    T, tile = scheme.period_frames, scheme.tile_frames
    fold = np.empty((T, feat.shape[1]))
    counts = np.empty(T)
    boxes = np.empty_like(fold)
    best = nominal = None
    for scale in scheme.time_scales if scales is None else scales:
        _kernels.rescale_fold(feat, scale, T, fold, counts)
        total = counts.sum()
        if total <= 0:
            continue
        fold -= counts[:, None] * (fold.sum(axis=0) / total)[None, :]
        _kernels.tile_sums(fold, tile, boxes)
        box_hat = np.fft.rfft(boxes, axis=0)  # (f, J)
        box2_hat = np.fft.rfft(boxes * boxes, axis=0)
        g = box_hat[:, cols]  # (f, shifts, bands)
        g2 = box2_hat[:, cols]
        stat = np.fft.irfft(np.einsum("pfb,fsb->psf", sync_hat, np.conj(g)), n=T, axis=-1)
        var = np.fft.irfft(np.einsum("fb,fsb->sf", mask_hat, np.conj(g2)), n=T, axis=-1)
        z = stat / np.sqrt(np.maximum(var, 1e-12))[None]
        p, s, o = np.unravel_index(int(np.argmax(z)), z.shape)
        zmax = float(z[p, s, o])
        if best is None or zmax > best["z"]:
            best = dict(z=zmax, policy=int(p), shift=int(s), offset=int(o), scale=scale,
                        boxes=boxes.copy(), per_policy=z.max(axis=(1, 2)), lag=lag)
        if scale == 1.0 and nominal is None:  # the nominal hypotheses: no shift either
            zn = z[:, scheme.max_shift, :]
            p, o = np.unravel_index(int(np.argmax(zn)), zn.shape)
            nominal = dict(z=float(zn[p, o]), policy=int(p), shift=scheme.max_shift,
                           offset=int(o), scale=scale,
                           boxes=best["boxes"] if best["scale"] == scale else boxes.copy(),
                           per_policy=zn.max(axis=1), lag=lag)
    best["nominal"] = nominal
    return best


def grid_lags(scheme: Scheme = SCHEME) -> tuple:
    """Start (samples) of every frame grid the nominal search runs on: ``hop / sub_grids`` apart."""
    return tuple(k * scheme.hop // scheme.sub_grids for k in range(scheme.sub_grids))


def _nominal_sub_grids(x16, nominal, key, scheme, lags):
    """The nominal search on more frame grids; the best nominal hypothesis.

    A clip cut at an arbitrary sample sees the embedder's STFT frames up to half a
    hop away, which weakens the statistic (by a fifth at half a hop); the nominal
    search is therefore repeated on the frame grids starting ``lags`` samples
    into the clip. The winner records its grid's start in ``lag``.
    """
    if nominal is not None and nominal["z"] < scheme.sub_grid_gate:
        return nominal  # nothing here that another grid could lift over the threshold
    for lag in lags:
        if (len(x16) - lag) / scheme.sr < MIN_DETECT_SECONDS:
            break
        alt = _search(features(x16[lag:], scheme), key, scheme, scales=(1.0,), lag=lag)["nominal"]
        if alt is not None and (nominal is None or alt["z"] > nominal["z"]):
            nominal = alt
    return nominal


def _band_weights(best, pat, cols, scheme):
    """Weight of every embedding band's data tiles in the soft bits (maximum-ratio combining).

    The mark's amplitude in band ``b`` is estimated from the sync tiles, whose chips
    are known once the sync is found: their correlation with the aligned tile sums,
    pooled over ``+-soft_bands`` neighbouring bands. Each band's data tiles are then
    weighted by that amplitude over the band's tile variance, so bands where a codec
    or the music left little of the mark add little noise. The weights come from
    the sync tiles only, whose chips are independent of the data chips, so the soft
    bits stay unbiased. ``cols`` are the detector columns of the embedding bands at
    the alignment's band shift.
    """
    h = scheme.soft_bands
    if h <= 0:
        return np.ones(scheme.n_bands)
    T, tile = scheme.period_frames, scheme.tile_frames
    tau = (tile * np.arange(scheme.period_tiles) - best["offset"]) % T
    v = best["boxes"][tau][:, cols]  # (period_tiles, n_bands), aligned with the pattern
    sync = pat.sync[best["policy"]]

    def pooled(x):  # sums over +-h bands
        c = np.concatenate([[0.0], np.cumsum(x)])
        i = np.arange(len(x))
        return c[np.minimum(i + h + 1, len(x))] - c[np.maximum(i - h, 0)]

    amp = pooled((sync * v).sum(axis=0)) / np.maximum(pooled(pat.is_sync.sum(axis=0)), 1.0)
    var = pooled((v * v).sum(axis=0)) / pooled(np.full(scheme.n_bands, float(len(v))))
    # a floor on the variance, so a band the clip left (nearly) silent cannot blow up
    w = np.maximum(amp, 0.0) / np.maximum(var, 0.1 * var.mean() + 1e-300)
    return w / w.max() if w.max() > 0 else np.ones(scheme.n_bands)


def _soft_bits(best, key, scheme):
    """Soft coded payload bits at the best alignment, scaled to unit noise."""
    pat, _, _, cols = _Tables.get(key, scheme)
    cols = cols[best["shift"]]
    boxes = best["boxes"].copy()
    boxes[:, cols] *= _band_weights(best, pat, cols, scheme)[None, :]
    soft = np.empty(pat.n_coded)
    _kernels.data_soft(boxes, best["offset"], best["shift"], scheme.steps, 0,
                       scheme.tile_frames, pat.data_pn, pat.data_bit, soft)
    # every data tile adds a term of variance boxes**2 (as for the sync statistic)
    sq = np.empty(pat.n_coded)
    _kernels.data_soft(boxes ** 2, best["offset"], best["shift"], scheme.steps, 0,
                       scheme.tile_frames, np.abs(pat.data_pn), pat.data_bit, sq)
    return soft / np.sqrt(max(float(sq.mean()), 1e-12))


def _decode_owner(soft, policy_code, scheme):
    """Owner id if the payload decodes with a valid checksum and the same policy."""
    return payload.unpack(ecc.decode(soft, scheme.payload_bits), policy_code)


def detect_16k(x16: np.ndarray, *, key=None, threshold: float = DEFAULT_THRESHOLD,
               scheme: Scheme = SCHEME, lags=None) -> Detection:
    """:func:`detect` on audio already in the detection domain (16 kHz mono float).

    ``lags`` are the frame grids searched (samples from the clip start; default
    :func:`grid_lags`): the full search runs on the first, the nominal search on
    all. A caller that already knows the grid of the mark (a later window of the
    same file, see :func:`nowm.files.detect_file`) passes that one alone; the
    false-alarm probability still counts every grid, so it stays conservative.
    """
    key = resolve_key(key)
    duration = len(x16) / scheme.sr
    kname = "public" if key.is_public else key.fingerprint
    if duration < MIN_DETECT_SECONDS:
        return Detection(False, 1.0, None, None, 0.0, None, None, None, duration, kname,
                         reason="too-short")
    if not np.any(x16):
        return Detection(False, 1.0, None, None, 0.0, None, None, None, duration, kname,
                         reason="silent")
    lags = grid_lags(scheme) if lags is None else tuple(int(v) for v in lags)
    feat = features(x16[lags[0]:], scheme)
    best = _search(feat, key, scheme, lag=lags[0])
    nominal = _nominal_sub_grids(x16, best["nominal"], key, scheme, lags[1:])
    fa, nominal_won = two_stage_false_alarm(best["z"], nominal and nominal["z"], duration, scheme)
    score = best["z"]
    if nominal_won:  # report (and decode) the hypothesis that carried the verdict
        best = nominal
    marked = fa <= threshold
    policy = owner = None
    if marked:
        policy = policy_from_code(best["policy"]).name
    soft = None
    if fa <= max(threshold, _OWNER_SYNC_FA):
        soft = _soft_bits(best, key, scheme)
        owner = _decode_owner(soft, best["policy"], scheme) if marked else None
    T = scheme.period_frames
    offset_frames = ((T - best["offset"]) % T) * best["scale"]
    shift = best["shift"] - scheme.max_shift
    where = dict(offset=(offset_frames * scheme.hop + best["lag"]) / scheme.sr,
                 tempo=best["scale"],
                 pitch=float(2.0 ** (shift / (scheme.bands_per_octave * scheme.steps))))
    if not marked:  # a location is only meaningful for a mark
        where = dict(offset=None, tempo=None, pitch=None)
    return Detection(
        marked, fa, policy, owner, score, **where,
        duration=duration, key=kname,
        candidates={policy_from_code(i).name: float(v) for i, v in enumerate(best["per_policy"])},
        _soft=soft, _policy_code=best["policy"],
        nominal_score=None if nominal is None else nominal["z"],
        _lag=best["lag"] if nominal_won else None,
    )


def next_lags(det: Detection, lags, n_samples: int, scheme: Scheme = SCHEME):
    """Frame grid to search in the next window of the same stream, for :func:`detect_16k`.

    Once a window finds the mark on one grid, later windows search that grid alone,
    moved to their own start (``n_samples`` later); before that, every grid (None).
    """
    if det.marked and det._lag is not None:
        lags = (det._lag,)
    return None if lags is None else ((lags[0] - n_samples) % scheme.hop,)


def combine(results, threshold: float = DEFAULT_THRESHOLD, scheme: Scheme = SCHEME) -> Detection:
    """One verdict from the detections of consecutive windows of one file.

    The strongest window decides; its false-alarm probability is corrected for
    the number of windows searched. Soft payload bits of every window whose sync
    agrees with the winning policy are summed before decoding, so a long file
    yields its owner id even when no single window could.
    """
    if not results:
        raise ValueError("no detections to combine")
    ranked = [d for d in results if d.reason is None]
    if not ranked:
        return results[0]
    best = max(ranked, key=lambda d: d.score)
    n = len(ranked)
    fa = float(-np.expm1(n * np.log1p(-min(best.false_alarm, 1 - 1e-16))))
    marked = fa <= threshold
    owner = None
    if marked:
        softs = [d._soft for d in ranked if d._soft is not None and d._policy_code == best._policy_code]
        if softs:
            owner = _decode_owner(np.sum(softs, axis=0), best._policy_code, scheme)
        if owner is None:
            owner = best.owner
    return Detection(marked, fa, best.policy if marked else None, owner, best.score,
                     best.offset, best.tempo, best.pitch, sum(d.duration for d in results),
                     best.key, None, best.candidates, None, best._policy_code)


def detect(y, sr, *, key=None, threshold: float = DEFAULT_THRESHOLD,
           scheme: Scheme = SCHEME) -> Detection:
    """Look for a nowm mark in ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n, channels)]
        Integer or float samples at any supported rate; any start, any crop.
    sr : int
        Sample rate of ``y``.
    key : None, nowm.Key or path
        ``None`` searches the public mark; a private key searches its own layer.
    threshold : float
        Largest false-alarm probability that counts as marked (default 1e-6).

    Returns
    -------
    Detection

    Examples
    --------
    >>> import numpy as np, nowm
    >>> y = np.random.default_rng(0).normal(0, 0.1, 10 * 16000)
    >>> nowm.detect(y, 16000).marked
    False
    """
    y = audio.valid_audio(y, sr)
    if not 0.0 < float(threshold) < 1.0:
        raise ParameterError(f"threshold={threshold!r} must be a probability in (0, 1)")
    x16 = audio.resample(audio.to_mono(audio.as_float2d(y)), int(sr), scheme.sr)
    return detect_16k(x16, key=key, threshold=float(threshold), scheme=scheme)
