"""The Yin-Yang dataset (Kriener, Göltz, Petrovici 2021, arXiv:2102.08211), generated here.

Geometry (r_big = 0.5, r_small = 0.1): points (x, y) uniform in [0, 2 r_big]^2, kept only
inside the big circle around (r_big, r_big). Two dots of radius r_small sit at
(r_big/2, r_big) and (3 r_big/2, r_big). Labels follow the authors' ``which_class``:
2 inside either dot; otherwise 1 where their ``is_yin`` test holds (upper half away from the
right dot, plus the ring around the left dot), else 0. Features are [x, y, 1-x, 1-y].

Sampling reproduces the authors' generator draw for draw: with numpy's legacy
``RandomState(seed)``, each sample first draws a goal class ``randint(3)``, then draws
``rand(2) * 2 r_big`` until a point inside the circle has that class (rejection sampling keeps
the classes balanced). We read the same Mersenne-Twister word stream, evaluate every candidate
point at once, and walk the stream with precomputed "next acceptable position" tables, so the
output is bit-identical to theirs (and to their ``publication_data/*.npy``) yet takes milliseconds.
"""

import numpy as np

R_BIG = 0.5
R_SMALL = 0.1
SIZES_SEEDS = {"train": (5000, 42), "val": (1000, 41), "test": (1000, 40)}  # the authors' choice


def yinyang_class(x, y, r_small: float = R_SMALL, r_big: float = R_BIG) -> np.ndarray:
    """Class (int64: 0, 1 or 2 = dot) of points (x, y), arrays broadcast together, float64 math.

    Points outside the big circle get a class too; the generator never keeps them.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    is_yin = (
        (d_right <= r_small)
        | ((d_left > r_small) & (d_left <= 0.5 * r_big))
        | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    is_dot = (d_right < r_small) | (d_left < r_small)
    return np.where(is_dot, 2, is_yin.astype(np.int64)).astype(np.int64)


def _legacy_words(seed: int, n: int) -> np.ndarray:
    """The first ``n`` 32-bit outputs of ``np.random.RandomState(seed)`` (as int64)."""
    bitgen = np.random.MT19937()
    bitgen.state = np.random.RandomState(seed).get_state(legacy=False)
    return bitgen.random_raw(n).astype(np.int64)


def _next_true(ok: np.ndarray, stride: int) -> np.ndarray:
    """For each position p: the smallest q >= p with q = p (mod stride) and ok[q]; len(ok) if none."""
    n = len(ok)
    out = np.empty(n + stride, dtype=np.int64)
    out[n:] = n
    for r in range(stride):
        pos = np.arange(r, n, stride)
        cand = np.where(ok[pos], pos, n)
        out[pos] = np.minimum.accumulate(cand[::-1])[::-1]
    return out


def _walk(words: np.ndarray, size: int, r_small: float, r_big: float):
    """Replay the generator on a word stream; None if the stream is too short."""
    n = len(words)
    # legacy randint(3): one word per try, value = word & 3, the value 3 is rejected
    class_ok = (words & 3) != 3
    # legacy rand(): double from two words, a = w0 >> 5, b = w1 >> 6, (a * 2**26 + b) / 2**53
    doubles = ((words[:-1] >> 5) * 67108864.0 + (words[1:] >> 6)) / 9007199254740992.0
    x = doubles[: n - 3] * 2.0 * r_big  # candidate point starting at word p: x from p, p+1
    y = doubles[2 : n - 1] * 2.0 * r_big  # ... and y from p+2, p+3
    inside = ~(np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big)
    cls = yinyang_class(x, y, r_small, r_big)
    pad = np.zeros(3, dtype=bool)
    next_class = _next_true(class_ok, 1).tolist()
    next_point = [_next_true(np.concatenate([inside & (cls == g), pad]), 4).tolist() for g in range(3)]
    goal_of = (words & 3).tolist()
    starts = np.empty(size, dtype=np.int64)
    labels = np.empty(size, dtype=np.int64)
    p = 0
    for i in range(size):
        p = next_class[p]
        if p >= n:
            return None
        goal = goal_of[p]
        q = next_point[goal][p + 1]
        if q >= n:
            return None
        starts[i], labels[i] = q, goal
        p = q + 4
    return x[starts], y[starts], labels


def generate_yinyang(size: int, seed: int, r_small: float = R_SMALL, r_big: float = R_BIG):
    """``size`` Yin-Yang samples from numpy seed ``seed``, as the authors' generator makes them.

    Returns features float64 (size, 4) = [x, y, 1-x, 1-y] and labels int64 (size,).
    """
    n_words = 24 * size + 256  # about 17 words per sample on average
    while True:
        result = _walk(_legacy_words(seed, n_words), size, r_small, r_big)
        if result is not None:
            break
        n_words *= 2
    x, y, labels = result
    return np.stack([x, y, 1.0 - x, 1.0 - y], axis=1), labels


def load_yinyang_arrays() -> dict:
    """Arrays of the ``yinyang`` dataset: float32 features (N, 4) in [0, 1], int64 labels 0..2."""
    parts = {}
    for part, (size, seed) in SIZES_SEEDS.items():
        feats, labels = generate_yinyang(size, seed)
        parts[f"x_{part}"], parts[f"y_{part}"] = feats.astype(np.float32), labels
    (n_tr, s_tr), (n_va, s_va), (n_te, s_te) = SIZES_SEEDS.values()
    return dict(
        name="yinyang",
        **parts,
        input_shape=(4,),
        n_classes=3,
        description=(
            f"Yin-Yang dataset (Kriener et al. 2021), generated as the authors' code does (r_big {R_BIG}, "
            f"r_small {R_SMALL}, numpy RandomState seeds {s_tr}/{s_va}/{s_te}; bit-identical to their "
            f"publication data): {n_tr:,} train / {n_va:,} validation / {n_te:,} test; "
            "features [x, y, 1-x, 1-y]."
        ),
    )
