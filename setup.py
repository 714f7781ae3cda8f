"""Optional C accelerators: built when a compiler is there, skipped otherwise (pure-Python fallbacks)."""
from pathlib import Path

from setuptools import Extension, setup

_SOURCES = {
    "etwtools._speedups": "etwtools/_speedups.c",   # Xpress LZ77 decompression, ETL record walk
    "etwtools._capwalk": "etwtools/_capwalk.c",     # pcap/pcapng record walk
}

setup(ext_modules=[Extension(name, [src], optional=True, extra_compile_args=["-O3"])
                   for name, src in _SOURCES.items() if Path(src).exists()])
