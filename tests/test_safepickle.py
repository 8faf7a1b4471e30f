"""The restricted unpickler rebuilds numpy data and refuses anything else before it runs."""
import copyreg
import pickle

import numpy as np
import pytest

from arbstyle.safepickle import NUMPY_ALLOWED, UnsafePickleError, load_numpy_pickle, restricted_loads


class _SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


class _EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload_cls, name", [(_SystemPayload, "system"), (_EvalPayload, "builtins.eval")])
def test_planted_payload_is_refused_and_not_executed(tmp_path, payload_cls, name):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"w": np.ones(3), "evil": payload_cls(marker)})
    # Sanity: the payload really is live, so the refusal below is meaningful.
    pickle.loads(data)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UnsafePickleError, match=name):
        restricted_loads(data, NUMPY_ALLOWED)
    assert not marker.exists()

    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        load_numpy_pickle(path)
    assert not marker.exists()


def test_extension_registry_goes_through_the_allow_list(tmp_path):
    # EXT opcodes look globals up via copyreg's registry; they must be checked too.
    import os
    import pickletools
    module = os.system.__module__  # 'posix' on Linux
    copyreg.add_extension(module, "system", 0x7A11)
    try:
        data = pickle.dumps(os.system, protocol=2)
        assert {op.name for op, _, _ in pickletools.genops(data)} & {"EXT1", "EXT2", "EXT4"}
        with pytest.raises(UnsafePickleError, match=f"{module}.system"):
            restricted_loads(data)
    finally:
        copyreg.remove_extension(module, "system", 0x7A11)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_data_round_trips(tmp_path, protocol):
    rng = np.random.default_rng(0)
    obj = {
        "kernel": rng.standard_normal((3, 3, 3, 8)).astype(np.float32),
        "ints": np.arange(5, dtype=np.int64),
        "f16": np.linspace(0, 1, 4, dtype=np.float16),
        "strings": np.array(["a", "bc"]),
        "fortran": np.asfortranarray(rng.standard_normal((4, 3))),
        "scalar": np.float32(1.5),
        "nested": [np.int8(-3), (np.bool_(True), np.dtype("<u2"))],
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    back = load_numpy_pickle(path)
    assert back.keys() == obj.keys()
    for key in ("kernel", "ints", "f16", "strings", "fortran"):
        assert back[key].dtype == obj[key].dtype
        np.testing.assert_array_equal(back[key], obj[key])
    assert back["scalar"] == obj["scalar"] and type(back["scalar"]) is np.float32
    assert back["nested"][0] == -3 and back["nested"][1][1] == np.dtype("<u2")


def test_only_latin1_codec_is_admitted():
    # Protocol 2 spells bytes as _codecs.encode(text, 'latin1'); other codecs are refused.
    import _codecs

    class Other:
        def __reduce__(self):
            return (_codecs.encode, ("abc", "rot13"))

    with pytest.raises(UnsafePickleError, match="rot13"):
        restricted_loads(pickle.dumps(Other(), protocol=2))


def test_persistent_ids_need_a_handler():
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", 7) if isinstance(obj, str) and obj == "ref" else None

    import io
    buf = io.BytesIO()
    P(buf, protocol=2).dump({"x": "ref"})
    with pytest.raises(UnsafePickleError, match="persistent"):
        restricted_loads(buf.getvalue())
    seen = []
    out = restricted_loads(buf.getvalue(), NUMPY_ALLOWED, persistent_load=lambda pid: seen.append(pid) or 42)
    assert out == {"x": 42} and seen == [("storage", 7)]
