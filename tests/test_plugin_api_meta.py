"""The plugin API keeps its promises: every hook documented with its exact signature, every hook tested."""
import inspect
import re
from pathlib import Path

import pytest

from botreports import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if inspect.isfunction(value) and hasattr(value, "botreports_spec"))


def test_every_hookspec_has_a_docstring():
    assert len(HOOKS) == 10
    for name in HOOKS:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_signature(name):
    doc = (ROOT / "docs" / "plugin_hooks.md").read_text()
    # Annotations are strings (postponed evaluation); the heading spells them without quotes.
    signature = f"{name}{inspect.signature(getattr(hookspecs, name))}".replace("'", "")
    assert f"## {signature}" in doc, f"docs/plugin_hooks.md lacks a heading '## {signature}'"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name):
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert re.search(rf"def test_hook_{name}\b", sources), f"no test named test_hook_{name}"
