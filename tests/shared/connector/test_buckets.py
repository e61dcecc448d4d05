"""shared.connector.buckets: a bucket/prefix asset, its quarantine, and keys kept inside them."""

from __future__ import annotations

import pytest

from shared.connector import Filter
from shared.connector.buckets import DOT_AND_EMPTY, BucketAsset, BucketLayout, key_prefix, verdict_tags
from shared.errors import OutsideAssetError, PermanentError
from shared.models import RequestedAction

pytestmark = pytest.mark.unit


def test_an_asset_is_a_bucket_with_an_optional_prefix() -> None:
    assert BucketAsset.parse("bucket") == BucketAsset("bucket", "")
    assert BucketAsset.parse(" bucket/a/b/ ") == BucketAsset("bucket", "a/b/")
    assert str(BucketAsset.parse("bucket//a/")) == "bucket/a"
    for bad in ("", "/", "bucket/a/../b", "bucket/a\x01"):
        with pytest.raises(ValueError):
            BucketAsset.parse(bad)
    assert key_prefix("") == "" and key_prefix("/q/") == "q/"


def test_the_quarantine_is_a_prefix_of_the_asset_bucket_unless_another_bucket_is_named() -> None:
    same = BucketLayout.build("b/in", "dsxconnect-quarantine", None)
    assert same.quarantine == BucketAsset("b", "dsxconnect-quarantine/")
    other = BucketLayout.build("b/in", "", "q")
    assert other.quarantine == BucketAsset("q", "")
    assert BucketLayout.build("b/in", "", None).quarantine is None


def test_a_quarantine_inside_the_asset_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Whoever can upload to the asset can write into such a quarantine (and take its names in
    advance), and nothing put there is scanned: the connector says so when it is configured."""
    inside = [
        BucketLayout.build("b", "dsxconnect-quarantine", None),
        BucketLayout.build("b/in", "in/q", None),
    ]
    apart = [
        BucketLayout.build("b/in", "dsxconnect-quarantine", None),  # same bucket, beside the asset
        BucketLayout.build("b", "dsxconnect-quarantine", "q"),
        BucketLayout.build("b", "", None),  # no quarantine
    ]
    assert [layout.quarantine_in_asset for layout in inside + apart] == [True, True, False, False, False]
    with caplog.at_level("WARNING", logger="shared.connector.buckets"):
        for layout in inside + apart:
            layout.warn_if_quarantine_in_asset("container")
    warned = [r.getMessage() for r in caplog.records if r.name == "shared.connector.buckets"]
    assert len(warned) == 2 and all("separate quarantine container" in line for line in warned), warned
    assert "'b/dsxconnect-quarantine' lies inside the scanned asset 'b'" in warned[0]


def test_a_quarantine_that_is_the_asset_or_holds_it_is_refused() -> None:
    for asset, move_to in (("b/q/in", "q"), ("b/q", "q"), ("b/q", "q/")):
        with pytest.raises(ValueError, match="ITEM_ACTION_MOVE_METAINFO"):
            BucketLayout.build(asset, move_to, None)
    assert BucketLayout.build("b/q/in", "q", "other").quarantine == BucketAsset("other", "q/")
    assert BucketLayout.build("b", "q", None).quarantine == BucketAsset("b", "q/")  # inside: skipped


def test_keys_outside_the_asset_or_in_the_quarantine_are_refused() -> None:
    layout = BucketLayout.build("b/in", "in/quarantine", None)
    assert layout.key("in/docs/a b.pdf") == "in/docs/a b.pdf"
    for bad in ("in/../x", "../in/x", "/in/x", "out/x", "inx/y", "in/quarantine/x", "b/in/x", "in/\x00"):
        with pytest.raises(OutsideAssetError):
            layout.key(bad)


def test_items_skip_other_buckets_folders_the_quarantine_and_filtered_keys() -> None:
    layout = BucketLayout.build("b/in", "in/quarantine", None)
    selected = Filter.parse("-*.tmp")
    assert layout.item("in/a.pdf", 3, selected) is not None
    item = layout.item("in/a.pdf", 3, selected, "b")
    assert item is not None and (item.location, item.metainfo, item.size) == ("in/a.pdf", "b/in/a.pdf", 3)
    for key, bucket in (
        ("in/a.pdf", "c"),
        ("in/dir/", "b"),
        ("in/quarantine/x", "b"),
        ("in/x.tmp", "b"),
        ("x", "b"),
    ):
        assert layout.item(key, 1, selected, bucket) is None, key
    # a key of the asset read_file refuses is still submitted (its result: Not Scanned, and why)
    reported = layout.item("in/../x", 1, selected)
    assert reported is not None and reported.location == "in/../x"
    with pytest.raises(OutsideAssetError):
        layout.key("in/../x")


def test_a_move_keeps_the_key_under_the_quarantine_or_a_requested_destination() -> None:
    layout = BucketLayout.build("b/in", "quarantine", "q")
    move = RequestedAction(type="move")
    assert layout.destination("in/a/x.exe", move) == ("q", "quarantine/in/a/x.exe")
    deeper = RequestedAction.model_validate({"type": "move", "destination": {"prefix": "quarantine/2024"}})
    assert layout.destination("in/x.exe", deeper) == ("q", "quarantine/2024/in/x.exe")
    inside = RequestedAction.model_validate(
        {"type": "move", "destination": {"path": "in/held", "filename": "y"}}
    )
    assert layout.destination("in/a/x.exe", inside) == ("b", "in/held/in/a/y")
    for destination in ({"prefix": "elsewhere"}, {"prefix": "in/../out"}):
        with pytest.raises((OutsideAssetError, ValueError)):
            layout.destination(
                "in/x", RequestedAction.model_validate({"type": "move", "destination": destination})
            )
    with pytest.raises(PermanentError):
        layout.destination(
            "in/x", RequestedAction.model_validate({"type": "move", "destination": {"filename": "a/b"}})
        )
    with pytest.raises(PermanentError, match="no quarantine"):
        BucketLayout.build("b/in", "", None).destination("in/x", move)
    with pytest.raises(PermanentError, match="itself"):
        BucketLayout.build("b", "", None).destination(
            "x", RequestedAction.model_validate({"type": "move", "destination": {"prefix": "/"}})
        )


def test_tags_default_to_the_verdict_and_take_the_requests_own() -> None:
    assert verdict_tags(RequestedAction(type="tag")) == {"Verdict": "Malicious", "ScannedBy": "dsx-connect"}
    assert (
        verdict_tags(RequestedAction(type="tag", tags={"Verdict": "Suspicious", "Case": "7"}))["Verdict"]
        == "Suspicious"
    )


def test_layouts_refuse_the_segments_their_http_stack_would_resolve() -> None:
    """Azure's and Graph's HTTP stacks resolve ``./``: ``./q/x`` is ``q/x`` there."""
    azure = BucketLayout.build("b", "dsxconnect-quarantine", None, refused_segments=frozenset({"."}))
    graph = BucketLayout.build("b", "dsxconnect-quarantine", None, refused_segments=DOT_AND_EMPTY)
    for layout, refused in (
        (azure, ("./dsxconnect-quarantine/x", "a/./b", "a/b/.", "a/.")),
        (graph, ("./dsxconnect-quarantine/x", "a/./b", "a//b", "a/b/.")),
    ):
        for bad in refused:
            with pytest.raises(OutsideAssetError) as refused_error:
                layout.key(bad)
            assert refused_error.value.status_code == 400, bad
            # listed and submitted all the same: never read, its result says why (never skipped)
            assert layout.item(bad, 1, Filter.parse("")) is not None, bad
        assert layout.key("a/b.c") == "a/b.c" and layout.key("a/.hidden") == "a/.hidden"
    assert azure.key("a//b") == "a//b"  # a blob of its own on Azure
    # S3 and GCS keys are literal: "./q/x" is another key than "q/x", readable like any other
    literal = BucketLayout.build("b", "dsxconnect-quarantine", None)
    assert literal.key("./dsxconnect-quarantine/x") == "./dsxconnect-quarantine/x"
    # S3's keys are names: backslashes and control characters pass; ".." never (a path-style URL)
    s3 = BucketLayout.build("b", "dsxconnect-quarantine", None, literal_keys=True)
    assert s3.key("a\\..\\b") == "a\\..\\b" and s3.key("a\tb") == "a\tb"
    for bad in ("a/../b", "../b", "", "a\x00b"):
        with pytest.raises(OutsideAssetError):
            s3.key(bad)


def test_a_case_insensitive_layout_finds_its_quarantine_in_any_case() -> None:
    """Graph paths ignore case: ``DSXCONNECT-QUARANTINE/x`` is the quarantine there."""
    graph = BucketLayout.build(
        "drive/in", "in/Quarantine", None, refused_segments=DOT_AND_EMPTY, casefold=True
    )
    for bad in ("in/QUARANTINE/x", "in/quarantine/x"):
        with pytest.raises(OutsideAssetError):
            graph.key(bad)
        assert graph.item(bad, 1, Filter.parse("")) is None
    assert BucketLayout.build("b/in", "in/Quarantine", None).key("in/quarantine/x") == "in/quarantine/x"


def test_a_prefix_with_dot_or_empty_segments_is_refused() -> None:
    for bad in ("./q", "a/./q", "a//q", "q/."):
        with pytest.raises(ValueError):
            key_prefix(bad)
