"""Sound of a scene: the object's signature through the environment's room response, over its ambience.

Each object class names a signature in SOUNDS (`ObjectClass.sound`) whose pitch, rhythm and timbre stay
recognisable while every parameter is jittered per recording; each environment brings its ambience, its
reverberation time and its echo.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from openbind.world.concepts import Environment
from openbind.world.objects import Thing
from openbind.world.places import Place
from openbind.world.scene import F32, frac

SAMPLE_RATE = 16_000
AUDIO_SECONDS = 3.0


def _sin(phase: np.ndarray) -> np.ndarray:
    """sin of float64 phases (radians), computed in float32 after exact wrapping to one period."""
    cycles = phase * (1 / (2 * np.pi))
    return np.sin(frac(cycles).astype(F32) * F32(2 * np.pi))


def _fft_size(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _noise(rng: np.random.Generator, n: int, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """White noise shaped in frequency by `gain(f_hz)`, unit RMS, float32."""
    size = _fft_size(n)
    spectrum = np.fft.rfft(rng.standard_normal(size, dtype=F32)) * gain(np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE))
    x = np.fft.irfft(spectrum, size)[:n].astype(F32)
    return x / F32(max(float(np.sqrt(np.mean(x**2))), 1e-12))


def _events(duration: float, period: float, rng: np.random.Generator, jitter: float = 0.05) -> np.ndarray:
    """Roughly periodic onset times (s), starting before 0 so a sound can be under way when the clip starts."""
    start = rng.uniform(0.0, period)
    times = np.arange(start - period, duration, period)
    return times + rng.normal(0.0, jitter * period, times.shape)


def _decaying(
    t: np.ndarray, onsets: np.ndarray, event: Callable[[np.ndarray], np.ndarray], length: float
) -> np.ndarray:
    """Sum of `event(time since onset)` over `length` s after each onset."""
    out = np.zeros(t.shape, dtype=F32)
    for onset in onsets:
        lo, hi = np.searchsorted(t, [onset, onset + length])
        if hi > lo:
            out[lo:hi] += event(t[lo:hi] - onset)
    return out


def _whistle(t, rng, pitch, tempo):
    f0 = rng.uniform(2700, 3200) * pitch
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.012 * np.sin(2 * np.pi * 5.5 * t))) / SAMPLE_RATE
    tone = _sin(phase) + F32(0.3) * _sin(2 * phase)
    hiss = _noise(rng, len(t), lambda f: (f > 3500) * 1.0)
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * 0.4 * tempo * t + rng.uniform(0, 6.3))
    return swell.astype(F32) * (tone + F32(0.25) * hiss)


def _bell(t, rng, pitch, tempo):
    f0 = rng.uniform(480, 620) * pitch
    ratios, amps, decays = (1.0, 2.0, 2.76, 5.4), (1.0, 0.6, 0.45, 0.25), (2.5, 3.5, 5.0, 8.0)

    def strike(u):
        partials = zip(ratios, amps, decays)
        return sum(a * np.exp(-d * u).astype(F32) * _sin(2 * np.pi * f0 * r * u) for r, a, d in partials)

    return _decaying(t, _events(t[-1], rng.uniform(0.85, 1.1) / tempo, rng, 0.02), strike, 1.5)


def _click(u: np.ndarray, freq: float) -> np.ndarray:
    return np.exp(-700 * u) * _sin(2 * np.pi * freq * u)


def _ticks(t, rng, pitch, tempo):
    period = 0.5 / tempo
    ticks = _events(t[-1], 2 * period, rng, 0.005)
    tick = _decaying(t, ticks, partial(_click, freq=3300.0 * pitch), 0.02)
    tock = _decaying(t, ticks + period, partial(_click, freq=2300.0 * pitch), 0.02)
    return tick + F32(0.8) * tock


def _thumps(t, rng, pitch, tempo):
    f0 = rng.uniform(55, 75) * pitch
    bar = rng.uniform(0.9, 1.1) / tempo
    onsets = np.concatenate([_events(t[-1], bar, rng, 0.01) + off * bar for off in (0.0, 0.25, 0.5)])

    def hit(u):
        f = f0 * (1 + 1.2 * np.exp(-u * 25))
        return np.exp(-7 * u) * _sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE)

    return _decaying(t, np.sort(onsets), hit, 0.5)


def _hum(t, rng, pitch, tempo):
    f0 = 100.0 * pitch
    buzz = sum(_sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / F32(k) for k in range(1, 12))
    air = _noise(rng, len(t), lambda f: ((f > 150) & (f < 2500)) * 1.0)
    wobble = (1 + 0.15 * np.sin(2 * np.pi * 0.5 * tempo * t)).astype(F32)
    return F32(0.6) * buzz * wobble + F32(0.8) * air


def _meow(t, rng, pitch, tempo):
    f0 = rng.uniform(480, 560) * pitch
    length = 0.75

    def call(u):
        contour = f0 * (1 + 0.7 * np.sin(np.pi * u / length) ** 2 - 0.15 * u / length)
        phase = 2 * np.pi * np.cumsum(contour) / SAMPLE_RATE
        voice = sum(_sin(k * phase) / F32(k) for k in range(1, 7))
        return np.sin(np.pi * u / length).astype(F32) * voice

    return _decaying(t, _events(t[-1], rng.uniform(1.2, 1.6) / tempo, rng, 0.05), call, length)


def _siren(t, rng, pitch, tempo):
    centre = rng.uniform(1400, 1600) * pitch
    saw = frac(t * 1.2 * tempo + rng.uniform(0, 1))
    f = centre * (1 + 0.27 * (2 * np.abs(2 * saw - 1) - 1))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    return _sin(phase) + F32(0.33) * _sin(3 * phase)


def _croak(t, rng, pitch, tempo):
    f0 = rng.uniform(200, 240) * pitch
    period = rng.uniform(0.7, 0.9) / tempo

    def ribbit(u):
        saw = 2 * frac(f0 * u) - 1
        pulses = (_sin(2 * np.pi * 32 * u) > 0) & ((u < 0.12) | ((u > 0.18) & (u < 0.3)))
        return saw * pulses

    return _decaying(t, _events(t[-1], period, rng, 0.03), ribbit, 0.3)


def _string(u: np.ndarray, f0: float) -> np.ndarray:
    """A plucked string: harmonics k of f0 that decay faster the higher they are."""
    return sum(np.exp(-(2.5 + 1.5 * k) * u).astype(F32) * _sin(2 * np.pi * f0 * k * u) / F32(k) for k in range(1, 9))


def _pluck(t, rng, pitch, tempo):
    chord = np.array([196.0, 247.0, 294.0, 392.0]) * pitch
    onsets = _events(t[-1], rng.uniform(0.5, 0.7) / tempo, rng, 0.03)
    roots = chord[(np.arange(len(onsets)) + int(rng.integers(4))) % 4]
    out = np.zeros(t.shape, dtype=F32)
    for onset, f0 in zip(onsets, roots):
        out += _decaying(t, np.array([onset]), partial(_string, f0=f0), 1.2)
    return out


def _ring(t, rng, pitch, tempo):
    cycle = rng.uniform(2.6, 3.2) / tempo
    local = (t + rng.uniform(0, cycle)) % cycle
    on = (local < 0.4) | ((local > 0.6) & (local < 1.0))
    trill = np.where(np.sin(2 * np.pi * 16 * t) > 0, 650.0, 820.0) * pitch
    return on * _sin(2 * np.pi * np.cumsum(trill) / SAMPLE_RATE)


SOUNDS: dict[str, Callable[..., np.ndarray]] = {
    "whistle": _whistle, "bell": _bell, "ticks": _ticks, "thumps": _thumps, "hum": _hum, "meow": _meow,
    "siren": _siren, "croak": _croak, "pluck": _pluck, "ring": _ring,
}


def _chirp(u: np.ndarray) -> np.ndarray:
    """A bird call: a 90 ms upward sweep from 3.5 kHz."""
    return _sin(2 * np.pi * (3500 * u + 0.5 * 18000 * u**2)) * np.sin(np.pi * u / 0.09).astype(F32)


def _ambience(env: Environment, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(t)
    if env.ambience == "pink":
        return _noise(rng, n, lambda f: 1.0 / np.sqrt(np.maximum(f, 20.0)))
    if env.ambience == "wind":
        gust = (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.15, 0.3) * t + rng.uniform(0, 6.3))).astype(F32)
        wind = gust * _noise(rng, n, lambda f: 1.0 / np.maximum(f, 30.0) * (f < 1200))
        birds = _decaying(t, rng.uniform(0, t[-1], int(rng.integers(3, 7))), _chirp, 0.09)
        return wind + F32(0.6) * birds
    if env.ambience == "rumble":
        swell = (0.7 + 0.3 * np.exp(-((t - rng.uniform(0, t[-1])) ** 2) / 0.8)).astype(F32)
        return swell * _noise(rng, n, lambda f: 1.0 / (1.0 + (f / 120.0) ** 2))
    if env.ambience == "surf":
        swell = (0.35 + 0.65 * np.sin(np.pi * rng.uniform(0.25, 0.4) * t + rng.uniform(0, 6.3)) ** 2).astype(F32)
        return swell * _noise(rng, n, lambda f: ((f > 250) & (f < 6000)) * 1.0)
    raise ValueError(f"unknown ambience {env.ambience!r}")


def _room(signal: np.ndarray, env: Environment, rng: np.random.Generator) -> np.ndarray:
    """Reverberation (exponentially decaying noise tail with the environment's RT60) and slap-back echo."""
    if env.reverb_rt60_s <= 0 and env.echo_s <= 0:
        return signal
    ir = np.zeros(int(SAMPLE_RATE * max(env.reverb_rt60_s, env.echo_s + 0.01)) + 1, dtype=F32)
    ir[0] = 1.0
    if env.reverb_rt60_s > 0:
        u = np.arange(int(SAMPLE_RATE * env.reverb_rt60_s)) / SAMPLE_RATE
        tail = rng.standard_normal(len(u), dtype=F32) * np.exp(-6.9 * u / env.reverb_rt60_s).astype(F32)
        ir[1 : len(u)] += F32(0.08) * tail[1:]
    if env.echo_s > 0:
        ir[int(SAMPLE_RATE * env.echo_s)] += 0.45
    size = _fft_size(len(signal) + len(ir))
    wet = np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(ir, size), size)
    return wet[: len(signal)].astype(F32)


def render_sound(place: Place, thing: Thing | None, rng: np.random.Generator) -> np.ndarray:
    """int16 mono samples at 16 kHz: the object's signature (pitch falls with its size, level with its
    distance) through the environment's room response, over the environment's ambience."""
    t = np.arange(int(SAMPLE_RATE * AUDIO_SECONDS)) / SAMPLE_RATE
    env = place.env
    ambience = _ambience(env, t, rng)
    level = env.ambience_level * rng.uniform(0.7, 1.3) / max(float(np.sqrt(np.mean(ambience**2))), 1e-12)
    mix = ambience * F32(level)
    if thing is not None:
        pitch = float(np.clip((0.7 / thing.size_m) ** 0.5, 0.8, 1.25) * rng.uniform(0.97, 1.03))
        source = SOUNDS[thing.obj.sound](t, rng, pitch, rng.uniform(0.88, 1.12)).astype(F32)
        source = _room(source / F32(max(float(np.sqrt(np.mean(source**2))), 1e-12)), env, rng)
        mix = mix + source * F32(0.5 * (1.3 / thing.distance_m) * rng.uniform(0.8, 1.2))
    peak = float(np.max(np.abs(mix)))
    mix = mix * F32(rng.uniform(0.25, 0.9) / max(peak, 1e-12))
    return np.rint(mix * F32(32767)).astype(np.int16)
