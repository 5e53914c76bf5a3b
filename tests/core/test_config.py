from pathlib import Path

import pytest

from annobridge.config import AdapterConfig, Secret, load_config
from annobridge.errors import UsageError


def test_env_wins_over_file_and_secrets_never_print(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[labelstudio]\nurl = "http://127.0.0.1:8080"\napi_key = "from-file"\n', encoding="utf-8")
    monkeypatch.setenv("ANNOBRIDGE_CONFIG", str(cfg))
    conf = AdapterConfig.for_scheme("labelstudio")
    assert conf.get("url") == "http://127.0.0.1:8080"
    secret = conf.secret("api_key", env="LABEL_STUDIO_API_KEY")
    assert isinstance(secret, Secret) and secret.reveal() == "from-file"
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "from-env")
    secret = AdapterConfig.for_scheme("labelstudio").secret("api_key", env="LABEL_STUDIO_API_KEY")
    assert secret is not None and secret.reveal() == "from-env"
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}"):
        assert "from-env" not in shown


def test_broken_config_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[labelstudio\n", encoding="utf-8")
    with pytest.raises(UsageError, match="Cannot read config file"):
        load_config(bad)
