"""Every numba kernel of nowm, and nothing else.

Pure numeric loops: no validation, no I/O, no globals (a cached kernel would
freeze them). Kernels write into output buffers their caller allocated. All are
serial; nowm parallelises across files and clips, in processes.
"""

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True)


@njit(**_JIT)
def band_energy(spec, starts, stops, weights, rel_floor, out):
    """``out[t, j] = log(sum_k weights[j, k] * |spec[t, starts[j] + k]|**2 + floor)``,
    with ``floor = rel_floor`` times the mean power of ``spec`` (so digital silence
    gives a finite value)."""
    n_frames, n_bins = spec.shape
    n_bands = starts.shape[0]
    total = 0.0
    for t in range(n_frames):
        for k in range(n_bins):
            v = spec[t, k]
            total += v.real * v.real + v.imag * v.imag
    floor = rel_floor * max(total / max(n_frames * n_bins, 1), 1e-20)
    power = np.empty(n_bins)
    for t in range(n_frames):
        for k in range(n_bins):
            v = spec[t, k]
            power[k] = v.real * v.real + v.imag * v.imag
        for j in range(n_bands):
            acc = 0.0
            for k in range(starts[j], stops[j]):
                acc += weights[j, k - starts[j]] * power[k]
            out[t, j] = np.log(acc + floor)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def whiten(feat, hp_t, hp_f, ridge, clip, norm_half, out):
    """Whiten log band energies ``feat[t, j]`` into ``out``.

    Removes each frame's mean over bands (loudness), then subtracts the best linear
    prediction of every value from its four neighbours one tile away (frames
    ``t -+ hp_t`` and band positions ``j -+ hp_f``, replicated at the edges), with
    coefficients fitted to this clip by least squares (ridge ``ridge`` times the
    mean variance). The neighbours carry other, independent chips, so the music's
    own smooth structure cancels while the tile's chip passes; the fit adapts the
    prediction to the clip (sustained notes lean on time, dense spectra on bands).
    Finally each band is centred, scaled to unit local RMS (over ``+-norm_half``
    frames, plus a tenth of the band's RMS so near-silence is never amplified; the
    whole clip when ``norm_half`` is 0) and clipped to ``+-clip``, so loud
    transients and noisy passages weigh less than steady ones.
    """
    n_frames, n_bands = feat.shape
    tmp = np.empty((n_frames, n_bands))
    for t in range(n_frames):
        m = 0.0
        for j in range(n_bands):
            m += feat[t, j]
        m /= n_bands
        for j in range(n_bands):
            tmp[t, j] = feat[t, j] - m
    # sums for the least-squares fit of y = tmp[t, j] on x = its four neighbours
    # (scalar accumulators: the loop then compiles to straight-line code)
    k = 4
    s0 = s1 = s2 = s3 = sy = 0.0
    s00 = s01 = s02 = s03 = s11 = s12 = s13 = s22 = s23 = s33 = 0.0
    s0y = s1y = s2y = s3y = 0.0
    for t in range(n_frames):
        ta, tb = max(t - hp_t, 0), min(t + hp_t, n_frames - 1)
        for j in range(n_bands):
            x0 = tmp[ta, j]
            x1 = tmp[tb, j]
            x2 = tmp[t, max(j - hp_f, 0)]
            x3 = tmp[t, min(j + hp_f, n_bands - 1)]
            y = tmp[t, j]
            s0 += x0
            s1 += x1
            s2 += x2
            s3 += x3
            sy += y
            s00 += x0 * x0
            s01 += x0 * x1
            s02 += x0 * x2
            s03 += x0 * x3
            s11 += x1 * x1
            s12 += x1 * x2
            s13 += x1 * x3
            s22 += x2 * x2
            s23 += x2 * x3
            s33 += x3 * x3
            s0y += x0 * y
            s1y += x1 * y
            s2y += x2 * y
            s3y += x3 * y
    sx = np.array([s0, s1, s2, s3])
    sxy = np.array([s0y, s1y, s2y, s3y])
    sxx = np.array([[s00, s01, s02, s03], [s01, s11, s12, s13],
                    [s02, s12, s22, s23], [s03, s13, s23, s33]])
    n = max(n_frames * n_bands, 1)
    a = np.empty((k, k + 1))  # centred normal equations, augmented
    for p in range(k):
        for q in range(p, k):
            c = sxx[p, q] / n - sx[p] * sx[q] / (n * n)
            a[p, q] = c
            a[q, p] = c
        a[p, k] = sxy[p] / n - sx[p] * sy / (n * n)
    tr = 0.0
    for p in range(k):
        tr += a[p, p]
    for p in range(k):
        a[p, p] += ridge * tr / k + 1e-300
    for p in range(k):  # Gaussian elimination with partial pivoting
        piv = p
        for r in range(p + 1, k):
            if abs(a[r, p]) > abs(a[piv, p]):
                piv = r
        if piv != p:
            for c in range(k + 1):
                a[p, c], a[piv, c] = a[piv, c], a[p, c]
        for r in range(p + 1, k):
            f = a[r, p] / a[p, p]
            for c in range(p, k + 1):
                a[r, c] -= f * a[p, c]
    coef = np.zeros(k)
    for p in range(k - 1, -1, -1):
        acc = a[p, k]
        for c in range(p + 1, k):
            acc -= a[p, c] * coef[c]
        coef[p] = acc / a[p, p]
    for t in range(n_frames):
        ta, tb = max(t - hp_t, 0), min(t + hp_t, n_frames - 1)
        for j in range(n_bands):
            out[t, j] = tmp[t, j] - (coef[0] * tmp[ta, j] + coef[1] * tmp[tb, j]
                                     + coef[2] * tmp[t, max(j - hp_f, 0)]
                                     + coef[3] * tmp[t, min(j + hp_f, n_bands - 1)])
    for j in range(n_bands):
        m = 0.0
        for t in range(n_frames):
            m += out[t, j]
        m /= max(n_frames, 1)
        s = 0.0
        for t in range(n_frames):
            v = out[t, j] - m
            out[t, j] = v
            s += v * v
        glob = np.sqrt(s / max(n_frames, 1))
        if norm_half <= 0 or n_frames <= 2 * norm_half:
            inv = 1.0 / glob if glob > 1e-12 else 0.0
            for t in range(n_frames):
                tmp[t, j] = out[t, j] * inv
        else:
            acc = 0.0  # running sum of squares over [t - norm_half, t + norm_half]
            for t in range(min(n_frames, norm_half + 1)):
                acc += out[t, j] * out[t, j]
            for t in range(n_frames):
                lo, hi = t - norm_half, t + norm_half
                cnt = min(n_frames - 1, hi) - max(0, lo) + 1
                loc = np.sqrt(max(acc, 0.0) / cnt) + 0.1 * glob
                tmp[t, j] = out[t, j] / loc if loc > 1e-12 else 0.0
                if hi + 1 < n_frames:
                    acc += out[hi + 1, j] * out[hi + 1, j]
                if lo >= 0:
                    acc -= out[lo, j] * out[lo, j]
        for t in range(n_frames):
            v = tmp[t, j]
            if v > clip:
                v = clip
            elif v < -clip:
                v = -clip
            out[t, j] = v


@njit(**_JIT)
def rescale_fold(feat, scale, period, out, counts):
    """Fold a time-rescaled feature matrix modulo ``period`` frames.

    Pattern frame ``tau`` is read from clip frame ``tau * scale`` by linear
    interpolation, for every ``tau`` whose source lies inside the clip; the
    result is summed into ``out[tau % period]`` and counted in ``counts``.
    """
    n_frames, n_bands = feat.shape
    out[:, :] = 0.0
    counts[:] = 0.0
    n_out = int(np.floor((n_frames - 1) / scale)) + 1
    for tau in range(n_out):
        pos = tau * scale
        i = int(pos)
        frac = pos - i
        if i + 1 >= n_frames:
            frac = 0.0
            i = n_frames - 1
        r = tau % period
        counts[r] += 1.0
        for j in range(n_bands):
            out[r, j] += (1.0 - frac) * feat[i, j] + frac * feat[min(i + 1, n_frames - 1), j]


@njit(**_JIT)
def tile_sums(fold, tile, out):
    """Circular box sums: ``out[tau, j] = sum_{i < tile} fold[(tau + i) % period, j]``."""
    period, n_bands = fold.shape
    for j in range(n_bands):
        acc = 0.0
        for i in range(tile):
            acc += fold[i % period, j]
        for tau in range(period):
            out[tau, j] = acc
            acc += fold[(tau + tile) % period, j] - fold[tau, j]


@njit(**_JIT)
def data_soft(boxes, offset, shift, steps, max_shift, tile, data_pn, data_bit, out):
    """Accumulate soft coded bits from the tile sums of one alignment.

    ``boxes[tau, j]`` are tile sums of the folded features; pattern tile ``u``
    of band ``b`` lies at ``tau = (tile * u - offset) % period`` and detector band
    ``steps * b + shift + max_shift``.
    """
    period = boxes.shape[0]
    n_tiles, n_bands = data_pn.shape
    out[:] = 0.0
    for u in range(n_tiles):
        tau = (tile * u - offset) % period
        for b in range(n_bands):
            k = data_bit[u, b]
            if k >= 0:
                out[k] += data_pn[u, b] * boxes[tau, steps * b + shift + max_shift]


@njit(**_JIT)
def tile_power(spec, lead, tile_frames, starts, stops, weights, out, total):
    """Band powers and whole-spectrum power of each tile, summed over its frames.

    Frame ``t`` of ``spec`` (n_frames, n_bins) belongs to tile ``(t + lead) //
    tile_frames``; ``out[u, j] = sum_t sum_k weights[j, k] * |spec[t, starts[j] + k]|**2``
    over the frames of tile ``u``, and ``total[u]`` the same over every bin.
    """
    n_frames, n_bins = spec.shape
    n_bands = starts.shape[0]
    out[:] = 0.0
    total[:] = 0.0
    power = np.empty(n_bins)
    for t in range(n_frames):
        u = (t + lead) // tile_frames
        s = 0.0
        for k in range(n_bins):
            v = spec[t, k]
            p = v.real * v.real + v.imag * v.imag
            power[k] = p
            s += p
        total[u] += s
        for j in range(n_bands):
            acc = 0.0
            for k in range(starts[j], stops[j]):
                acc += weights[j, k - starts[j]] * power[k]
            out[u, j] += acc


@njit(**_JIT)
def modulate(spec, amp, lead, tile_frames, starts, stops, weights):
    """In place: ``spec[t, k] *= sum_b amp[u, b] * weights[b, k - starts[b]]``, with
    ``u = (t + lead) // tile_frames`` the tile of frame ``t`` (0 outside every band)."""
    n_frames, n_bins = spec.shape
    n_bands = starts.shape[0]
    field = np.empty(n_bins)
    for t in range(n_frames):
        u = (t + lead) // tile_frames
        for k in range(n_bins):
            field[k] = 0.0
        for b in range(n_bands):
            a = amp[u, b]
            for k in range(starts[b], stops[b]):
                field[k] += a * weights[b, k - starts[b]]
        for k in range(n_bins):
            spec[t, k] *= field[k]


@njit(**_JIT)
def frames_windowed(x, lo, hop, win, out):
    """``out[t, k] = x[lo + t * hop + k] * win[k]``, zero where the index is outside ``x``."""
    n_frames, n_fft = out.shape
    n = x.shape[0]
    for t in range(n_frames):
        b = lo + t * hop
        for k in range(n_fft):
            i = b + k
            out[t, k] = x[i] * win[k] if 0 <= i < n else 0.0


@njit(**_JIT)
def overlap_add(fr, lo, hop, win, out):
    """``out[lo + t * hop + k] += fr[t, k] * win[k]`` wherever the index is inside
    ``out``, which is zeroed first."""
    n_frames, n_fft = fr.shape
    n = out.shape[0]
    for i in range(n):
        out[i] = 0.0
    for t in range(n_frames):
        b = lo + t * hop
        for k in range(max(0, -b), min(n_fft, n - b)):
            out[b + k] += fr[t, k] * win[k]


@njit(**_JIT)
def masked_depth(tile_power, total_power, up, down, offset, lo, hi, snr_min, band_snr_min, tilt,
                 tilt_half, out):
    """Modulation depth per tile from a simple simultaneous-masking model.

    ``tile_power[u, b]``: band powers of tile ``u``; ``total_power[u]``: power of
    the whole tile (all frequencies). The masked threshold of band ``b`` is the
    sum over bands ``b2`` of ``tile_power[u, b2] * spread(b - b2)``, with the
    spreading factor ``up ** (b - b2)`` towards higher bands and ``down ** (b2 - b)``
    towards lower ones, lowered by ``offset`` (a power ratio). The depth is
    ``sqrt(threshold / power)`` clipped to ``[lo, hi]``, then scaled down in any
    tile where the watermark would exceed ``snr_min`` (power ratio) of the whole
    tile, or ``band_snr_min`` of the tile's power inside the watermark's bands
    (bass-heavy music would otherwise get a loud mark relative to the band it
    lives in).

    Finally, if ``tilt > 0``, the tile's mark is re-shared across its bands at
    the same power: every depth is multiplied by ``(p / G) ** -tilt`` (``G``: the
    geometric mean of the non-zero powers of the band and its ``tilt_half``
    neighbours on each side, in the same tile) and clipped to ``hi``, the tile
    rescaled to the power it had, and clipped to ``hi`` again. The detector reads
    each tile's log energy, to which a band contributes its depth whatever its
    power, while the mark's power (what the SNR counts) grows with the band's
    power: moving depth from loud bands to quieter neighbours raises the
    statistic at the same power.
    """
    n_tiles, n_bands = tile_power.shape
    rise = np.empty(n_bands)  # sum over b2 <= b of p[b2] * up ** (b - b2)
    fall = np.empty(n_bands)  # sum over b2 > b of p[b2] * down ** (b2 - b)
    logp = np.empty(n_bands)
    for u in range(n_tiles):
        wm = 0.0
        inband = 0.0
        acc = 0.0
        for b in range(n_bands):
            inband += tile_power[u, b]
            acc = acc * up + tile_power[u, b]
            rise[b] = acc
        acc = 0.0
        for b in range(n_bands - 1, -1, -1):
            fall[b] = acc * down
            acc = acc * down + tile_power[u, b]
        for b in range(n_bands):
            p = tile_power[u, b]
            if p <= 0.0:
                out[u, b] = 0.0
                continue
            d = np.sqrt((rise[b] + fall[b]) * offset / p)
            if d < lo:
                d = lo
            elif d > hi:
                d = hi
            out[u, b] = d
            wm += d * d * p
        cap = min(snr_min * total_power[u], band_snr_min * inband)
        if wm > cap and wm > 0.0:
            g = np.sqrt(cap / wm)
            for b in range(n_bands):
                out[u, b] *= g
            wm = cap
        if tilt <= 0.0 or wm <= 0.0:
            continue
        # running sums of the log band powers (in ``rise``) and of their count (in
        # ``fall``) over the bands before b, so each neighbourhood's mean costs O(1)
        acc = 0.0
        cnt = 0.0
        for b in range(n_bands):
            p = tile_power[u, b]
            lp = np.log(p) if p > 0.0 else 0.0
            logp[b] = lp
            rise[b] = acc
            fall[b] = cnt
            acc += lp
            cnt += 1.0 if p > 0.0 else 0.0
        w2 = 0.0
        for b in range(n_bands):
            p = tile_power[u, b]
            if p > 0.0:
                a0 = max(b - tilt_half, 0)
                a1 = min(b + tilt_half + 1, n_bands)
                s1 = acc if a1 == n_bands else rise[a1]
                c1 = cnt if a1 == n_bands else fall[a1]
                lg = (s1 - rise[a0]) / (c1 - fall[a0])
                d = out[u, b] * np.exp(-tilt * (logp[b] - lg))
                out[u, b] = min(d, hi)
                w2 += out[u, b] * out[u, b] * p
        if w2 > 0.0:
            g = np.sqrt(wm / w2)
            for b in range(n_bands):
                out[u, b] = min(out[u, b] * g, hi)


@njit(**_JIT)
def silence_ramp(y, min_run, ramp, out):
    """Gain that is 0 inside runs of >= ``min_run`` all-zero frames of ``y``.

    ``y`` has shape (n, channels). The gain rises linearly to 1 over ``ramp``
    samples away from each silent run, so the watermark fades out before digital
    silence and the silence stays bit-exact.
    """
    n, n_ch = y.shape
    big = n + ramp + 1
    # distance to the nearest sample inside a long silent run, forward then backward
    run = 0
    for i in range(n):
        silent = True
        for c in range(n_ch):
            if y[i, c] != 0:
                silent = False
                break
        if silent:
            run += 1
        else:
            run = 0
        out[i] = 0.0 if silent else 1.0
        if run == min_run:
            for k in range(i - min_run + 1, i + 1):
                out[k] = -1.0  # marks a long-run sample
        elif run > min_run:
            out[i] = -1.0
    dist = big
    for i in range(n):
        if out[i] < 0:
            dist = 0
        else:
            dist += 1
        out[i] = dist  # store forward distance (as float)
    dist = big
    for i in range(n - 1, -1, -1):
        if out[i] == 0:
            dist = 0
        else:
            dist += 1
        d = min(out[i], dist)
        out[i] = min(1.0, d / ramp) if ramp > 0 else (0.0 if d == 0 else 1.0)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def downmix(y, scale, min_run, out):
    """``out[i] = scale * mean(y[i, :])``: the mono downmix of raw samples.

    Returns ``(total, peak, silent)``: the sum of ``out``, finite exactly when every
    sample is (a free check for NaN and infinity in float input); with
    ``min_run > 0`` also the host's peak ``max |y| * |scale|`` and whether it holds
    a run of at least ``min_run`` all-zero frames (digital silence), so the
    embedder can skip the limiter and the silence fade when they cannot act
    (``min_run <= 0``: a plain downmix, about twice as fast; peak 0, not silent).
    Sums may be reassociated (vectorised); a NaN or infinity still makes
    ``total`` non-finite.
    """
    n, n_ch = y.shape
    f = scale / n_ch
    total = 0.0
    for i in range(n):
        acc = 0.0
        for c in range(n_ch):
            acc += y[i, c]
        v = acc * f
        out[i] = v
        total += v
    if min_run <= 0 or n == 0:
        return total, 0.0, False
    flat = y.ravel()  # a view when C-contiguous; separate passes vectorise, one fused loop does not
    hi = flat[0]
    lo = hi
    for i in range(flat.shape[0]):
        hi = max(hi, flat[i])
        lo = min(lo, flat[i])
    silent = False
    run = 0
    for i in range(n):  # early exit on the first non-zero sample of a frame
        zero = True
        for c in range(n_ch):
            if y[i, c] != 0:
                zero = False
                break
        if not zero:
            run = 0
            continue
        run += 1
        if run >= min_run:
            silent = True
            break
    peak = max(abs(float(hi)), abs(float(lo)))
    return total, peak * abs(scale), silent


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def mix_out(y, scale, w, lo, hi, q, out_scale, out, sums):
    """Write the marked samples ``y[lo:hi] * scale + w[lo:hi]`` into ``out``.

    ``y`` holds raw samples that ``scale`` turns into [-1, 1] units. With ``q > 0``
    (integer PCM read raw: ``y * scale * q`` is an integer) the result is requantised
    to ``q`` steps per unit (``q = 2**(bits - 1)``, clipped to the integer range) and
    stored as ``round(v * q) * out_scale``; the watermark is rounded once per frame,
    as ``round(y * scale * q + w * q) = y * scale * q + round(w * q)``. With
    ``q == 0`` (float samples) the result is stored as is. ``sums`` receives the host
    energy and the energy of the change actually written.
    """
    n_ch = y.shape[1]
    sig = 0.0
    err = 0.0
    if q > 0.0:
        k = scale * q
        for i in range(lo, hi):
            wq = np.rint(w[i] * q)
            for c in range(n_ch):
                a = y[i, c] * k
                r = min(max(a + wq, -q), q - 1.0)
                out[i - lo, c] = r * out_scale
                sig += a * a
                e = r - a
                err += e * e
        sig /= q * q
        err /= q * q
    else:
        for i in range(lo, hi):
            wi = w[i]
            for c in range(n_ch):
                orig = y[i, c] * scale
                out[i - lo, c] = orig + wi
                sig += orig * orig
                err += wi * wi
    sums[0] += sig
    sums[1] += err


@njit(**_JIT)
def limit_gain(y, scale, w, limit, release, out):
    """Watermark gain in [0, 1] so that ``|y * scale + g * w| <= limit`` on every channel.

    ``y`` (n, channels) is the host in raw units (times ``scale`` gives [-1, 1]
    units), ``w`` (n,) the watermark added to every channel. The gain is the
    sample-wise allowed fraction ``raw``, spread by a moving minimum over
    ``release`` samples either side, smoothed by a moving average over
    ``release // 2`` either side (truncated at the ends), and never above ``raw``,
    so the limit always holds and the gain moves gently. Only the neighbourhoods
    of limited samples are visited after the first pass.
    """
    n, n_ch = y.shape
    n_lim = 0
    for i in range(n):
        out[i] = 1.0
        wi = w[i]
        if wi == 0.0:
            continue
        g = 1.0
        for c in range(n_ch):
            h = y[i, c] * scale
            s = h + wi
            if s > limit or s < -limit:
                room = limit - abs(h) if s * wi > 0 else limit + abs(h)
                f = room / abs(wi)
                if f < 0.0:
                    f = 0.0
                if f < g:
                    g = f
        if g < 1.0:
            out[i] = g
            n_lim += 1
    if n_lim == 0:  # the usual case: nothing to limit, the gain is 1 everywhere
        return
    pos = np.empty(n_lim, np.int64)
    j = 0
    for i in range(n):
        if out[i] < 1.0:
            pos[j] = i
            j += 1
    half = max(1, release // 2)
    reach = release + half  # farthest from a limited sample that the gain changes
    a = 0
    while a < n_lim:  # clusters of limited samples, processed apart
        b = a
        while b + 1 < n_lim and pos[b + 1] - pos[b] <= 2 * reach + 2:
            b += 1
        r0 = max(0, pos[a] - reach)  # the gain may change on [r0, r1)
        r1 = min(n, pos[b] + reach + 1)
        e0 = max(0, r0 - half)  # the moving minimum is needed on [e0, e1)
        e1 = min(n, r1 + half)
        m = np.ones(e1 - e0)
        for k in range(a, b + 1):
            p = pos[k]
            g = out[p]
            for t in range(max(e0, p - release), min(e1, p + release + 1)):
                if g < m[t - e0]:
                    m[t - e0] = g
        acc = 0.0
        for t in range(max(0, r0 - half), min(n, r0 + half + 1)):
            acc += m[t - e0]
        for i in range(r0, r1):
            if i > r0:
                if i + half < n:
                    acc += m[i + half - e0]
                if i - half - 1 >= 0:
                    acc -= m[i - half - 1 - e0]
            v = acc / (min(n - 1, i + half) - max(0, i - half) + 1)
            if v < out[i]:
                out[i] = v
        a = b + 1


@njit(**_JIT)
def viterbi(soft, signs, mem, tail_biting, out):
    """Soft-decision Viterbi decoding of a convolutional code.

    Parameters
    ----------
    soft : float64 [shape=(n_steps, n_out)]
        Soft coded values, positive for bit 1.
    signs : float64 [shape=(n_states, 2, n_out)]
        +-1 coded outputs for each state and input bit.
    mem : int
        Encoder memory (K - 1).
    tail_biting : bool
        False: the code is terminated (the encoder starts in state 0 and the last
        ``mem`` steps are zero tail bits). True: every start state is equally
        likely and the path ends in the best state; the caller wraps the soft
        values around (a copy of the end before the start and of the start after
        the end) and keeps the middle of ``out``.
    out : int8 [shape=(n_steps,)]
        Decoded input bits.
    """
    n_steps, n_out = soft.shape
    n_states = 1 << mem
    mask = n_states - 1
    neg = -1e300
    if tail_biting:
        metric = np.zeros(n_states)
    else:
        metric = np.full(n_states, neg)
        metric[0] = 0.0
    new = np.empty(n_states)
    back = np.empty((n_steps, n_states), np.int32)
    for t in range(n_steps):
        new[:] = neg
        limit_one = tail_biting or t < n_steps - mem
        for s in range(n_states):
            m = metric[s]
            if m == neg:
                continue
            for bit in range(2 if limit_one else 1):
                branch = 0.0
                for g in range(n_out):
                    branch += signs[s, bit, g] * soft[t, g]
                ns = ((s << 1) | bit) & mask
                cand = m + branch
                if cand > new[ns]:
                    new[ns] = cand
                    back[t, ns] = s
        metric[:] = new
    state = 0
    if tail_biting:
        for s in range(n_states):
            if metric[s] > metric[state]:
                state = s
    for t in range(n_steps - 1, -1, -1):
        out[t] = state & 1
        state = back[t, state]
