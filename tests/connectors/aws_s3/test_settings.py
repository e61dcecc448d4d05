"""AWS S3 settings: 1.x names, credentials redacted, a bad value names the variable."""

from __future__ import annotations

import pytest

from connectors.aws_s3.settings import AwsS3Settings, get_settings
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_match_the_one_x_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "my-bucket/incoming/")
    get_settings.cache_clear()
    s = get_settings()
    get_settings.cache_clear()
    assert (s.name, s.port, s.route_prefix) == ("aws-s3-connector", 8600, "/aws-s3-connector")
    assert s.connector_url == "http://127.0.0.1:8600/aws-s3-connector"
    assert s.asset == "my-bucket/incoming" and s.item_action_move_metainfo == "dsxconnect-quarantine"
    layout = s.layout()
    assert (layout.asset.bucket, layout.asset.prefix) == ("my-bucket", "incoming/")
    assert (layout.quarantine.bucket, layout.quarantine.prefix) == ("my-bucket", "dsxconnect-quarantine/")  # type: ignore[union-attr]


def test_one_x_endpoint_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSXCONNECTOR_ASSET", "b")
    monkeypatch.setenv("DSXCONNECTOR_S3_ENDPOINT_URL", "http://minio:9000/")
    monkeypatch.setenv("DSXCONNECTOR_S3_ENDPOINT_VERIFY", "false")
    s = load_settings(AwsS3Settings)
    assert (s.aws_endpoint_url, s.aws_verify_tls) == ("http://minio:9000", False)
    monkeypatch.setenv("DSXCONNECTOR_AWS_ENDPOINT_URL", "https://s3.example")
    assert load_settings(AwsS3Settings).aws_endpoint_url == "https://s3.example"


def test_secrets_are_redacted() -> None:
    s = AwsS3Settings(
        asset="b", aws_access_key_id="AKIA1", aws_secret_access_key="s3cr3t", aws_session_token="t0k"
    )
    shown = s.redacted()
    assert shown["aws_secret_access_key"] == shown["aws_session_token"] == "***"
    assert "s3cr3t" not in str(shown) and "t0k" not in str(shown)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "DSXCONNECTOR_ASSET"),
        ({"DSXCONNECTOR_ASSET": "b/../x"}, "DSXCONNECTOR_ASSET"),
        ({"DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO": "a/../b"}, "DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO"),
        ({"DSXCONNECTOR_ITEM_ACTION_MOVE_METAINFO": "incoming"}, "ITEM_ACTION_MOVE_METAINFO"),
        ({"DSXCONNECTOR_AWS_ENDPOINT_URL": "minio:9000"}, "DSXCONNECTOR_AWS_ENDPOINT_URL"),
        ({"DSXCONNECTOR_AWS_ACCESS_KEY_ID": "AKIA1"}, "DSXCONNECTOR_AWS_SECRET_ACCESS_KEY"),
        ({"DSXCONNECTOR_AWS_ADDRESSING_STYLE": "sideways"}, "DSXCONNECTOR_AWS_ADDRESSING_STYLE"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    if env:
        monkeypatch.setenv("DSXCONNECTOR_ASSET", "b/incoming")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(AwsS3Settings)
    assert variable in str(raised.value)
