"""Builds tpflax's native part (``csrc/``): oneDNN convolutions for XLA:CPU
(``csrc/onednn_conv.cc``) and the cache that keeps XLA:CPU's large freed host buffers
(``csrc/host_blocks.cc``, no dependency but g++ and glibc).

Optional: when g++, the FFI headers (``jaxlib``) or oneDNN's headers (``onednn-devel-cpu-gomp``,
both from ``[build-system].requires``) are missing, or a build fails, the install still
succeeds without that library: tpflax then runs every convolution on XLA, or leaves host
memory to glibc, and says so (``tpflax --version``).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _data_dir(dist: str, member: str) -> str:
    """The folder holding the file whose path ends with ``member`` (``include/dnnl.hpp``) in an
    installed wheel's data, wherever pip put it (the build's isolated environment or a venv)."""
    from importlib import metadata

    for file in metadata.distribution(dist).files or []:
        if f"/{file}".endswith(member):
            return os.path.dirname(str(file.locate()))
    raise FileNotFoundError(f"{member} in {dist}")


class OptionalBuildExt(build_ext):
    """Builds the extension with the FFI and oneDNN include paths; a failure is a warning, and
    the failed extension is dropped so that nothing later (the editable install's copy into
    src/, the wheel's file list) looks for it."""

    def build_extensions(self) -> None:
        built = []
        for ext in self.extensions:
            try:
                self._configure(ext)
                self.build_extension(ext)
                built.append(ext)
            except Exception as e:  # any failure: install without it
                print(f"tpflax: not building {ext.name} ({e})", file=sys.stderr)
        self.extensions[:] = built

    def _configure(self, ext: Extension) -> None:
        if ext.name != "tpflax._onednn_conv":
            return
        import jaxlib  # a build requirement: the XLA FFI headers

        ext.include_dirs.append(os.path.join(os.path.dirname(jaxlib.__file__), "include"))
        ext.include_dirs.append(_data_dir("onednn-devel-cpu-gomp", "include/dnnl.hpp"))
        ext.library_dirs.append(_data_dir("onednn-cpu-gomp", "/libdnnl.so"))
        # libdnnl.so.3 (onednn-cpu-gomp, a runtime dependency) lives in <venv>/lib: three
        # folders up from <venv>/lib/pythonX.Y/site-packages/tpflax/; an editable install
        # keeps the library in src/tpflax/, so the venv's lib folder is named as well.
        ext.runtime_library_dirs.extend(["$ORIGIN/../../..", os.path.join(sys.prefix, "lib")])

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # a plain shared library loaded with ctypes, not a Python module


setup(
    ext_modules=[
        Extension(
            "tpflax._onednn_conv",
            sources=["csrc/onednn_conv.cc", "csrc/onednn_batch_norm.cc", "csrc/onednn_max_pool.cc"],
            depends=["csrc/onednn_common.h"],
            language="c++",
            extra_compile_args=["-std=c++17", "-O2"],
            libraries=["dnnl", "gomp"],  # gomp: omp_set_num_threads (onednn_common.h)
        ),
        Extension(
            "tpflax._host_blocks",
            sources=["csrc/host_blocks.cc"],
            language="c++",
            extra_compile_args=["-std=c++17", "-O2"],
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
