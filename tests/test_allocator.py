"""skinsim.compute.allocator: glibc's thresholds set where glibc is, nothing done elsewhere."""
import platform

import pytest
import torch

from skinsim.compute import allocator
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_on_glibc():
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # setting it again is harmless
    x = torch.randn(256, 256)
    assert torch.equal(x @ x, x @ x)  # memory still works as before


def test_nothing_done_off_glibc(monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory() is False


def test_a_libc_without_mallopt_is_not_an_error(monkeypatch):
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("the glibc path is the one under test")

    def no_libc(name):
        raise OSError(f"cannot load {name}")

    monkeypatch.setattr(allocator.ctypes, "CDLL", no_libc)
    assert allocator.keep_freed_memory() is False
