from pathlib import Path

import pytest

from kiosk import config
from kiosk.exc import ConfigError


def test_defaults_need_no_file(tmp_path):
    settings = config.load(_empty(tmp_path), env={})
    assert settings["camera.backend"] == "opencv"
    assert settings["policy.no_app"] == "review", "no beacon must not silently deny by default"
    assert settings["store.retention_days"] == 28


def test_defaults_are_what_load_starts_from_and_each_call_is_its_own(tmp_path):
    assert dict(config.load(_empty(tmp_path), env={})) == config.defaults()
    mine = config.defaults()
    mine["ble.required_families"].append("made-up")          # a test changing its own copy
    assert config.defaults()["ble.required_families"] == ["bluezone", "gaen"]
    assert config.load(_empty(tmp_path), env={})["ble.required_families"] == ["bluezone", "gaen"]


def _empty(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path


def test_file_then_environment_then_overrides(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text('[camera]\nbackend = "replay"\nfps = 20\n[ble]\nrequired_families = ["bluezone"]\n')
    settings = config.load(path, env={"KIOSK_CAMERA_FPS": "25", "KIOSK_DOOR_OPEN_SECONDS": "4.5"})
    assert settings["camera.backend"] == "replay"
    assert settings["camera.fps"] == 25
    assert settings["door.open_seconds"] == 4.5
    assert settings["ble.required_families"] == ["bluezone"]
    assert config.load(path, env={}, overrides={"camera.fps": 5})["camera.fps"] == 5


@pytest.mark.parametrize("toml, message", [
    ('[camera]\nfps = "fast"\n', "camera.fps: cannot read 'fast' as int"),
    ('[camera]\nbackend = "webcam"\n', "camera.backend: expected one of opencv, picamera2, replay"),
    ('[camera]\nbakend = "replay"\n', "camera.bakend: unknown setting"),
    ('[door]\nrelay_active_high = "maybe"\n', "door.relay_active_high: cannot read 'maybe' as bool"),
    ('[camera\n', "not valid TOML"),
    ('[policy]\nreuse_window = 172800\n', "policy.reuse_window: expected a value from 0 to 86400, got 172800"),
])
def test_a_bad_setting_is_one_line_naming_the_key(tmp_path, toml, message):
    path = tmp_path / "kiosk.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="KIOSK_WEB_PORT: web.port: cannot read 'http' as int"):
        config.load(env={"KIOSK_WEB_PORT": "http"}, base=config.defaults())


def test_every_setting_is_documented_and_in_the_installed_settings_file():
    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "configuration.md").read_text(encoding="utf-8")
    shipped = config.load(root / "firmware_config" / "kiosk.toml", env={})
    for s in config.SETTINGS:
        assert s.help.endswith("."), s.name
        assert f"`{s.name}`" in docs, f"{s.name} missing from docs/configuration.md"
        if s.choices:
            assert s.default in s.choices, s.name
    assert shipped["camera.backend"] in ("opencv", "picamera2")
    text = (root / "firmware_config" / "kiosk.toml").read_text(encoding="utf-8")
    for s in config.SETTINGS:
        key = s.name.rpartition(".")[2]
        assert f"{key} =" in text, f"{s.name} missing from firmware_config/kiosk.toml"


def test_the_cli_stops_with_one_clear_line(tmp_path):
    from click.testing import CliRunner

    from kiosk.cli import main

    path = tmp_path / "kiosk.toml"
    path.write_text('[policy]\nno_app = "shrug"\n')
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code != 0
    assert "policy.no_app: expected one of review, warn, deny, got 'shrug'" in result.output
