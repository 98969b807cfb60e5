"""A deterministic fleet of storage volumes whose state at any instant is computed vectorized.

Every volume is a handful of parameters drawn once from the seed. Its true usage is a closed-form
function of time (trend, cleanups, weekly cycle, hashed noise and bursts, clamped to the quota), so
any instant can be evaluated for the whole fleet in a few numpy passes, in any order, and the same
seed and instant always give the same state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime

import numpy as np
import polars as pl

from simulator import render
from simulator.clock import DAY_US, HOUR_US, US, from_us, to_us

GiB = 2**30
NONE_US = np.iinfo(np.int64).max
UTC_US = pl.Datetime("us", "UTC")

STATUSES = ("available", "attached", "degraded", "error")

SCENARIOS: tuple[str, ...] = (
    "steady_growth",
    "weekly_cycle",
    "cleanup",
    "quota_raise",
    "unlimited",
    "shrinking",
    "flat_noise",
    "inode_bound",
    "already_full",
    "stale",
    "deleted",
    "rate_change",
    "created",
)

#: Horizon for `full_at` in truth: later crossings are reported as null.
TRUTH_HORIZON_DAYS = 365

_NAME_TEMPLATES = (
    "pg-data",
    "ml/training/cache",
    "logs",
    "scratch space",
    "Ünïcode-数据",
    'backup "nightly"',
    "home\\user",
    "ci-runner",
    "redis/aof",
    "tmp",
    "📦 artifacts",
    "analytics/warehouse 2",
    "café",
    "odd/../path",
    "tab\there",
    "uploads?x=1&y=2",
)
_OFFSETS_MIN = (120, 330, -420, 540, -210, 0, 60, -300)


@dataclass(frozen=True)
class _Params:
    """Per-volume parameters, one array element per volume (row i is `vol-<i+1>`)."""

    key: np.ndarray  # uint64 hash key for noise, bursts, mounts and status
    created_us: np.ndarray
    deleted_us: np.ndarray  # NONE_US when never deleted
    ref_us: np.ndarray  # instant at which the trend equals u_ref
    u_ref: np.ndarray  # bytes at ref_us
    rate: np.ndarray  # bytes/day
    acc: np.ndarray  # bytes/day², applied after ref_us only
    change_us: np.ndarray  # instant the growth rate is multiplied; NONE_US = never
    change_factor: np.ndarray  # the multiplier (1.0 = no change)
    period: np.ndarray  # days between periodic cleanups; 0 = none
    keep: np.ndarray  # fraction of each period's growth that survives its cleanup
    phase: np.ndarray  # days
    oneoff_us: np.ndarray  # instant of a one-off cleanup; NONE_US = none
    oneoff_drop: np.ndarray  # bytes removed by it (fixed at construction)
    floor: np.ndarray  # bytes the trend never goes below
    week_amp: np.ndarray  # bytes
    noise_amp: np.ndarray  # bytes
    burst_p: np.ndarray  # probability of a burst per day
    burst_amp: np.ndarray  # bytes
    q0: np.ndarray  # initial byte quota; NaN = unlimited
    elastic: np.ndarray  # bool
    el_th: np.ndarray  # utilisation that triggers a raise
    el_f: np.ndarray  # raise factor
    el_max: np.ndarray  # maximum number of raises
    clamp: np.ndarray  # bool: usage cannot pass the byte quota
    bpi: np.ndarray  # bytes per inode
    i_const: np.ndarray  # inodes independent of bytes
    imax: np.ndarray  # file-count quota; NaN = unlimited
    mmax: np.ndarray  # int64 mount limit; -1 = unlimited
    at_limit: np.ndarray  # bool: always mounted max_mounts times
    p_err: np.ndarray
    p_deg: np.ndarray
    rec_base_us: np.ndarray  # first reconciliation instant
    rec_int_us: np.ndarray  # reconciliation interval
    rec_lag_us: np.ndarray  # delay before a reconciliation becomes visible
    stall_us: np.ndarray  # reconciliation stops after this instant; NONE_US = never

    def take(self, idx: np.ndarray) -> _Params:
        return replace(self, **{f.name: getattr(self, f.name)[idx] for f in fields(self)})


# -- hashing: deterministic per (volume, time bucket) randomness ---------------------------------

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = x + _GOLD
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _unif(key: np.ndarray, bucket: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) from a volume key and an int64 bucket number."""
    b = np.asarray(bucket, dtype=np.int64).astype(np.uint64)
    h = _mix(key ^ np.uint64(salt) ^ (b * _GOLD))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


_SALT_NOISE, _SALT_BURST, _SALT_MOUNT, _SALT_STATUS = 0x1F3D, 0x2A7B, 0x3C11, 0x4E97


# -- the model ------------------------------------------------------------------------------------


def _weekly_shape(t_us: np.ndarray) -> np.ndarray:
    """0..1: work accumulates 08:00-18:00 UTC on weekdays and is purged on Saturday morning."""
    tau = ((t_us - 4 * DAY_US) % (7 * DAY_US)) / HOUR_US  # hours since Monday 00:00
    day = np.floor(tau / 24.0)
    hour = tau - day * 24.0
    progress = np.minimum(day, 5.0) * 10.0 + np.where(day < 5, np.clip(hour - 8.0, 0.0, 10.0), 0.0)
    shape = progress / 50.0
    weekend = np.clip(1.0 - (tau - 120.0) / 12.0, 0.0, 1.0)
    return np.where(day >= 5, weekend, shape)


def _noise(p: _Params, t_us: np.ndarray) -> np.ndarray:
    """Piecewise-linear hashed noise in [-1, 1] with hourly knots."""
    b = t_us // HOUR_US
    frac = (t_us - b * HOUR_US) / HOUR_US
    h0 = _unif(p.key, b, _SALT_NOISE)
    h1 = _unif(p.key, b + 1, _SALT_NOISE)
    return 2.0 * (h0 + (h1 - h0) * frac) - 1.0


def _bursts(p: _Params, t_us: np.ndarray) -> np.ndarray:
    """Temporary data written over a few hours then deleted at once; at most one start per day."""
    out = np.zeros(len(p.key))
    sel = np.flatnonzero(p.burst_p > 0)
    if len(sel) == 0:
        return out
    key, t = p.key[sel], np.broadcast_to(t_us, out.shape)[sel]
    total = np.zeros(len(sel))
    for back in (0, 1):
        day = t // DAY_US - back
        occurs = _unif(key, day, _SALT_BURST) < p.burst_p[sel]
        start = _unif(key, day, _SALT_BURST + 1) * DAY_US
        length = (2.0 + 10.0 * _unif(key, day, _SALT_BURST + 2)) * HOUR_US
        amp = p.burst_amp[sel] * (0.3 + 0.7 * _unif(key, day, _SALT_BURST + 3))
        into = (t - day * DAY_US) - start
        active = occurs & (into >= 0) & (into < length)
        total += np.where(active, amp * into / length, 0.0)
    out[sel] = total
    return out


def _trend(p: _Params, t_us: np.ndarray) -> np.ndarray:
    """Smooth usage without noise, weekly cycle, bursts or quota clamp."""
    d = (t_us - p.ref_us) / DAY_US
    has_period = p.period > 0
    per = np.where(has_period, p.period, 1.0)

    def sawtooth(x: np.ndarray) -> np.ndarray:
        return p.keep * per * np.floor(x / per) + np.mod(x, per)

    x = np.where(has_period, sawtooth(d + p.phase) - sawtooth(p.phase), d)
    after = np.maximum(d, 0.0)
    since_change = np.maximum((t_us - p.change_us) / DAY_US, 0.0)
    g = p.u_ref + p.rate * x + 0.5 * p.acc * after * after
    g = g + (p.change_factor - 1.0) * p.rate * since_change
    g = g - np.where(t_us >= p.oneoff_us, p.oneoff_drop, 0.0)
    return np.maximum(g, p.floor)


def _trend_rate(p: _Params, t_us: np.ndarray) -> np.ndarray:
    """Long-run trend slope in bytes/day (periodic cleanups scale it by `keep`)."""
    d = np.maximum((t_us - p.ref_us) / DAY_US, 0.0)
    factor = np.where(t_us >= p.change_us, p.change_factor, 1.0)
    rate = np.where(p.period > 0, p.rate * p.keep, p.rate) * factor + p.acc * d
    at_floor = (_trend(p, t_us) <= p.floor) & (rate < 0)
    return np.where(at_floor, 0.0, rate)


def _quota(p: _Params, g: np.ndarray) -> np.ndarray:
    """Byte quota in force given the trend: elastic volumes are raised as the trend passes the
    threshold, by `el_f` each time, at most `el_max` times; rounded to whole GiB."""
    trigger = p.el_th * p.q0
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.floor(np.log(np.maximum(g, 1.0) / trigger) / np.log(p.el_f)) + 1.0
    n = np.where(p.elastic & (g >= trigger), np.clip(n, 0.0, p.el_max), 0.0)
    raised = np.round(p.q0 * p.el_f**n / GiB) * GiB
    return np.where(n > 0, raised, p.q0)


def _usage(p: _Params, t_us: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True (used_bytes, inode_count, byte quota) at `t_us` (scalar or one instant per volume)."""
    t_us = np.broadcast_to(np.asarray(t_us, dtype=np.int64), p.key.shape)
    g = _trend(p, t_us)
    raw = g + p.week_amp * _weekly_shape(t_us) + p.noise_amp * _noise(p, t_us) + _bursts(p, t_us)
    raw = np.maximum(raw, 0.0)
    q = _quota(p, g)
    used = np.where(p.clamp & ~np.isnan(q), np.fmin(raw, q), raw)
    used = np.rint(used)
    inodes = np.rint(used / p.bpi + p.i_const)
    inodes = np.where(np.isnan(p.imax), inodes, np.fmin(inodes, p.imax))
    return used, inodes, q


def _mounts(p: _Params, t_us: int) -> np.ndarray:
    u = _unif(p.key, np.full(p.key.shape, t_us // HOUR_US), _SALT_MOUNT)
    limited = p.mmax >= 0
    # Below the limit but for the few volumes pinned at it (at_limit): a fleet where many
    # volumes cannot take one more mount would be an incident, not a baseline.
    m = np.floor(u * u * np.where(limited, p.mmax, 5)).astype(np.int64)
    m = np.where(limited, np.minimum(m, p.mmax), m)
    return np.where(p.at_limit & limited, p.mmax, m)


def _status(p: _Params, t_us: int, mounts: np.ndarray) -> np.ndarray:
    """Index into STATUSES; faults last six-hour windows."""
    u = _unif(p.key, np.full(p.key.shape, t_us // (6 * HOUR_US)), _SALT_STATUS)
    normal = np.where(mounts > 0, 1, 0)
    return np.where(u < p.p_err, 3, np.where(u < p.p_err + p.p_deg, 2, normal)).astype(np.int8)


def _reconciled_at(p: _Params, t_us: int) -> np.ndarray:
    """Instant of the last visible reconciliation, or NONE_US when there has been none."""
    k = (t_us - p.rec_lag_us - p.rec_base_us) // p.rec_int_us
    k_stall = np.where(p.stall_us == NONE_US, k, (p.stall_us - p.rec_base_us) // p.rec_int_us)
    k = np.minimum(k, k_stall)
    return np.where(k >= 0, p.rec_base_us + k * p.rec_int_us, NONE_US)


# -- construction ---------------------------------------------------------------------------------


def _quantize(us: np.ndarray, quantum: np.ndarray) -> np.ndarray:
    return us - us % quantum


#: Text styles for timestamps: (fraction digits, uses a numeric offset).
_STYLES = ((0, False), (3, False), (6, False), (0, True), (3, True), (1, True))
_STYLE_QUANTUM = np.array([US, 1_000, 1, US, 1_000, 100_000], dtype=np.int64)


class Fleet:
    """The simulated fleet: `volumes` exist at `start`; about 10% more are created over the
    following 60 days and about 5% are deleted over the following 90."""

    def __init__(self, volumes: int, seed: int, start: datetime) -> None:
        if volumes < 0:
            raise ValueError("volumes must be >= 0")
        self.volumes = volumes
        self.seed = seed
        self.start = from_us(to_us(start))
        self.start_us = to_us(start)
        self._build()
        self._cache_lock = threading.Lock()
        self._cache: (
            tuple[tuple[int, tuple[str, ...] | None, render.Layout], render.Body] | None
        ) = None

    # - parameters

    def _build(self) -> None:
        rng = np.random.default_rng(self.seed)
        n_old = self.volumes
        n_new = round(self.volumes * 0.1)
        n = n_old + n_new
        start = self.start_us

        age = np.sort(rng.uniform(1 / 24, 400, n_old))[::-1]
        created = np.concatenate(
            [start - age * DAY_US, start + np.sort(rng.uniform(1 / 24, 60, n_new)) * DAY_US]
        ).astype(np.int64)
        created_style = rng.choice(len(_STYLES), n, p=[0.3, 0.25, 0.1, 0.15, 0.1, 0.1])
        created = _quantize(created, _STYLE_QUANTUM[created_style])
        is_new = np.arange(n) >= n_old

        q_choices = np.array([10, 20, 50, 100, 200, 500, 1000, 2000, 5000], dtype=np.float64)
        q0 = rng.choice(q_choices, n) * GiB
        q0[rng.random(n) < 0.08] = np.nan
        util = rng.beta(2.0, 3.0, n)
        size = np.where(np.isnan(q0), rng.lognormal(np.log(50 * GiB), 1.0, n), q0)
        u_ref = np.where(is_new, rng.uniform(0, 2 * GiB, n), util * size)
        ref = np.where(is_new, created, start).astype(np.int64)
        age_days = np.maximum((ref - created) / DAY_US, 1.0)
        # Growth consistent with history: roughly filled from empty over the volume's age.
        rate = np.where(
            is_new,
            size * rng.uniform(0.002, 0.03, n),
            # capped: a real fleet has few volumes filling their quota within a month
            np.fmin(u_ref / age_days * rng.lognormal(0.0, 0.6, n), size * 0.006),
        )
        kind = rng.random(n)
        rate = np.where(kind < 0.05, -rate * rng.uniform(0.1, 0.5, n), rate)  # shrinking
        rate = np.where((kind >= 0.05) & (kind < 0.15), 0.0, rate)  # flat
        acc = np.where(rng.random(n) < 0.2, np.abs(rate) * rng.uniform(0.002, 0.02, n), 0.0)

        periodic = rng.random(n) < 0.15
        period = np.where(periodic, rng.uniform(3, 30, n), 0.0)
        keep = np.where(periodic, rng.uniform(0.2, 0.8, n), 1.0)
        rate = np.where(periodic, rate / keep, rate)
        phase = rng.uniform(0, 30, n)

        week_amp = np.where(rng.random(n) < 0.3, size * rng.uniform(0.01, 0.1, n), 0.0)
        noise_amp = size * np.exp(rng.uniform(np.log(0.0005), np.log(0.01), n))
        bursty = rng.random(n) < 0.2
        burst_p = np.where(bursty, rng.uniform(0.05, 0.3, n), 0.0)
        burst_amp = np.where(bursty, size * rng.uniform(0.01, 0.08, n), 0.0)

        elastic = (rng.random(n) < 0.1) & ~np.isnan(q0)
        el_th = rng.uniform(0.8, 0.9, n)
        el_f = rng.choice(np.array([1.25, 1.5, 2.0]), n)
        el_max = rng.integers(2, 7, n).astype(np.float64)

        full = (rng.random(n) < 0.01) & ~np.isnan(q0) & ~elastic & ~is_new
        over = full & (rng.random(n) < 0.5)
        u_ref = np.where(full, q0 * np.where(over, rng.uniform(1.0, 1.08, n), 1.0), u_ref)
        rate = np.where(full, np.abs(rate) + 0.001 * size, rate)
        clamp = ~over

        bpi = np.exp(rng.uniform(np.log(16 * 1024), np.log(4 * 2**20), n))
        i_const = rng.integers(10, 2000, n).astype(np.float64)
        inode_util = rng.uniform(0.1, 0.6, n)
        imax = np.ceil((u_ref / bpi + i_const) / inode_util / 1000.0) * 1000.0
        imax[rng.random(n) < 0.4] = np.nan

        mmax = rng.choice(
            np.array([1, 2, 4, 8, 16, 64]), n, p=[0.05, 0.15, 0.3, 0.25, 0.15, 0.1]
        ).astype(np.int64)
        mmax[rng.random(n) < 0.25] = -1
        at_limit = rng.random(n) < 0.02

        flaky = rng.random(n) < 0.05
        p_err = np.where(flaky, 0.05, 0.002)
        p_deg = np.where(flaky, 0.15, 0.01)

        rec_style = rng.choice(len(_STYLES), n, p=[0.2, 0.35, 0.1, 0.1, 0.15, 0.1])
        rec_int = rng.integers(300, 901, n).astype(np.int64) * US
        rec_base = created + rng.integers(60, 600, n) * US + rng.integers(0, US, n)
        rec_base = _quantize(rec_base, _STYLE_QUANTUM[rec_style]) + _STYLE_QUANTUM[rec_style]
        rec_lag = rng.integers(20, 180, n).astype(np.int64) * US

        stall = np.full(n, NONE_US, dtype=np.int64)
        stalled = rng.random(n) < 0.005
        stall_at = (start + rng.uniform(-20, 60, n) * DAY_US).astype(np.int64)
        stall = np.where(stalled, np.maximum(stall_at, rec_base + rec_int), stall)

        deleted = np.full(n, NONE_US, dtype=np.int64)
        dies = rng.random(n) < 0.05
        die_at = np.maximum(created, start) + (rng.uniform(1 / 24, 90, n) * DAY_US).astype(np.int64)
        deleted = np.where(dies, die_at, deleted)

        legacy = rng.random(n) < 0.02
        key = rng.integers(0, 2**63, n, dtype=np.uint64) | np.uint64(1)
        floor = np.zeros(n)

        cols: dict[str, np.ndarray] = dict(
            key=key, created_us=created, deleted_us=deleted, ref_us=ref, u_ref=u_ref, rate=rate,
            acc=acc, change_us=np.full(n, NONE_US, dtype=np.int64), change_factor=np.ones(n),
            period=period, keep=keep, phase=phase,
            oneoff_us=np.full(n, NONE_US, dtype=np.int64), oneoff_drop=np.zeros(n), floor=floor,
            week_amp=week_amp, noise_amp=noise_amp, burst_p=burst_p, burst_amp=burst_amp, q0=q0,
            elastic=elastic, el_th=el_th, el_f=el_f, el_max=el_max, clamp=clamp, bpi=bpi,
            i_const=i_const, imax=imax, mmax=mmax, at_limit=at_limit, p_err=p_err, p_deg=p_deg,
            rec_base_us=rec_base, rec_int_us=rec_int, rec_lag_us=rec_lag, stall_us=stall,
        )  # fmt: skip
        self.scenarios = self._assign_scenarios(rng, cols, n_old, n)
        oneoff_frac = cols.pop("_oneoff_frac")
        cols["oneoff_drop"] = np.where(
            cols["oneoff_us"] == NONE_US,
            0.0,
            _trend(_Params(**cols), cols["oneoff_us"]) * oneoff_frac,
        )
        self._p = _Params(**cols)
        self._n = n
        self._created_style = created_style
        self._rec_style = rec_style
        self._offset_min = rng.choice(np.array(_OFFSETS_MIN), n)
        self._rec_offset_min = rng.choice(np.array(_OFFSETS_MIN), n)
        self._legacy = legacy
        self._static = self._static_columns(rng)

    def _assign_scenarios(
        self, rng: np.random.Generator, c: dict[str, np.ndarray], n_old: int, n: int
    ) -> dict[str, list[int]]:
        """Override the parameters of a few designated volumes per scenario (in place)."""
        start = self.start_us
        k = max(1, min(20, n_old // 40))
        old_pool = np.flatnonzero(c["created_us"][:n_old] <= start - 30 * DAY_US)
        old_pool = rng.permutation(old_pool)
        new_pool = np.flatnonzero(
            (c["created_us"] >= start + DAY_US) & (c["created_us"] <= start + 28 * DAY_US)
        )
        c["_oneoff_frac"] = np.zeros(n)
        chosen: dict[str, np.ndarray] = {}
        pos = 0
        for name in SCENARIOS:
            if name == "created":
                idx = np.sort(rng.permutation(new_pool)[:k])
            else:
                idx = np.sort(old_pool[pos : pos + k])
                pos += k
            chosen[name] = idx
        if not chosen["steady_growth"].size:
            return {name: [] for name in SCENARIOS}

        def u(lo: float, hi: float, m: int) -> np.ndarray:
            return rng.uniform(lo, hi, m)

        # A clean baseline for every designated volume, then each scenario's twist.
        everyone = np.concatenate(list(chosen.values()))
        m = len(everyone)
        q = rng.choice(np.array([100.0, 200, 500, 1000, 2000]), m) * GiB
        c["q0"][everyone] = q
        c["u_ref"][everyone] = q * u(0.3, 0.5, m)
        c["ref_us"][everyone] = np.where(
            c["created_us"][everyone] > start, c["created_us"][everyone], start
        )
        c["rate"][everyone] = q * u(0.002, 0.006, m)  # fills in months, not weeks
        for name in ("acc", "period", "week_amp", "burst_p", "burst_amp", "p_err", "p_deg"):
            c[name][everyone] = 0.0
        c["keep"][everyone] = 1.0
        c["noise_amp"][everyone] = q * 0.001
        c["elastic"][everyone] = False
        c["clamp"][everyone] = True
        c["imax"][everyone] = np.nan
        c["stall_us"][everyone] = NONE_US
        c["deleted_us"][everyone] = NONE_US
        c["floor"][everyone] = 0.0

        def pick(name: str) -> tuple[np.ndarray, int, np.ndarray]:
            idx = chosen[name]
            return idx, len(idx), c["q0"][idx]

        # Fills `fill_days` after start + 30 days: 5..60 days of runway left at day 30.
        idx, m, q = pick("steady_growth")
        util = u(0.2, 0.6, m)
        fill_days = 30.0 + u(5, 60, m)
        c["u_ref"][idx] = q * util
        c["rate"][idx] = q * (1.0 - util) / fill_days

        idx, m, q = pick("weekly_cycle")
        c["week_amp"][idx] = q * u(0.05, 0.15, m)

        idx, m, q = pick("cleanup")
        c["u_ref"][idx] = q * u(0.5, 0.7, m)
        c["rate"][idx] = q * (1.0 - 0.7) / u(30, 60, m)
        c["oneoff_us"][idx] = start + (u(5, 25, m) * DAY_US).astype(np.int64)
        c["_oneoff_frac"][idx] = u(0.4, 0.8, m)

        idx, m, q = pick("quota_raise")
        th = u(0.8, 0.85, m)
        util = u(0.5, 0.7, m)
        c["elastic"][idx] = True
        c["el_th"][idx], c["el_f"][idx], c["el_max"][idx] = th, 1.5, 4.0
        c["u_ref"][idx] = q * util
        c["rate"][idx] = q * (th - util) / u(3, 25, m)

        idx, m, q = pick("unlimited")
        c["q0"][idx] = np.nan

        idx, m, q = pick("shrinking")
        util = u(0.6, 0.9, m)
        c["u_ref"][idx] = q * util
        c["rate"][idx] = -q * util * u(0.2, 0.6, m) / 60.0
        c["floor"][idx] = 0.05 * q

        idx, m, q = pick("flat_noise")
        c["rate"][idx] = 0.0
        c["noise_amp"][idx] = c["u_ref"][idx] * u(0.01, 0.05, m)

        # The file-count quota binds first: small files, bytes nowhere near full.
        idx, m, q = pick("inode_bound")
        c["u_ref"][idx] = q * u(0.1, 0.2, m)
        c["rate"][idx] = q * u(0.001, 0.002, m)
        c["bpi"][idx] = u(4096, 16384, m)
        fill_days = 30.0 + u(5, 60, m)
        at_fill = (c["u_ref"][idx] + c["rate"][idx] * fill_days) / c["bpi"][idx]
        c["imax"][idx] = np.round(at_fill + c["i_const"][idx])

        idx, m, q = pick("already_full")
        c["u_ref"][idx] = q * np.where(np.arange(m) % 2 == 0, 1.0, u(1.01, 1.08, m))
        c["clamp"][idx] = np.arange(m) % 2 == 0

        idx, m, q = pick("stale")
        c["stall_us"][idx] = start - (u(1, 10, m) * DAY_US).astype(np.int64)

        idx, m, q = pick("deleted")
        c["deleted_us"][idx] = start + (u(2, 28, m) * DAY_US).astype(np.int64)

        idx, m, q = pick("created")
        c["u_ref"][idx] = u(0, GiB, m)
        c["rate"][idx] = q * u(0.005, 0.02, m)

        # The growth rate multiplies at a known instant, 25-26 days after start: half the volumes
        # speed up (x2.5-4, full within weeks), half slow down (x0.25-0.4, full within months).
        # Drawn from their own generator so the rest of the fleet is the same with or without.
        idx, m, q = pick("rate_change")
        own = np.random.default_rng([self.seed, 0x5A7E])
        faster = np.arange(m) % 2 == 0
        c["u_ref"][idx] = q * np.where(faster, own.uniform(0.2, 0.35, m), own.uniform(0.2, 0.3, m))
        c["rate"][idx] = q * np.where(
            faster, own.uniform(0.006, 0.009, m), own.uniform(0.01, 0.015, m)
        )
        c["change_factor"][idx] = np.where(
            faster, own.uniform(2.5, 4, m), own.uniform(0.25, 0.4, m)
        )
        c["change_us"][idx] = start + (own.uniform(25, 26, m) * DAY_US).astype(np.int64)

        return {name: [int(i) for i in idx] for name, idx in chosen.items()}

    def _static_columns(self, rng: np.random.Generator) -> pl.DataFrame:
        """Fields that never change, as raw values and as ready JSON text."""
        n = self._n
        number = pl.Series(np.arange(1, n + 1, dtype=np.int64)).cast(pl.String)
        tag = _mix(self._p.key) >> np.uint64(40)
        hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
        short = np.stack(
            [hexdigits[(tag >> np.uint64(4 * s)) & np.uint64(15)] for s in range(5, -1, -1)],
            axis=1,
        )
        short_hash = pl.Series(np.ascontiguousarray(short).view("S6").ravel()).cast(pl.String)
        tpl = rng.integers(0, len(_NAME_TEMPLATES), n)
        repeated = pl.Series(rng.random(n) < 0.05)  # a few names are shared by many volumes
        suffix = pl.select(
            pl.when(repeated).then(pl.lit("")).otherwise(pl.lit("-") + number)
        ).to_series()
        raw_tpl = pl.Series(_NAME_TEMPLATES).gather(tpl)
        # Templates end in plain text, so a JSON string is the escaped template, the suffix, `"`.
        json_tpl = pl.Series([render.json_string(t)[:-1] for t in _NAME_TEMPLATES]).gather(tpl)
        rack = pl.Series(rng.integers(1, 40, n)).cast(pl.String).str.zfill(2)
        node = pl.Series(rng.integers(1, 200, n)).cast(pl.String).str.zfill(3)
        host = pl.select(pl.format("host-r{}-n{}", rack, node)).to_series()
        return pl.DataFrame(
            {
                "id": pl.select(
                    pl.format("vol-{}-{}", number.str.zfill(7), short_hash)
                ).to_series(),
                "name": raw_tpl + suffix,
                "name_json": json_tpl + suffix + '"',
                "host_id": pl.select(pl.when(pl.Series(self._legacy)).then(host)).to_series(),
                "created_at": pl.Series(self._p.created_us).cast(UTC_US),
                "created_text": render.format_instants(
                    self._p.created_us, self._created_style, self._offset_min
                ),
            }
        )

    # - evaluation

    def _exists(self, t_us: int) -> np.ndarray:
        return (self._p.created_us <= t_us) & (t_us < self._p.deleted_us)

    def _state(self, t_us: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rows existing at `t_us` and the served values for them (reconciled usage, live rest)."""
        rows = np.flatnonzero(self._exists(t_us))
        p = self._p.take(rows)
        rec = _reconciled_at(p, t_us)
        never = rec == NONE_US
        used, inodes, _ = _usage(p, np.where(never, p.created_us, rec))
        quota = _quota(p, _trend(p, np.full(len(rows), t_us)))
        mounts = _mounts(p, t_us)
        return rows, {
            "used_bytes": np.where(never, 0, used).astype(np.int64),
            "inode_count": np.where(never, 0, inodes).astype(np.int64),
            "mount_count": mounts.astype(np.int32),
            "max_size_bytes": quota,
            "max_file_count": p.imax,
            "max_mounts": np.where(p.mmax >= 0, p.mmax, -1).astype(np.int32),
            "rec_us": rec,
            "status": _status(p, t_us, mounts),
            "rec_style": self._rec_style[rows],
            "rec_offset": self._rec_offset_min[rows],
        }

    def snapshot(self, at: datetime) -> pl.DataFrame:
        """Typed state of every volume existing at `at`, exactly as `/v1/volumes` serves it
        (host_id is null on non-legacy volumes)."""
        t_us = to_us(at)
        rows, s = self._state(t_us)
        static = self._static[rows]
        return pl.DataFrame(
            {
                "id": static["id"],
                "name": static["name"],
                "created_at": static["created_at"],
                "host_id": static["host_id"],
                "used_bytes": s["used_bytes"],
                "inode_count": s["inode_count"],
                "mount_count": s["mount_count"],
                "max_size_bytes": pl.Series(s["max_size_bytes"], nan_to_null=True).cast(pl.Int64),
                "max_file_count": pl.Series(s["max_file_count"], nan_to_null=True).cast(pl.Int64),
                "max_mounts": pl.Series(s["max_mounts"]).replace(-1, None).cast(pl.Int32),
                "last_reconciled_at": pl.Series(s["rec_us"]).replace(NONE_US, None).cast(UTC_US),
                "status": pl.Series(np.array(STATUSES)[s["status"]]),
            }
        )

    def render_json(
        self,
        at: datetime,
        fields: Sequence[str] | None = None,
        layout: render.Layout = render.COMPACT,
    ) -> bytes:
        """The `/v1/volumes` body at `at` for a field mask (None = every field but host_id)."""
        return self.render_body(to_us(at), fields, layout).tobytes()

    def render_body(
        self,
        t_us: int,
        fields: Sequence[str] | None = None,
        layout: render.Layout = render.COMPACT,
    ) -> render.Body:
        """As `render_json`, without copying; cached for the last (instant, mask, layout)."""
        cache_key = (t_us, render.normalize_fields(fields), layout)
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == cache_key:
                return self._cache[1]
            self._cache = None  # let the previous body go before rendering the next
            rows, state = self._state(t_us)
            body = render.render(self._static[rows], state, cache_key[1], layout)
            self._cache = (cache_key, body)
            return body

    def prerender(
        self,
        at: datetime,
        fields: Sequence[str] | None = None,
        layout: render.Layout = render.COMPACT,
    ) -> int:
        """Render and cache the body for `at`; returns its size in bytes."""
        return len(self.render_body(to_us(at), fields, layout))

    # - truth

    @property
    def ids(self) -> pl.Series:
        return self._static["id"]

    def scenario_ids(self) -> dict[str, list[str]]:
        ids = self._static["id"]
        return {name: [ids[i] for i in rows] for name, rows in self.scenarios.items()}

    def rate_changes(self) -> pl.DataFrame:
        """The volumes whose growth rate changes at a known instant: `change_at`, the multiplier,
        and the trend's bytes/day before and after it (truth for the forecast's break detection;
        their true time to full is in `truth`)."""
        rows = np.flatnonzero(self._p.change_us != NONE_US)
        p = self._p.take(rows)
        return pl.DataFrame(
            {
                "id": self._static["id"][rows],
                "change_at": pl.Series(p.change_us).cast(UTC_US),
                "change_factor": p.change_factor,
                "growth_before": _trend_rate(p, p.change_us - 1),
                "growth_after": _trend_rate(p, p.change_us),
            }
        )

    def truth(self, at: datetime, volume_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """True state at `at` of the volumes existing then (no reconciliation lag), with the
        trend's growth rate and the first instant within 365 days at which usage reaches the
        quota in force at `at` (null when unlimited or not within the horizon)."""
        t_us = to_us(at)
        exists = self._exists(t_us)
        if volume_ids is not None:
            wanted = self._static["id"].is_in(list(volume_ids)).to_numpy()
            exists &= wanted
        rows = np.flatnonzero(exists)
        p = self._p.take(rows)
        used, inodes, quota = _usage(p, np.full(len(rows), t_us))
        rate = _trend_rate(p, np.full(len(rows), t_us))
        full_b, full_i = _full_at(p, t_us, used, inodes, quota)
        scenario: list[str | None] = [None] * self._n
        for name, idx in self.scenarios.items():
            for i in idx:
                scenario[i] = name
        static = self._static[rows]

        def instants(us: np.ndarray) -> pl.Series:
            return pl.Series(us).replace(NONE_US, None).cast(UTC_US)

        return pl.DataFrame(
            {
                "id": static["id"],
                "scenario": pl.Series([scenario[i] for i in rows], dtype=pl.String),
                "used_bytes": used.astype(np.int64),
                "inode_count": inodes.astype(np.int64),
                "max_size_bytes": pl.Series(quota, nan_to_null=True).cast(pl.Int64),
                "max_file_count": pl.Series(p.imax, nan_to_null=True).cast(pl.Int64),
                "growth_bytes_per_day": rate,
                "growth_inodes_per_day": rate / p.bpi,
                "full_at_bytes": instants(full_b),
                "full_at_inodes": instants(full_i),
                "deleted_at": instants(p.deleted_us),
            }
        )


def _full_at(
    p: _Params, t_us: int, used: np.ndarray, inodes: np.ndarray, quota: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """First instant >= t_us at which usage reaches today's quota (bytes, inodes), to the second.

    An upper envelope of usage on a daily grid says from which day a crossing is possible; from
    there usage is scanned on a 10-minute grid, two days at a time, and the crossing bisected.
    """
    n = len(p.key)
    out = (np.full(n, NONE_US, dtype=np.int64), np.full(n, NONE_US, dtype=np.int64))
    limits = (
        np.where(np.isnan(quota), np.inf, quota),
        np.where(np.isnan(p.imax), np.inf, p.imax),
    )
    out[0][used >= limits[0]] = t_us
    out[1][inodes >= limits[1]] = t_us
    horizon_days = TRUTH_HORIZON_DAYS
    excursion = (
        p.week_amp + p.noise_amp + p.burst_amp + np.abs(p.rate) * np.fmax(p.change_factor, 1.0)
    )
    # possible[w][i, d]: volume i may reach its limit during day d (an upper envelope says so).
    possible = [np.zeros((n, horizon_days), dtype=bool) for _ in (0, 1)]
    days = t_us + np.arange(horizon_days + 1, dtype=np.int64)[None, :] * DAY_US
    for lo in range(0, n, 20_000):
        block = slice(lo, min(n, lo + 20_000))
        column = _Params(**{f.name: getattr(p, f.name)[block, None] for f in fields(p)})
        g = _trend(column, days)
        top = np.maximum(g[:, :-1], g[:, 1:])
        envelope = top + excursion[block, None]
        possible[0][block] = envelope >= limits[0][block, None]
        # Files only grow with bytes, which stop at the (possibly raised) byte quota.
        quota_then = _quota(column, top)
        clamped = column.clamp & ~np.isnan(quota_then)
        envelope = np.where(clamped, np.fmin(envelope, quota_then), envelope)
        possible[1][block] = envelope / column.bpi + column.i_const >= limits[1][block, None]
    step = 600 * US
    days_per_window = 4
    window = days_per_window * 144
    offsets = np.arange(1, window + 1, dtype=np.int64) * step
    for which in (0, 1):
        # next_day[i, d]: the first possible day >= d (horizon_days when none).
        idx = np.where(possible[which], np.arange(horizon_days), horizon_days)
        idx = np.concatenate([idx, np.full((n, 1), horizon_days)], axis=1)
        next_day = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]
        todo = np.flatnonzero((out[which] == NONE_US) & (next_day[:, 0] < horizon_days))
        day = next_day[todo, 0]
        found_rows, found_hi = [], []
        while len(todo):
            m = len(todo)
            begin = t_us + day.astype(np.int64) * DAY_US
            grid = (begin[:, None] + offsets[None, :]).ravel()
            values = _usage(p.take(np.repeat(todo, window)), grid)[which].reshape(m, window)
            reached = values >= limits[which][todo, None]
            hit = reached.any(axis=1)
            found_rows.append(todo[hit])
            found_hi.append(begin[hit] + offsets[reached[hit].argmax(axis=1)])
            todo = todo[~hit]
            day = np.minimum(day[~hit] + days_per_window, horizon_days)
            day = next_day[todo, day]
            alive = day < horizon_days
            todo, day = todo[alive], day[alive]
        if found_rows:
            rows, hi = np.concatenate(found_rows), np.concatenate(found_hi)
            out[which][rows] = _bisect(p.take(rows), which, limits[which][rows], hi - step, hi)
    for which in (0, 1):
        late = out[which] > t_us + horizon_days * DAY_US
        out[which][late & (out[which] != NONE_US)] = NONE_US
    return out


def _bisect(p: _Params, which: int, limit: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Narrow (lo, hi] to a whole second where usage first reaches `limit` (usage(hi) >= limit)."""
    while True:
        gap = hi - lo
        if (gap <= US).all():
            return hi
        mid = lo + np.maximum(gap // (2 * US), 1) * US
        mid = np.minimum(mid, hi)
        reached = _usage(p, mid)[which] >= limit
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid)
