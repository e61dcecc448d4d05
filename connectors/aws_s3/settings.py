"""Settings of the AWS S3 connector (``DSXCONNECTOR_*``; the shared ones are in ``shared.connector.settings``).

| variable | default | meaning |
| --- | --- | --- |
| ``ASSET`` | (required) | ``bucket`` or ``bucket/prefix`` |
| ``ITEM_ACTION_MOVE_METAINFO`` | ``dsxconnect-quarantine`` | quarantine key prefix (in ``AWS_QUARANTINE_BUCKET``, else in the asset's bucket) |
| ``AWS_QUARANTINE_BUCKET`` | – | move quarantined objects to this bucket instead of the asset's |
| ``AWS_ENDPOINT_URL`` (1.x: ``S3_ENDPOINT_URL``) | – | an S3-compatible store or an emulator, e.g. ``http://127.0.0.1:4566`` |
| ``AWS_VERIFY_TLS`` (1.x: ``S3_ENDPOINT_VERIFY``) | true | check the endpoint's certificate |
| ``AWS_REGION`` | SDK chain | region of the bucket (``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / profile otherwise) |
| ``AWS_PROFILE`` | – | a named profile of ``~/.aws/config`` |
| ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` | – | explicit keys; unset: the SDK's chain (environment, profile, IRSA / ECS / EC2 role) |
| ``AWS_ADDRESSING_STYLE`` | ``auto`` | ``path`` for stores that need path-style URLs (MinIO, Ceph) |
| ``AWS_LIST_PAGE_SIZE`` | 1000 | keys per ``ListObjectsV2`` page |
| ``AWS_MAX_POOL_CONNECTIONS`` | 64 | HTTP connections of the one S3 client (reads run in parallel) |
| ``AWS_SNS_AUTO_CONFIRM`` | true | confirm SNS subscriptions posted to ``/webhook/event`` (signed, allowed topic, https on ``sns.<region>.amazonaws.com`` only) |
| ``AWS_SNS_TOPIC_ARNS`` | – | CSV of the SNS topics whose messages are accepted (``*`` matches any run of characters); none: every SNS message is refused |
| ``AWS_SNS_URL_PATTERN`` | ``https://sns.<region>.amazonaws.com[.cn]`` | regular expression the scheme and host of ``SigningCertURL`` and ``SubscribeURL`` must match (tests point it at a local server) |
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from connectors.aws_s3.manifest import MANIFEST
from connectors.aws_s3.sns import DEFAULT_URL_PATTERN
from shared.connector.buckets import BucketAsset, BucketConnectorSettings, BucketLayout, http_url
from shared.settings import load_settings


class AwsS3Settings(BucketConnectorSettings):
    """``ASSET`` is ``bucket`` or ``bucket/prefix``; credentials come from the AWS chain unless given."""

    name: str = MANIFEST.name
    port: int = MANIFEST.port

    aws_quarantine_bucket: str | None = None
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DSXCONNECTOR_AWS_ENDPOINT_URL", "DSXCONNECTOR_S3_ENDPOINT_URL"),
    )
    aws_verify_tls: bool = Field(
        default=True,
        validation_alias=AliasChoices("DSXCONNECTOR_AWS_VERIFY_TLS", "DSXCONNECTOR_S3_ENDPOINT_VERIFY"),
    )
    aws_region: str | None = None
    aws_profile: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    aws_list_page_size: int = Field(default=1000, ge=1, le=1000)
    aws_max_pool_connections: int = Field(default=64, ge=1, le=1000)
    aws_sns_auto_confirm: bool = True
    aws_sns_topic_arns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    aws_sns_url_pattern: str = DEFAULT_URL_PATTERN

    @field_validator("aws_sns_topic_arns", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("aws_sns_url_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("asset")
    @classmethod
    def _bucket_asset(cls, value: str) -> str:
        return str(BucketAsset.parse(value))

    @field_validator("aws_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return http_url(value, "http://127.0.0.1:4566")

    @model_validator(mode="after")
    def _layout(self) -> AwsS3Settings:
        self.layout()
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            raise ValueError("set both DSXCONNECTOR_AWS_ACCESS_KEY_ID and DSXCONNECTOR_AWS_SECRET_ACCESS_KEY")
        return self

    def layout(self) -> BucketLayout:
        """The asset and quarantine (``ValueError`` if the quarantine is the asset or holds it)."""
        return BucketLayout.build(
            self.asset, self.item_action_move_metainfo, self.aws_quarantine_bucket, literal_keys=True
        )


@lru_cache
def get_settings() -> AwsS3Settings:
    """The process's settings, read once from the environment (exits naming a bad variable)."""
    return load_settings(AwsS3Settings)
