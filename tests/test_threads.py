"""The local engine's threads follow the CPUs this process may use, not a fixed default."""

import os

import pytest

from plait.backends import LocalBackend
from plait.errors import ConfigError
from plait.settings import available_cpus, load_settings


def test_available_cpus_is_the_affinity_mask():
    assert available_cpus() == len(os.sched_getaffinity(0))


def test_local_backend_defaults_to_the_available_cpus(monkeypatch):
    monkeypatch.delenv("PLAIT_N_THREADS", raising=False)
    assert LocalBackend().n_threads == available_cpus()  # no model is loaded for this


def test_the_setting_and_the_argument_win(monkeypatch):
    monkeypatch.setenv("PLAIT_N_THREADS", "3")
    assert LocalBackend().n_threads == 3
    assert LocalBackend(n_threads=1).n_threads == 1


def test_an_empty_variable_means_unset(monkeypatch):
    monkeypatch.setenv("PLAIT_N_THREADS", "")
    assert load_settings().n_threads is None
    assert LocalBackend().n_threads == available_cpus()


def test_a_bad_value_is_a_config_error(monkeypatch):
    monkeypatch.setenv("PLAIT_N_THREADS", "many")
    with pytest.raises(ConfigError, match="n_threads"):
        load_settings()
