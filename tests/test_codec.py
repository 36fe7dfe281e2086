"""The engine's string work, compiled: event-id hashes must stay bit for bit what they have always
been (a checkpoint's de-duplication state is a set of them), and id columns must get the codes a
plain dict lookup gives - new ids of a dynamic codec learnt in the order they first appear,
unknown ids, nulls and other spellings alike."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from indicators.engine.kernels import Codec


@pytest.fixture(scope="module")
def catalog(inventory):
    from indicators.catalog import load_catalog
    return load_catalog(inventory=inventory)


def reference(codec_vocab, values, *, dynamic=False, aliases=None):
    """The codes a dict gives, row by row (and what a dynamic codec learns)."""
    vocab = list(codec_vocab)
    index = {v: i for i, v in enumerate(vocab)}
    alias = {a: index[v] for a, v in (aliases or {}).items()}
    out = []
    for v in values:
        if v is None:
            out.append(-1)
            continue
        if v not in index and v not in alias and dynamic:
            index[v] = len(vocab)
            vocab.append(v)
        out.append(index.get(v, alias.get(v, -1)))
    return vocab, np.array(out)


_M1, _M2, _GOLD = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(0x9E3779B97F4A7C15)


def reference_hash(values, salt=0) -> np.ndarray:
    """The event-id hash as defined (and as numpy computed it before it was compiled), one
    Python integer at a time."""
    mask = (1 << 64) - 1
    out = []
    for v in values:
        b = (v or "").encode("utf-8")
        h = ((len(b) + salt) * int(_GOLD)) & mask
        for k in range(0, len(b), 8):
            w = int.from_bytes(b[k:k + 8], "little")
            x = ((h ^ w) * int(_M1)) & mask
            h = x ^ (x >> 32)
        h ^= int(_GOLD)
        h ^= h >> 33
        h = (h * int(_M1)) & mask
        h ^= h >> 33
        h = (h * int(_M2)) & mask
        h ^= h >> 33
        out.append(h or 1)
    return np.array(out, dtype=np.uint64)


def test_event_id_hashes_keep_their_definition():
    from indicators.engine.kernels import hash_strings
    g = np.random.default_rng(5)
    alphabet = list("abcXYZ019-_/@.") + ["塔", "广", "é"]
    values = ["".join(g.choice(alphabet, g.integers(0, 41))) for _ in range(3000)] + ["", None, "x" * 200]
    for salt in (0, 7, 0x1000193 * 3 + 7):
        want = reference_hash(values, salt)
        arr = pa.array(values, pa.string())
        assert (hash_strings(arr, salt) == want).all()
        assert (hash_strings(arr.slice(1000, 500), salt) == want[1000:1500]).all()          # an offset slice
        assert (hash_strings(arr.dictionary_encode(), salt) == want).all()
        assert (hash_strings(pa.chunked_array([arr[:10], arr[10:]]), salt) == want).all()
        assert (hash_strings(arr.cast(pa.large_string()), salt) == want).all()
    # pinned values: a change of definition would orphan every checkpoint's de-duplication state
    assert [hex(int(x)) for x in hash_strings(pa.array(["", "w1", "video:cam-1/fall@1712345678901.0"]), 7)] == \
        [hex(int(x)) for x in reference_hash(["", "w1", "video:cam-1/fall@1712345678901.0"], 7)]


@pytest.mark.parametrize("seed", range(6))
def test_the_hash_lookup_gives_the_dicts_codes(seed):
    g = np.random.default_rng(seed)
    vocab = [f"lamp_pole-road_{g.integers(1e9)}-{k:04d}" for k in range(3000)]
    pool = vocab[:2000] + [f"unknown-{k}" for k in range(300)] + [None]
    values = [pool[i] for i in g.integers(0, len(pool), 5000)]
    for dynamic in (False, True):
        want_vocab, want = reference(vocab, values, dynamic=dynamic)
        c = Codec(vocab, dynamic=dynamic)
        got = c.encode(pa.array(values, pa.string()))
        assert (got == want).all()
        assert c.values == want_vocab                           # a dynamic codec learnt the same ids, in order
        if not dynamic:
            assert (got[[v is not None and v.startswith("unknown") for v in values]] == -1).all()
        assert (got[[v is None for v in values]] == -1).all()
    # dictionary-encoded input, a second batch after learning, and a grown vocabulary
    c = Codec([], dynamic=True)
    first = c.encode(pa.array(values, pa.string()).dictionary_encode())
    again = c.encode(pa.array(values[::-1], pa.string()))
    assert (again == first[::-1]).all() and len(c) == len({v for v in values if v is not None})


def test_every_length_finds_its_member_and_no_near_miss():
    """Ids of every length from 0 to 60 bytes (whole words, a partial last word, none), ASCII and
    Chinese, as members, as rows at the very end of a column's bytes (read byte by byte), and as
    strangers one byte away from a member: a trailing NUL, one byte changed at either end, one
    byte shorter."""
    from indicators.engine import compiled as C
    g = np.random.default_rng(3)
    alphabet = list("abz09-_") + ["塔"]
    vocab = sorted({"".join(g.choice(alphabet, n)).encode()[:n].decode(errors="ignore") for n in range(61)
                    for _ in range(3)} | {""})
    codes = {v: k for k, v in enumerate(vocab)}
    lk = C.Lookup(vocab, list(range(len(vocab))))
    strangers = {v + "\x00" for v in vocab} | {v[:-1] + "Q" for v in vocab if v} | {"Q" + v[1:] for v in vocab if v} \
        | {v[:-1] for v in vocab if v}
    strangers -= set(vocab)
    rows = vocab + sorted(strangers) + [None]
    want = [codes.get(v, -1) if v is not None else -1 for v in rows]
    assert list(lk.codes(pa.array(rows, pa.string()))) == want
    for v in vocab:                              # alone in its column: its bytes end the buffer
        assert list(lk.codes(pa.array([v]))) == [codes[v]]
    assert list(lk.codes(pa.array(rows, pa.string()).slice(7))) == want[7:]


def test_aliases_and_a_small_batch_agree():
    vocab = [f"dept-{k}" for k in range(200)]
    aliases = {f"部门{k}": f"dept-{k}" for k in range(200)}
    values = [f"部门{k}" for k in range(100)] + vocab[100:] + ["nobody"]
    _, want = reference(vocab, values, aliases=aliases)
    got = Codec(vocab, aliases=aliases).encode(pa.array(values))
    assert (got == want).all() and got[0] == 0 and got[-1] == -1
    small = Codec(vocab, aliases=aliases).encode(pa.array(values[:5]))
    assert (small == want[:5]).all()


def test_a_crowded_table_still_finds_every_member_and_no_stranger():
    from indicators.engine import compiled as C
    vocab = [f"cam-{k}" for k in range(100)]
    values = vocab[::-1] + ["x", None, "cam-100", "cam-1 "]
    lk = C.Lookup(vocab, list(range(100)), size=128)                   # long chains
    assert list(lk.codes(pa.array(values))) == list(range(99, -1, -1)) + [-1] * 4
    c = Codec(vocab)
    assert list(c.encode(pa.array(values).cast(pa.large_string()))) == list(range(99, -1, -1)) + [-1] * 4
    assert list(c.encode(pa.array([3, 4]).cast(pa.int64()))) == [-1, -1]      # not strings: cast, no member


def test_a_hash_match_is_no_hit_unless_the_bytes_match():
    """A stranger whose 64-bit hash equals a member's (a collision) must not take its code: here
    the table's copy of a member's bytes is altered, so the member's own rows hash-match a slot
    whose bytes differ - as a colliding stranger's would."""
    from indicators.engine import compiled as C
    vocab = ["CT-LAMP-0001-north-bank", "CT-LAMP-0002-north-bank", "short"]
    lk = C.Lookup(vocab, [10, 11, 12])
    rows = pa.array(vocab + ["CT-LAMP-0001-north-bank"])
    assert list(lk.codes(rows)) == [10, 11, 12, 10]
    lk.words[1] ^= np.uint64(1)                   # the second word of entry 0 (its bytes 8..15)
    assert list(lk.codes(rows)) == [-1, 11, 12, -1]


def test_a_dynamic_codec_learning_ids_batch_by_batch_codes_like_one_that_knew_them():
    """Case, vehicle and staff ids are learnt as they come: the lookup takes the new ones in place
    (growing while it would pass half full), and every id keeps the code it first got."""
    from indicators.engine import compiled as C
    g = np.random.default_rng(5)
    ids = [f"GZ-HZ-2025-{k:06d}" for k in range(3000)]
    learner = Codec([], dynamic=True)
    seen: list[str] = []
    for _ in range(60):                               # batches of repeats and a few new ids, nulls
        batch = [ids[int(k)] for k in g.integers(0, min(3000, 50 * (len(seen) // 40 + 1)), 40)] + [None]
        got = learner.encode(pa.array(batch, pa.string()))
        for v in batch:
            if v is not None and v not in seen:
                seen.append(v)
        assert list(got) == [seen.index(v) if v is not None else -1 for v in batch]
    assert learner.values == seen and len(learner._lookup.tab) // 3 >= 2 * len(seen)
    again = pa.array(seen[::-1], pa.string())
    assert (learner.encode(again) == Codec(seen).encode(again)).all()
    rest = [v for v in ids if v not in seen]
    assert list(learner.encode(pa.array(rest + seen[:1]))) == list(range(len(seen), 3000)) + [0]
    lk = C.Lookup(["a"], [0], size=16)
    lk.add([f"x{k}" for k in range(100)], list(range(1, 101)))           # from 16 slots to 256
    assert list(lk.codes(pa.array(["a", "x0", "x99", "x100"]))) == [0, 1, 100, -1]


def test_a_batch_is_put_in_time_order_stably():
    from indicators.engine.compiled import time_order
    g = np.random.default_rng(2)
    for n, span in ((10, 5), (5000, 1900), (100_000, 1000), (3000, 10 ** 9)):
        t = 1_712_345_678_000 + g.integers(0, span, n)
        assert (time_order(t) == np.argsort(t, kind="stable")).all()


def test_runs_of_one_value_take_the_runs_code_and_a_near_miss_in_a_run_does_not():
    """Feeds send runs (a gateway one metric for a whole class of assets): a stranger of the same
    length right after a member, a member after a null or a stranger, "" after "", and runs at the
    very end of the column's bytes (read byte by byte there) must all take the right code."""
    from indicators.engine import compiled as C
    vocab = ["lamp_on", "lamp_of", "ground_light-promenade_east-0020", "ground_light-promenade_east-0021", "", "塔"]
    lk = C.Lookup(vocab, list(range(len(vocab))))
    rows = ["lamp_on", "lamp_on", "lamp_of", "lamp_ox", "lamp_ox", "lamp_on", None, "lamp_on", "", "", "塔", "塔",
            "ground_light-promenade_east-0020", "ground_light-promenade_east-0021", "ground_light-promenade_east-0021",
            "ground_light-promenade_east-0022", "ground_light-promenade_west-0021", "lamp_on", "lamp_on",
            "ground_light-promenade_east-0021", "ground_light-promenade_west-0021"]   # the same but in the middle
    want = [vocab.index(v) if v in vocab else -1 for v in rows]
    want[rows.index(None)] = -1
    assert list(lk.codes(pa.array(rows, pa.string()))) == want
    for k in range(1, len(rows)):                      # every cut: the run's last rows end the buffer
        assert list(lk.codes(pa.array(rows[:k], pa.string()))) == want[:k]
        assert list(lk.codes(pa.array(rows, pa.string()).slice(k))) == want[k:]


@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_latest_state_keeps_each_entitys_newest_reading_of_a_tick(seed, moved):
    """The compiled update of a latest-value state: per entity the reading with the newest event
    time, equal times broken by the id hash's bits (never by arrival), of rows equal in both the
    last; no reading from a NaN value, an unknown entity (-1) or a row the filter drops; entities
    past the table's end grow it; a later tick replaces what it holds.  ``moved``: the service's
    engine moves late events into the next tick (``et`` keeps their own time): judged by that
    time, and one older than what the entity holds does not replace it."""
    from indicators.engine.state import Latest, TickCtx
    g = np.random.default_rng(seed)
    st = Latest(5, lambda b: b["e"], ["v"], where=lambda b: b["keep"])
    want_v, want_t = {}, {}
    for k in (100, 101, 102):
        T = k * 1000
        n = 400
        own = T - g.integers(0, 6, n) * (300 if moved else 10)    # moved: some from ticks before
        b = {"e": g.integers(-1, 40, n), "t": np.full(n, T - 999) if moved else own,
             "tie": g.integers(0, 3, n).astype(np.int64), "v": g.integers(0, 50, n).astype(float),
             "keep": g.random(n) < 0.9}
        if moved:
            b["et"] = own
        b["v"][g.random(n) < 0.1] = np.nan
        best = {}
        for i in range(n):
            e = int(b["e"][i])
            if e < 0 or not b["keep"][i] or np.isnan(b["v"][i]):
                continue
            key = (int(own[i]), int(b["tie"][i]))
            if e not in best or key >= best[e]:
                best[e] = key
        for e, (t_e, _) in best.items():
            i = max(i for i in range(n) if b["e"][i] == e and b["keep"][i] and not np.isnan(b["v"][i])
                    and (int(own[i]), int(b["tie"][i])) == best[e])
            if not moved or e not in want_t or t_e >= want_t[e]:
                want_v[e], want_t[e] = b["v"][i], t_e
        version = st.version
        st.update(b, None, TickCtx(T=T, k=k, tick_ms=1000, day_start=0))
        assert st.version == version + 1
        top = max(top, max(best)) if k > 100 else max(best)
        assert st.n == top + 1
        got = {e: (st.value[e, 0], int(st.time[e, 0])) for e in range(st.n) if not np.isnan(st.value[e, 0])}
        assert got == {e: (want_v[e], want_t[e]) for e in want_v}
    version = st.version
    st.update({"e": np.array([3, -1]), "t": np.array([103_000, 103_000]), "tie": np.zeros(2, np.int64),
               "v": np.array([np.nan, 7.0]), "keep": np.ones(2, bool)}, None, TickCtx(103_000, 103, 1000, 0))
    assert st.version == version                  # no reading at all: nothing changed


def test_the_validity_mask_reads_the_bitmap_of_any_slice():
    from indicators.engine.kernels import valid_mask
    g = np.random.default_rng(9)
    values = [None if g.random() < 0.3 else f"v{k}" for k in range(203)]
    arr = pa.array(values, pa.string())
    for lo in (0, 1, 7, 8, 13, 64, 200):
        for hi in (lo, lo + 1, lo + 3, 203):
            part = arr.slice(lo, max(0, hi - lo))
            assert list(valid_mask(part)) == [v is not None for v in values[lo:hi]]
    assert list(valid_mask(pa.chunked_array([arr.slice(0, 5), arr.slice(5, 9)]))) == [v is not None for v in values[:14]]
    assert list(valid_mask(pa.array([None, None], pa.string()))) == [False, False]
    assert list(valid_mask(pa.array([1.0, 2.0]))) == [True, True]


def test_a_feed_sent_a_few_rows_at_a_time_encodes_as_when_sent_at_once(catalog):
    """A few rows (up to ``FEW``) are coded by dict lookups, more by the compiled table: every
    feed kind's columns come out the same either way, dynamic ids learnt in the same order,
    nulls, unknown ids and a case's department lists (null lists, null and unknown members,
    another spelling of a department) included."""
    from datetime import datetime, timezone

    from indicators.engine.encode import Encoder
    from indicators.engine.kernels import FEW
    from indicators.engine.synthetic import synthetic_feeds
    tables = synthetic_feeds(catalog, datetime(2025, 10, 1, 4, 0, tzinfo=timezone.utc), 300, seed=4)
    cases = tables["case"].slice(0, 6)
    depts = catalog.dims.members["department"]
    alias = next(iter(catalog.dims.department_aliases), depts[0])
    lists = [[depts[0], alias], None, [], [None, "no-such-department", depts[-1]], [depts[1]], [depts[2], depts[2]]]
    tables["case"] = pa.concat_tables([tables["case"], cases.set_column(
        cases.schema.get_field_index("departments"), "departments", pa.array(lists, pa.list_(pa.string())))])
    once, few = Encoder(catalog.dims), Encoder(catalog.dims)
    sizes = list(range(1, FEW + 1)) + [FEW + 5]         # consecutive slices: mostly few rows, some more
    for kind, t in tables.items():
        assert t.num_rows, kind
        if t.num_rows <= 2 * FEW:                     # a feed with few records in the period: its rows again
            t = pa.concat_tables([t] * (2 * FEW // t.num_rows + 1))
        whole = once.encode(kind, t)
        parts, lo = [], 0
        while lo < t.num_rows:
            k = sizes[len(parts) % len(sizes)]
            parts.append(few.encode(kind, t.slice(lo, k)))
            lo += k
        for col, v in whole.items():
            got = np.concatenate([p[col] for p in parts])
            assert np.array_equal(got, v, equal_nan=v.dtype.kind == "f"), (kind, col)
    for name in ("vehicle", "case", "staff"):      # dynamic codecs learnt the same ids in the same order
        assert few.codecs[name].values == once.codecs[name].values and once.codecs[name].values, name
    whole = once.encode("case", tables["case"].slice(tables["case"].num_rows - 6))
    code = {d: k for k, d in enumerate(depts)}
    a = code[catalog.dims.department_aliases.get(alias, alias)]
    assert list(whole["ndept"]) == [2, 0, 0, 3, 1, 2]
    assert list(whole["depts"]) == [(1 << code[depts[0]]) | (1 << a), 0, 0, 1 << code[depts[-1]],
                                    1 << code[depts[1]], 1 << code[depts[2]]]
