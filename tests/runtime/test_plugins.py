"""Providers that come as plugin packages (onnxruntime-ep-openvino): found by package,
registered once, and handed to onnxruntime through the session options' devices."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest

from edge_infer.runtime import plugins
from edge_infer.runtime import providers as registry
from edge_infer.runtime.errors import ProviderFallbackWarning
from edge_infer.runtime.plugins import Plugin
from edge_infer.runtime.providers import ProviderSpec, resolve, session_providers

FAKE = "FakePluginExecutionProvider"


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch):
    """A registry entry whose plugin package exists, whose 'library' is not a library."""
    (tmp_path / "not_a_library.so").write_bytes(b"not an ELF file")
    (tmp_path / "fake_ep_package.py").write_text(
        "def get_library_path():\n"
        f"    return {str(tmp_path / 'not_a_library.so')!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ProviderSpec("fakeplug", FAKE, "a plugin made for tests", auto_rank=50,
                        aliases={"device": "device_type"},
                        plugin=Plugin("fake_ep_package", defaults={"precision_hint": "f32"}))
    monkeypatch.setitem(registry.PROVIDERS, "fakeplug", spec)
    monkeypatch.setitem(registry._BY_ORT_NAME, FAKE, spec)
    monkeypatch.setattr(plugins, "_OUTCOMES", {})
    return spec


def test_an_installed_plugin_is_available_before_cpu(fake_plugin):
    names = registry.available()
    assert FAKE in names and names[-1] == "CPUExecutionProvider"
    assert names.index(FAKE) == len(names) - 2


def test_a_plugin_is_not_available_without_its_package(fake_plugin, monkeypatch):
    spec = ProviderSpec("fakeplug", FAKE, "its package is not installed",
                        plugin=Plugin("no_such_ep_package_here"))
    monkeypatch.setitem(registry.PROVIDERS, "fakeplug", spec)
    monkeypatch.setitem(registry._BY_ORT_NAME, FAKE, spec)
    assert FAKE not in registry.available()


def test_a_plugin_that_cannot_register_falls_back_with_onnxruntimes_reason(fake_plugin):
    """onnxruntime's own refusal of the library is the reason given, in one warning; auto
    leaves the plugin out silently."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choice = resolve(["fakeplug"])
    assert choice.providers == ["CPUExecutionProvider"] and choice.missing == ["fakeplug"]
    [warning] = caught
    message = str(warning.message)
    assert warning.category is ProviderFallbackWarning
    assert "fakeplug (from the fake_ep_package package) cannot load: " in message
    assert plugins._OUTCOMES[FAKE] is not None  # tried once, remembered
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FAKE not in resolve("auto").providers


def _device(kind):
    return SimpleNamespace(ep_name=FAKE, device=SimpleNamespace(type=SimpleNamespace(name=kind)))


class _Options:
    """Records what a session's options are given, as onnxruntime's SessionOptions takes it."""

    def __init__(self):
        self.devices, self.providers = [], []

    def add_provider_for_devices(self, devices, options):
        self.devices.append(([d.device.type.name for d in devices], options))

    def add_provider(self, name, options):
        self.providers.append((name, options))


@pytest.fixture
def registered(fake_plugin, monkeypatch):
    monkeypatch.setattr(plugins, "_OUTCOMES", {FAKE: None})
    monkeypatch.setattr(plugins, "devices", lambda name: [_device("GPU"), _device("CPU")])
    return fake_plugin


def test_a_plugin_goes_through_the_session_options_devices(registered):
    """A registered plugin's name in providers= would run on CPU: the providers go into the
    session options instead, the CPU device by default, the plugin's defaults under the
    user's options, values as strings."""
    choice = resolve(["fakeplug"], {"fakeplug": {"threads": 2}}, check=lambda s: None)
    assert choice.providers == [FAKE, "CPUExecutionProvider"]
    so = _Options()
    assert session_providers(so, choice) == (None, None)
    assert so.devices == [(["CPU"], {"precision_hint": "f32", "threads": "2"})]
    assert so.providers == []  # CPU closes onnxruntime's list by itself


def test_the_device_option_picks_the_plugins_device(registered):
    choice = resolve(["fakeplug"], {"fakeplug": {"device": "gpu", "precision_hint": "f16"}},
                     check=lambda s: None)
    so = _Options()
    session_providers(so, choice)
    assert so.devices == [(["GPU"], {"precision_hint": "f16"})]


def test_built_in_providers_beside_a_plugin_are_added_by_name(registered):
    choice = resolve(["fakeplug", "cuda"], check=lambda s: None,
                     available_names=[FAKE, "CUDAExecutionProvider", "CPUExecutionProvider"])
    so = _Options()
    session_providers(so, choice)
    assert [d for d, _ in so.devices] == [["CPU"]]
    assert so.providers == [("CUDAExecutionProvider", {"use_tf32": "0"})]


def test_without_a_plugin_the_choice_passes_through_unchanged(fake_plugin):
    choice = resolve(["cpu"])
    so = _Options()
    assert session_providers(so, choice) == (choice.providers, choice.options)
    assert so.devices == [] and so.providers == []


def test_providers_command_lists_an_installed_plugin(fake_plugin):
    """`edge-infer providers` shows what `run` would use: the plugin, and why it cannot load."""
    import json

    from click.testing import CliRunner

    from edge_infer.runtime.cli import cli

    doc = json.loads(CliRunner().invoke(cli, ["providers", "-f", "json"]).output)
    row = next(p for p in doc["providers"] if p["name"] == "fakeplug")
    assert row["available"] is False and "Failed to load library" in row["cannot_load"]
    assert "fakeplug" not in doc["auto"]
