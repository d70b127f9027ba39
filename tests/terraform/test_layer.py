"""The loader's layer (``make layer``): what goes in, where, and Lambda's size limits. The
wheels themselves need a package index; these checks build from a folder made here."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tools import layer


def _site(root: Path) -> Path:
    site = root / "python"
    for relative, content in {
        "xxhash/__init__.py": b"VERSION = '4'\n",
        "xxhash/_xxhash.so": b"\x7fELF" + b"\0" * 64,
        "pyarrow/__init__.py": b"",
        "pyarrow/lib.pyx": b"# cython source\n",
        "pyarrow/include/arrow/api.h": b"// header\n",
        "pyarrow/tests/test_array.py": b"def test(): pass\n",
        "pyarrow/__pycache__/lib.cpython-312.pyc": b"\0",
        "xxhash-4.1.0.dist-info/METADATA": b"Name: xxhash\n",
    }.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return site


def test_the_layer_holds_the_packages_under_python_without_tests_or_build_files(
        tmp_path: Path) -> None:
    site = _site(tmp_path)
    destination = tmp_path / "layer.zip"
    unzipped = layer.write_zip(site, layer.shipped_files(site), destination)
    with zipfile.ZipFile(destination) as archive:
        names = sorted(archive.namelist())
    assert names == ["python/pyarrow/__init__.py", "python/xxhash-4.1.0.dist-info/METADATA",
                     "python/xxhash/__init__.py", "python/xxhash/_xxhash.so"]
    assert unzipped == sum((site / n.removeprefix("python/")).stat().st_size for n in names)


def test_the_same_packages_give_the_same_layer_bytes(tmp_path: Path) -> None:
    """Terraform replaces the layer when its hash changes: an unchanged one must not."""
    site = _site(tmp_path)
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    layer.write_zip(site, layer.shipped_files(site), first)
    (site / "xxhash" / "__init__.py").touch()  # a new mtime, the same content
    layer.write_zip(site, layer.shipped_files(site), second)
    assert first.read_bytes() == second.read_bytes()


def test_lambdas_size_limits_stop_the_build() -> None:
    layer.check_limits(41_000_000, 134_000_000, 400_000)  # what make layer built here
    with pytest.raises(layer.LayerTooBigError, match="over Lambda's 50 MB"):
        layer.check_limits(50_000_001, 100, 0)
    with pytest.raises(layer.LayerTooBigError, match="more than Lambda's 250 MB"):
        layer.check_limits(40_000_000, 249_900_000, 200_000)
