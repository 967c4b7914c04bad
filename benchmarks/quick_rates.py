"""Quick policy/owner detection rates on 34 real-music excerpts (interim, until issue 3).

Usage: python benchmarks/quick_rates.py  (output: benchmarks/results/quick_rates.txt by hand)
"""
import sys, warnings, time; sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parent)); warnings.simplefilter('ignore')
import numpy as np, corpus, attacks, nowm, soundfile as sf
from nowm.detection import detect_16k
rng = np.random.default_rng(7)
tracks = corpus.list_tracks()
sel = [tracks[i] for i in rng.choice(len(tracks), 16, replace=False)]
exs = corpus.excerpts(sel, 2, 12.0, rng)
ys = [corpus.load_excerpt(e) for e in exs]
y0, _ = sf.read(str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'samples' / 'orbital-elevator-excerpt.flac'), dtype='float32'); ys += [y0[:int(12*44100)], y0[int(12*44100):int(24*44100)]]
r = np.random.default_rng(1)
ms = [nowm.embed(y, 44100, owner=4242) for y in ys]
snr = [10*np.log10(np.sum(y.astype(float)**2)/np.sum((m-y).astype(float)**2)) for y, m in zip(ys, ms)]
print(f"clips {len(ys)}  SNR median {np.median(snr):.1f} min {np.min(snr):.1f}")
for att in ('clean', 'mp3-128', 'mp3-64', 'aac-64', 'opus-32'):
    for L in (10.0, 3.0):
        det = own = wrong = 0; t = 0.0
        for m in ms:
            ya, sra = attacks.ATTACKS[att](m, 44100, r)
            clip = attacks.clip_pipeline(ya, sra, L, r).astype(float)
            t0 = time.perf_counter(); d = detect_16k(clip); t += time.perf_counter() - t0
            det += d.marked and d.policy == 'no-ai-training'; own += d.owner == 4242; wrong += d.owner not in (None, 4242)
        print(f"{att:8s} {L:4.0f} s: policy {det}/{len(ms)}  owner {own}/{len(ms)}  wrong id {wrong}  detect {1000*t/len(ms):.1f} ms/clip", flush=True)
