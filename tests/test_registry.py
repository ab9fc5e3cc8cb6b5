"""`lstmx.registry.Registry`: the one plug-in registry."""

import pytest

from lstmx.registry import Registry


def test_register_get_and_names():
  reg = Registry("model.kind")
  reg.register("a", 1)

  @reg.register("b")
  def b():
    return 2

  assert reg.get("a") == 1 and reg.get("b") is b
  assert reg.names() == ("a", "b") and "a" in reg and "c" not in reg and len(reg) == 2


def test_unknown_and_duplicate_names_raise_naming_the_option():
  reg = Registry("backend")
  reg.register("scan", object())
  with pytest.raises(ValueError, match=r"backend: expected one of \('scan',\); got 'scna'"):
    reg.get("scna")
  with pytest.raises(ValueError, match="backend: expected a new name; got 'scan'"):
    reg.register("scan", object())
  with pytest.raises(ValueError, match="backend: expected a new name"):
    reg.register_lazy("scan", "json:dumps")


def test_lazy_entries_import_on_first_get():
  reg = Registry("task")
  reg.register_lazy("dumps", "json:dumps")
  assert "dumps" in reg and reg.names() == ("dumps",)
  import json
  assert reg.get("dumps") is json.dumps
  with pytest.raises(ValueError, match="target: expected 'module:attribute'"):
    reg.register_lazy("x", "json.dumps")
