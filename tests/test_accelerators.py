"""The C accelerators: with ETWTOOLS_REQUIRE_C=1 (CI) every one must have been built, so that the tests
comparing them with the pure-Python paths run instead of skipping; the pure-Python paths are tested
either way (each of those tests switches the accelerator off itself)."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def accelerators() -> dict[str, str]:
    """Module name -> C source, as setup.py builds them."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_SOURCES":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no _SOURCES table")


def test_every_accelerator_sits_beside_the_module_it_speeds_up():
    """etwtools.parsers.X._name is built from parsers/X/_name.c."""
    mods = accelerators()
    assert len(mods) >= 2
    for name, src in mods.items():
        assert (ROOT / src).is_file()
        assert name.startswith("etwtools.parsers.")
        assert src == "/".join(["parsers", *name.split(".")[2:]]) + ".c"


@pytest.mark.parametrize("name", sorted(accelerators()))
def test_accelerator_is_built_when_required(name):
    try:
        importlib.import_module(name)
    except ImportError as e:
        if os.environ.get("ETWTOOLS_REQUIRE_C") in ("1", "true", "yes"):
            pytest.fail(f"{name} was not built (ETWTOOLS_REQUIRE_C=1): {e}")
        pytest.skip(f"{name} not built (a compiler was missing); the pure-Python path is used")
