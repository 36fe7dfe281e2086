"""Id columns to codes (the engine's only string work): a batch with many distinct ids is looked
up by hash, a small one in the dict; both must give the same codes, learn new ids of a dynamic
codec in the same order, and treat unknown ids, nulls and aliases alike."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from indicators.engine.kernels import Codec


def reference(codec_vocab, values, *, dynamic=False, aliases=None):
    """What the dict alone gives (the path every batch took before the hash lookup)."""
    c = Codec(codec_vocab, dynamic=dynamic, aliases=aliases)
    c.SMALL = 10 ** 9
    return c, c.encode(pa.array(values, pa.string()))


@pytest.mark.parametrize("seed", range(6))
def test_the_hash_lookup_gives_the_dicts_codes(seed):
    g = np.random.default_rng(seed)
    vocab = [f"lamp_pole-road_{g.integers(1e9)}-{k:04d}" for k in range(3000)]
    pool = vocab[:2000] + [f"unknown-{k}" for k in range(300)] + [None]
    values = [pool[i] for i in g.integers(0, len(pool), 5000)]
    for dynamic in (False, True):
        want_codec, want = reference(vocab, values, dynamic=dynamic)
        c = Codec(vocab, dynamic=dynamic)
        got = c.encode(pa.array(values, pa.string()))
        assert (got == want).all()
        assert c.values == want_codec.values                    # a dynamic codec learnt the same ids, in order
        if not dynamic:
            assert (got[[v is not None and v.startswith("unknown") for v in values]] == -1).all()
        assert (got[[v is None for v in values]] == -1).all()
    # dictionary-encoded input, a second batch after learning, and a grown vocabulary
    c = Codec([], dynamic=True)
    first = c.encode(pa.array(values, pa.string()).dictionary_encode())
    again = c.encode(pa.array(values[::-1], pa.string()))
    assert (again == first[::-1]).all() and len(c) == len({v for v in values if v is not None})


def test_aliases_and_a_small_batch_agree():
    vocab = [f"dept-{k}" for k in range(200)]
    aliases = {f"部门{k}": f"dept-{k}" for k in range(200)}
    values = [f"部门{k}" for k in range(100)] + vocab[100:] + ["nobody"]
    _, want = reference(vocab, values, aliases=aliases)
    got = Codec(vocab, aliases=aliases).encode(pa.array(values))
    assert (got == want).all() and got[0] == 0 and got[-1] == -1
    small = Codec(vocab, aliases=aliases).encode(pa.array(values[:5]))
    assert (small == want[:5]).all()


def test_a_vocabulary_whose_members_share_a_hash_falls_back_to_the_dict(monkeypatch):
    import indicators.engine.kernels as K
    vocab = [f"cam-{k}" for k in range(100)]
    values = vocab[::-1] + ["x"]
    real = K.hash_strings
    monkeypatch.setattr(K, "hash_strings", lambda arr, salt=0: real(arr, salt) & np.uint64(0xF))   # 16 buckets
    got = Codec(vocab).encode(pa.array(values))
    assert list(got) == list(range(99, -1, -1)) + [-1]
