"""Packages whose names load on first use export exactly what they list."""

import importlib

import pytest

LAZY = ["plait.graphs", "plait.graphs.workflows"]


@pytest.mark.parametrize("name", LAZY)
def test_every_listed_name_resolves_and_nothing_else_is_offered(name):
    package = importlib.import_module(name)
    assert set(package._HOMES) == set(package.__all__)
    for exported in package.__all__:
        assert getattr(package, exported) is not None
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        package.not_a_name  # noqa: B018
