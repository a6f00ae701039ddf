"""Build script: cythonizes the fastpath extensions.

``FASTPATH_NO_EXTENSIONS=1`` gives a pure-Python build (the ``_*_py`` twins are used).
``FASTPATH_CYTHON_TRACE=1`` enables line tracing for coverage of ``.pyx`` files.
``FASTPATH_CYTHON_ANNOTATE=1`` writes the HTML annotation next to each ``.pyx``.
"""

import os
import pathlib
import sys

from setuptools import setup

HERE = pathlib.Path(__file__).parent
NO_EXTENSIONS = bool(os.environ.get("FASTPATH_NO_EXTENSIONS"))
TRACE = bool(os.environ.get("FASTPATH_CYTHON_TRACE"))
ANNOTATE = bool(os.environ.get("FASTPATH_CYTHON_ANNOTATE"))


def extensions():
    if NO_EXTENSIONS:
        print("*** fastpath: Pure build (FASTPATH_NO_EXTENSIONS is set)", file=sys.stderr)
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if TRACE else []
    flags = ["-O2", "-Wall", "-Wsign-compare"]
    exts = [
        Extension(
            f"fastpath.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            define_macros=macros,
            extra_compile_args=flags,
        )
        for pyx in sorted((HERE / "fastpath").glob("*.pyx"))
    ]
    print(f"*** fastpath: Accelerated build ({len(exts)} extensions)", file=sys.stderr)
    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
        "embedsignature": True,
        "linetrace": TRACE,
    }
    return cythonize(exts, compiler_directives=directives, annotate=ANNOTATE)


setup(ext_modules=extensions())
