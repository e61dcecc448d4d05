"""SharePoint and Graph settings: 1.x names, the library's address, hosts and credentials checked at start."""

from __future__ import annotations

import pytest

from connectors.onedrive.settings import OneDriveSettings
from connectors.sharepoint.settings import SharePointSettings
from shared.settings import load_settings

pytestmark = pytest.mark.unit

BASE = {"DSXCONNECTOR_SP_HOSTNAME": "contoso.sharepoint.com", "DSXCONNECTOR_SP_SITE_PATH": "/sites/Finance"}


def test_1x_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**BASE, "SP_TENANT_ID": "t", "SP_CLIENT_ID": "c", "SP_CLIENT_SECRET": "s",
                        "DSXCONNECTOR_SP_DRIVE_NAME": "Contracts"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    s = load_settings(SharePointSettings)
    assert (s.sp_tenant_id, s.sp_client_id, s.sp_drive_name) == ("t", "c", "Contracts")
    assert s.sp_client_secret is not None and s.sp_client_secret.get_secret_value() == "s"
    assert (
        s.name == "sharepoint-connector"
        and s.port == 8640
        and s.connector_url.endswith("/sharepoint-connector")
    )
    assert s.redacted()["sp_client_secret"] == "***" and s.redacted()["graph_client_state"] == "***"


def test_a_site_url_names_the_site() -> None:
    s = SharePointSettings(
        sp_tenant_id="t", sp_client_id="c", sp_client_secret="s",
        sp_site_url="https://contoso.sharepoint.com/sites/Legal%20Team/",
    )  # fmt: skip
    assert (s.sp_hostname, s.sp_site_path) == ("contoso.sharepoint.com", "/sites/Legal Team")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"sp_tenant_id": ""}, "SP_TENANT_ID"),
        ({"sp_client_secret": None}, "SP_CLIENT_SECRET"),
        ({"sp_hostname": None, "sp_site_path": None}, "SP_SITE_URL"),
        ({"graph_base_url": "http://graph.local"}, "https"),
        ({"asset": "in", "item_action_move_metainfo": "in"}, "quarantine"),
        ({"sp_site_url": "contoso.sharepoint.com/sites/x"}, "SP_SITE_URL"),
    ],
)
def test_bad_settings_are_refused_naming_the_problem(changes: dict[str, object], named: str) -> None:
    values = {"sp_tenant_id": "t", "sp_client_id": "c", "sp_client_secret": "s",
              "sp_hostname": "contoso.sharepoint.com", "sp_site_path": "/sites/x", **changes}  # fmt: skip
    with pytest.raises(ValueError, match=named):
        SharePointSettings(**values)


def test_onedrive_needs_a_user_or_a_drive() -> None:
    with pytest.raises(ValueError, match="OD_USER"):
        OneDriveSettings(sp_tenant_id="t", sp_client_id="c", sp_client_secret="s")
    s = OneDriveSettings(sp_tenant_id="t", sp_client_id="c", sp_client_secret="s", od_user="ana@contoso.com")
    assert s.name == "onedrive-connector" and s.port == 8650
