"""Typed shapes of the Windmill resources this package reads (names = resource type names)."""

from typing import NotRequired, TypedDict


class c_twenty(TypedDict):
    base_url: str
    api_key: str


class c_mautic(TypedDict, total=False):
    base_url: str
    username: str
    password: str
    client_id: str
    client_secret: str


class c_slack_notify(TypedDict, total=False):
    webhook_url: str
    token: str
    channel: str
    api_base_url: str


class c_marketing_routing(TypedDict, total=False):
    segments: dict
    campaigns: dict
    slack_rules: list
    fields: dict
    retries: dict
    stripe: dict
    rate_limits: dict


class c_stripe(TypedDict, total=False):
    signing_secret: str
    previous_signing_secret: str
    api_key: str
    tolerance_seconds: int
    api_base_url: str


class S3Object(TypedDict):
    """A file in the workspace's object storage: Windmill shows an uploader for it (the
    parser reads this name as its `s3_object` type), as wmill.S3Object is."""

    s3: str
    storage: NotRequired[str]


class postgresql(TypedDict):
    """Windmill's own resource type for a PostgreSQL database (every instance has it). Host and
    dbname are required, the rest optional (windmill-common lib.rs `PgDatabase`); a Python
    job gets the stored value as it is, without the defaults Windmill's SQL scripts apply."""

    host: str
    dbname: str
    user: NotRequired[str]
    password: NotRequired[str]
    port: NotRequired[int]
    sslmode: NotRequired[str]
    root_certificate_pem: NotRequired[str]
