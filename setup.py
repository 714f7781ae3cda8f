"""C accelerators, each beside the module it speeds up: built when a compiler is there, skipped otherwise
(pure-Python fallbacks). ETWTOOLS_REQUIRE_C=1 makes a failed build an error (CI)."""

import os
from pathlib import Path

from setuptools import Extension, setup

_SOURCES = {
    "etwtools.parsers.etl._speedups": "parsers/etl/_speedups.c",  # Xpress LZ77 decompression, ETL record walk
    "etwtools.parsers._capwalk": "parsers/_capwalk.c",  # pcap/pcapng record walk
    "etwtools.parsers.etl._columnar": "parsers/etl/_columnar.c",  # byte moves of bulk event decoding
}
_OPTIONAL = os.environ.get("ETWTOOLS_REQUIRE_C", "") not in ("1", "true", "yes")

setup(
    ext_modules=[
        Extension(name, [src], optional=_OPTIONAL, extra_compile_args=["-O3"])
        for name, src in _SOURCES.items()
        if Path(src).exists()
    ]
)
