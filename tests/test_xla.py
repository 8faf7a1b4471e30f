"""The CPU conv flag is applied for the user, but never over their own XLA_FLAGS."""
import os

from arbstyle import _xla


def test_flag_is_added_on_a_recent_jaxlib(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setattr(_xla, "_version", lambda package: (0, 10, 2))
    assert _xla.configure_cpu_flags()
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", _xla._YNN_FLAG]


def test_users_own_choice_wins(monkeypatch):
    mine = "--xla_cpu_experimental_ynn_fusion_type=invalid_but_mine"
    monkeypatch.setenv("XLA_FLAGS", mine)
    assert not _xla.configure_cpu_flags()
    assert os.environ["XLA_FLAGS"] == mine


def test_old_jaxlib_gets_no_flag(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(_xla, "_version", lambda package: (0, 9, 0))
    assert not _xla.configure_cpu_flags()
    assert "XLA_FLAGS" not in os.environ


def test_flag_is_in_effect_in_this_process():
    import jax

    jax.numpy.zeros(1).block_until_ready()  # the backend started with whatever XLA_FLAGS held
    assert _xla._YNN_FLAG in os.environ.get("XLA_FLAGS", "")


def test_cache_entries_left_without_an_access_time_do_not_stop_new_writes(tmp_path):
    # An entry JAX wrote while eviction was off (or a process killed mid-write) has no -atime file; JAX's
    # eviction then fails every later write, and nothing new would ever be cached.
    import subprocess
    import sys

    (tmp_path / "jit_old-0123abcd-cache").write_bytes(b"left by an earlier run")
    code = ("from arbstyle import _xla; _xla.enable_compilation_cache(); import jax, jax.numpy as jnp; "
            "jax.jit(lambda a: a * 3 + 1)(jnp.ones(7)).block_until_ready()")
    env = {**os.environ, "ARBSTYLE_XLA_CACHE": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    new = [p.name for p in tmp_path.glob("*-cache") if not p.name.startswith("jit_old")]
    assert new, sorted(p.name for p in tmp_path.iterdir())
    assert (tmp_path / "jit_old-0123abcd-atime").exists()


def test_an_unreadable_cache_entry_is_rewritten_and_warned_about_once(tmp_path):
    import subprocess
    import sys

    code = ("from arbstyle import _xla; _xla.enable_compilation_cache(); import jax, jax.numpy as jnp; "
            "jax.jit(lambda a: a * 5 - 2)(jnp.ones(9)).block_until_ready()")
    env = {**os.environ, "ARBSTYLE_XLA_CACHE": str(tmp_path)}

    def run() -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                              text=True).stderr

    run()
    entries = sorted(tmp_path.glob("jit_*-cache"))
    assert entries
    good = {p: p.read_bytes() for p in entries}
    for path in entries:  # as a process killed mid-write leaves them
        path.write_bytes(good[path][: len(good[path]) // 3])
    assert "Error reading persistent compilation cache entry" in run()  # once, when it is found
    assert all(p.exists() and p.stat().st_size == len(good[p]) for p in entries)  # written again in full
    assert "Error reading persistent compilation cache entry" not in run()
