"""The built-in objectives are registered, load lazily, and their listed needs are the classes' (declared once)."""

import pytest

from simla_bench.interfaces import Objective


@pytest.mark.parametrize("name", ["itc", "itm", "mlm", "mim", "xmm", "psl"])
def test_registered_and_needs_match(simla_registry, name):
    entry = simla_registry.get("objective", name)
    cls = entry.load()
    assert issubclass(cls, Objective)
    assert entry.metadata["needs"] == sorted(cls.needs)
    obj = cls(name)
    assert set(obj.options) == set(cls.defaults)


def test_unknown_option_is_refused():
    from simla_bench.errors import ConfigError
    from simla_bench.plugins.objectives.itc import ITC

    with pytest.raises(ConfigError, match="unknown option"):
        ITC("itc", {"queue": 5})
