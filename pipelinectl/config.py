"""Configuration: `pipeline.toml` < environment (`PIPELINECTL_*`) < command-line flags.

Everything is validated before any AWS call, so a bad value never leaves a half-built
pipeline behind. Names are checked against the naming rule of the AWS resource they become.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pipelinectl.errors import UsageError

DEFAULT_NAME = "ecommerce"
DEFAULT_CONFIG_FILE = "pipeline.toml"
ENV_PREFIX = "PIPELINECTL_"
LOCAL_DEFAULT_PORT = 4566
TAG_KEY = "pipelinectl:pipeline"
# Written on the bucket when `up` turns its EventBridge notifications on (resources/bucket.py).
EVENTBRIDGE_TAG_KEY = "pipelinectl:eventbridge-enabled-at"
OUR_TAG_PREFIX = "pipelinectl:"
# Every service the pipeline tags allows 50 user tags per resource, keys of 1-128 and values
# of 0-256 characters (e.g. DynamoDB, "Tagging restrictions in DynamoDB"; IAM API "Tag";
# Tag Editor user guide "Tag naming limits and requirements"); our own tags count too, and
# the bucket carries two of them.
MAX_TAGS = 50
OUR_TAGS_MAX = 2
PLACEHOLDER_ACCOUNT = "000000000000"

LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)

# Scalar settings: key -> the type a file, environment or flag value is read as. Bounds are
# AWS's own limits (see _check_limits); defaults are the Config dataclass's (SETTINGS).
SETTING_TYPES: dict[str, type] = {
    "name": str,
    "region": str,
    "profile": str,
    "endpoint_url": str,
    "alert_threshold": Decimal,
    "alert_email": str,
    "batch_size": int,
    "batching_window_seconds": int,
    "function_timeout": int,
    "function_memory": int,
    "visibility_timeout": int,
    "max_receive_count": int,
    "message_retention_days": int,
    "log_retention_days": int,
    "bucket_versioning": bool,
    "topic_kms_key": str,
    "conflicting_duplicates": str,
    "maximum_concurrency": int,
    "reserved_concurrency": int,
    "part_size_kb": int,
    "split_threshold_kb": int,
}
#: What the processor does with a second, different version of a stored transaction.
DUPLICATE_POLICIES = ("reject", "last_wins")
NAME_KEYS = ("role", "function", "bucket", "ingest_topic", "alerts_topic", "queue", "dlq",
             "table", "rule", "kms_alias", "alarm_prefix")
TABLES = {"names", "tags"}
# Standard AWS variables count as "environment" for the settings they mean, so they beat
# pipeline.toml. AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) botocore applies itself.
AWS_ENV = {"region": ("AWS_REGION", "AWS_DEFAULT_REGION"), "profile": ("AWS_PROFILE",)}


@dataclass(frozen=True)
class NameRule:
    """One AWS naming rule, quoted in the error so the user knows exactly what to fix."""

    pattern: str
    min_len: int
    max_len: int
    text: str

    def check(self, what: str, value: str) -> None:
        if not (self.min_len <= len(value) <= self.max_len) or not re.fullmatch(
            self.pattern, value
        ):
            fix = ("choose another --name" if what == "pipeline" else
                   "choose a shorter or simpler --name, or set it in [names]")
            raise UsageError(
                f"The {what} name {value!r} ({len(value)} characters) breaks the AWS rule: "
                f"{self.text}; {fix}."
            )


NAME_RULES: dict[str, NameRule] = {
    "role": NameRule(r"[\w+=,.@-]+", 1, 64,
                     "IAM role names are 1-64 letters, digits and +=,.@_-"),
    "function": NameRule(r"[A-Za-z0-9_-]+", 1, 64,
                         "Lambda function names are 1-64 letters, digits, - and _"),
    "bucket": NameRule(r"(?!xn--|sthree-)(?!.*(?:-s3alias|--ol-s3)$)"
                       r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", 3, 63,
                       "S3 bucket names are 3-63 lower-case letters, digits, . and -, "
                       "starting and ending with a letter or digit, not starting with xn-- "
                       "or sthree-"),
    "ingest_topic": NameRule(r"[A-Za-z0-9_-]+", 1, 256,
                             "SNS topic names are 1-256 letters, digits, - and _"),
    "queue": NameRule(r"[A-Za-z0-9_-]+", 1, 80,
                      "SQS queue names are 1-80 letters, digits, - and _"),
    "table": NameRule(r"[A-Za-z0-9_.-]+", 3, 255,
                      "DynamoDB table names are 3-255 letters, digits, _ . and -"),
    "rule": NameRule(r"[A-Za-z0-9_.-]+", 1, 64,
                     "EventBridge rule names are 1-64 letters, digits, _ . and -"),
    "kms_alias": NameRule(r"alias/(?!aws/)[A-Za-z0-9/_-]+", 7, 256,
                          "KMS aliases are alias/ then letters, digits, / _ -, "
                          "not under alias/aws/"),
    "alarm_prefix": NameRule(r"[^\x00-\x1f]+", 1, 200,
                             "alarm names are up to 255 printable characters"),
    "pipeline": NameRule(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", 1, 63,
                         "a pipeline name is 1-63 lower-case letters, digits and -, starting "
                         "and ending with a letter or digit (it becomes part of the bucket "
                         "name, which S3 limits to 63 characters)"),
}
NAME_RULES["alerts_topic"] = NAME_RULES["ingest_topic"]
NAME_RULES["dlq"] = NAME_RULES["queue"]
# Names that become resources of one AWS kind: two of them may not be equal (a queue that is
# its own dead-letter queue would loop a bad message forever). Every other kind has one name.
SAME_KIND = {"SQS queues": ("queue", "dlq"), "SNS topics": ("ingest_topic", "alerts_topic")}


@dataclass(frozen=True)
class Config:
    """Validated settings for one pipeline. Resource names need the account, see names()."""

    name: str = DEFAULT_NAME
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    local: bool = False
    #: Where `--local` sends calls (the CLI's --local-port / $PIPELINECTL_LOCAL_PORT).
    local_port: int = LOCAL_DEFAULT_PORT
    alert_threshold: Decimal = Decimal("1000")
    alert_email: str | None = None
    batch_size: int = 10
    batching_window_seconds: int = 0
    function_timeout: int = 30
    function_memory: int = 256
    visibility_timeout: int | None = None
    max_receive_count: int = 5
    message_retention_days: int = 4
    log_retention_days: int = 14
    bucket_versioning: bool = False
    topic_kms_key: str = "pipeline"
    conflicting_duplicates: str = "reject"
    maximum_concurrency: int | None = None
    reserved_concurrency: int | None = None
    part_size_kb: int | None = None
    split_threshold_kb: int | None = None
    name_overrides: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    source: str | None = None

    @property
    def queue_visibility_timeout(self) -> int:
        """AWS advises at least 6x the function timeout so retries don't overlap a run."""
        if self.visibility_timeout is None:
            return 6 * self.function_timeout
        return self.visibility_timeout

    @property
    def part_bytes(self) -> int:
        """Bytes of a large file one invocation reads: by default what the function stores
        in about a third of its timeout at a cautious 32 KiB/s per 256 MB of memory (measured
        locally: ~44 KB/s at 256 MB), at least 256 KiB."""
        if self.part_size_kb is not None:
            return self.part_size_kb * 1024
        rate = 32 * 1024 * max(1.0, self.function_memory / 256)
        return min(max(int(self.function_timeout / 3 * rate), 256 * 1024), 1024 ** 3)

    @property
    def split_threshold_bytes(self) -> int:
        """Files above this are split into parts (default: one part's worth)."""
        if self.split_threshold_kb is not None:
            return self.split_threshold_kb * 1024
        return self.part_bytes

    def names(self, account: str, region: str) -> Names:
        n = self.name
        defaults = {
            "role": f"{n}-processor-role",
            "function": f"{n}-processor",
            "bucket": f"{n}-landing-{account}-{region}",
            "ingest_topic": f"{n}-ingest",
            "alerts_topic": f"{n}-alerts",
            "queue": f"{n}-transactions",
            "dlq": f"{n}-transactions-dlq",
            "table": f"{n}-transactions",
            "rule": f"{n}-object-created",
            "kms_alias": f"alias/{n}-pipeline",
            "alarm_prefix": n,
        }
        defaults.update(self.name_overrides)
        return Names(**defaults)

    def resource_tags(self) -> dict[str, str]:
        return {**self.tags, TAG_KEY: self.name}


#: key -> (type, default), the default written once, in Config.
SETTINGS: dict[str, tuple[type, Any]] = {
    f.name: (SETTING_TYPES[f.name], f.default) for f in fields(Config)
    if f.name in SETTING_TYPES}


@dataclass(frozen=True)
class Names:
    role: str
    function: str
    bucket: str
    ingest_topic: str
    alerts_topic: str
    queue: str
    dlq: str
    table: str
    rule: str
    kms_alias: str
    alarm_prefix: str

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.function}"


def load(flags: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    """Merge file, environment and flags (None means 'not given') and validate."""
    env = os.environ if environ is None else environ
    path, raw = _read_file(flags.get("config") or env.get(ENV_PREFIX + "CONFIG"))
    values: dict[str, Any] = {}
    for key, (kind, default) in SETTINGS.items():
        values[key] = default
        if key in raw:
            values[key] = _coerce(key, raw[key], kind, f"{path}", typed=True)
        env_value = next((env[var] for var in (ENV_PREFIX + key.upper(), *AWS_ENV.get(key, ()))
                          if env.get(var)), None)
        if env_value is not None:
            values[key] = _coerce(key, env_value, kind, f"${ENV_PREFIX}{key.upper()}")
        if flags.get(key) is not None:
            values[key] = _coerce(key, flags[key], kind, f"--{key.replace('_', '-')}")
    _refuse_unknown_environment(env)
    if values["endpoint_url"] is not None:
        check_endpoint_url(values["endpoint_url"], "--endpoint-url")
    if env.get("AWS_ENDPOINT_URL"):  # botocore applies it itself; fail here, in one sentence
        check_endpoint_url(env["AWS_ENDPOINT_URL"], "AWS_ENDPOINT_URL")
    values["local"] = bool(flags.get("local"))
    values["local_port"] = int(flags.get("local_port") or LOCAL_DEFAULT_PORT)
    values["name_overrides"] = _string_table(raw, "names", allowed=NAME_KEYS, path=path)
    values["tags"] = _string_table(raw, "tags", allowed=None, path=path)
    values["source"] = str(path) if path else None
    config = Config(**values)
    validate(config)
    return config


# PIPELINECTL_* variables that are not settings.
OTHER_ENV = {"CONFIG", "LOCAL_PORT", "CACHE_DIR", "MOTO_ANY_VERSION", "TEST_CACHE_DIR",
             "WORKER_TOKEN"}


def _refuse_unknown_environment(env: Mapping[str, str]) -> None:
    """A misspelt PIPELINECTL_BATCHSIZE would otherwise be ignored without a word."""
    known = {key.upper() for key in SETTINGS} | OTHER_ENV
    for var in sorted(env):
        if var.startswith(ENV_PREFIX) and var[len(ENV_PREFIX):] not in known:
            raise UsageError(
                f"Unknown environment variable {var}; settings are PIPELINECTL_ plus one of "
                f"{', '.join(sorted(k.upper() for k in SETTINGS))}."
            )


def _read_file(explicit: str | None) -> tuple[Path | None, dict[str, Any]]:
    path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if not path.exists():
        if explicit:
            raise UsageError(f"Config file {explicit} does not exist; check --config.")
        return None, {}
    where = "--config / PIPELINECTL_CONFIG" if explicit else "the current directory"
    if path.is_dir():
        raise UsageError(f"Config file {path} is a directory, not a file; check {where}.")
    try:
        # utf-8-sig: a byte-order mark (some Windows editors write one) is not content.
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise UsageError(f"Config file {path} cannot be read ({exc.strerror or exc}); check "
                         f"its permissions or {where}.") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML ({exc}); fix the file and re-run.") from exc
    unknown = sorted(set(raw) - set(SETTINGS) - TABLES)
    if unknown:
        raise UsageError(
            f"{path}: unknown key {unknown[0]!r}; valid keys are "
            f"{', '.join(sorted(set(SETTINGS) | TABLES))}."
        )
    return path, raw


def _coerce(key: str, value: Any, kind: type, where: str, typed: bool = False) -> Any:
    """Environment and flags are text; a TOML file has types, and a quoted number there is
    a mistake worth pointing out."""
    problem = f"{where}: {key} must be "
    if typed and kind in (int, bool) and isinstance(value, str):
        raise UsageError(problem + f"{'a whole number' if kind is int else 'true or false'}, "
                         f"not the string {value!r} (drop the quotes).")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise UsageError(problem + f"true or false, not {value!r}.")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise UsageError(problem + f"a whole number, not {value!r}.")
        try:
            return int(value)
        except ValueError:
            raise UsageError(problem + f"a whole number, not {value!r}.") from None
    if kind is Decimal:
        return _decimal(problem, value)
    if not isinstance(value, str):
        raise UsageError(problem + f"a string, not {value!r}.")
    return value


def _decimal(problem: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise UsageError(problem + f"a number, not {value!r}.")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise UsageError(problem + f"a number, not {value!r}.") from None
    if not number.is_finite():
        raise UsageError(problem + f"a finite number, not {value!r}.")
    return number


def _string_table(raw: dict[str, Any], table: str, *, allowed: tuple[str, ...] | None,
                  path: Path | None) -> dict[str, str]:
    section = raw.get(table, {})
    if not isinstance(section, dict):
        raise UsageError(f"{path}: [{table}] must be a table of strings.")
    for key, value in section.items():
        if allowed is not None and key not in allowed:
            raise UsageError(
                f"{path}: unknown key {key!r} in [{table}]; valid keys are {', '.join(allowed)}."
            )
        if not isinstance(value, str):
            raise UsageError(f"{path}: [{table}] {key} must be a string, not {value!r}.")
    return dict(section)


# The shape of every AWS region name (us-east-1, us-gov-west-1, eusc-de-east-1): lower-case
# words joined by hyphens, ending in a number. The partitions' own patterns (botocore's
# partitions.json) are checked once the session exists (clients.ClientFactory.region).
REGION_FORM = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}")


def check_endpoint_url(url: str, where: str) -> None:
    """botocore's own answers to a bad endpoint are a ValueError or an HTTP client's
    "unhandled exception", after credentials and the region were looked up."""
    from urllib.parse import urlsplit

    problem = ""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range
    except ValueError:
        problem, parts, port = "the port must be 1-65535", None, None
    if parts is not None and parts.scheme not in ("http", "https"):
        problem = f"the scheme must be http or https, not {parts.scheme or 'missing'!r}"
    elif parts is not None and not parts.hostname:
        problem = "it has no host"
    elif port == 0:
        problem = "port 0 is not a port to connect to"
    if problem:
        raise UsageError(
            f"{where} {url!r} is not an endpoint URL ({problem}); give one like "
            "http://127.0.0.1:4566 or https://sqs.eu-west-1.amazonaws.com."
        )


def check_region_form(region: str) -> None:
    if not REGION_FORM.fullmatch(region):
        raise UsageError(
            f"{region!r} is not an AWS region name: regions are lower-case words joined by "
            "hyphens and ending in a number, like us-east-1 or eu-west-2; pass a valid "
            "--region."
        )


def validate(config: Config) -> None:
    """AWS's limits, checked here because moto does not enforce them."""
    NAME_RULES["pipeline"].check("pipeline", config.name)
    if config.region is not None:
        check_region_form(config.region)  # before the names: the bucket name contains it
    check_names(config, config.region or "us-east-1", PLACEHOLDER_ACCOUNT)
    _check_limits(config)
    if config.topic_kms_key.removeprefix("alias/") == "aws/sns" or \
            config.topic_kms_key.endswith(":alias/aws/sns"):
        raise UsageError(
            "topic_kms_key cannot be the AWS-managed alias/aws/sns key: EventBridge and "
            "CloudWatch alarm actions cannot publish to topics it encrypts; use \"pipeline\" "
            "or a customer-managed key whose policy lets those services use it."
        )
    _check_topic_key(config.topic_kms_key)
    _check_tags(config.tags)
    if config.alert_email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+",
                                                           config.alert_email):
        raise UsageError(f"alert_email {config.alert_email!r} is not an e-mail address.")


# The forms KMS accepts for a KeyId (KMS API Reference, e.g. DescribeKey: "key ID, key ARN,
# alias name, or alias ARN"; alias names start with alias/; a key ID is a UUID, or mrk- and
# 32 hex digits for a multi-Region key), which SNS's KmsMasterKeyId takes too.
KMS_KEY_FORMS = re.compile(
    r"(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key/|alias/))?"
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
    r"|(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?alias/[A-Za-z0-9/_-]+")


def _check_topic_key(setting: str) -> None:
    if setting in ("pipeline", "none") or KMS_KEY_FORMS.fullmatch(setting):
        return
    raise UsageError(
        f"topic_kms_key {setting!r} is not a KMS key: use \"pipeline\" (the pipeline's own "
        "key), \"none\", or a key id, key ARN, alias/name or alias ARN."
    )


def check_names(config: Config, region: str, account: str) -> None:
    """Every resource name against its AWS rule; run again once the real region is known
    (it may come from the profile), before anything is created."""
    names = config.names(account, region)
    bucket_rule = NAME_RULES["bucket"]
    if "bucket" not in config.name_overrides and len(names.bucket) > bucket_rule.max_len:
        longest = bucket_rule.max_len - (len(names.bucket) - len(config.name))
        raise UsageError(
            f"The pipeline name {config.name!r} ({len(config.name)} characters) is too long: "
            f"the bucket name it makes in {region} would have {len(names.bucket)} characters "
            f"and S3 allows {bucket_rule.max_len}; use at most {max(longest, 0)} characters, "
            "or set the bucket's name in [names] bucket."
        )
    for key in NAME_KEYS:
        NAME_RULES[key].check(key.replace("_", " "), getattr(names, key))
    for kind, keys in SAME_KIND.items():
        first, second = (getattr(names, key) for key in keys)
        if first == second:
            raise UsageError(
                f"The {keys[0].replace('_', ' ')} and the {keys[1].replace('_', ' ')} are "
                f"both named {first!r}, and two {kind} cannot share a name; give each its "
                "own name in [names] of pipeline.toml."
            )


def _check_tags(tags: dict[str, str]) -> None:
    """What every service we tag accepts, so no create call is refused for its tags after
    other resources exist. DynamoDB is the strictest on characters: letters, digits, white
    space and + - = . _ : / (no @), and no key may start with aws: in any case."""
    if len(tags) > MAX_TAGS - OUR_TAGS_MAX:
        raise UsageError(
            f"[tags] has {len(tags)} tags, but AWS allows {MAX_TAGS} per resource and "
            f"pipelinectl adds up to {OUR_TAGS_MAX} of its own; keep at most "
            f"{MAX_TAGS - OUR_TAGS_MAX}."
        )
    for key, value in tags.items():
        if key.lower().startswith(OUR_TAG_PREFIX):
            raise UsageError(
                f"Tag {key} is not allowed: keys starting with {OUR_TAG_PREFIX} are "
                f"pipelinectl's own ({TAG_KEY} marks what each pipeline owns); rename it."
            )
        if key.lower().startswith("aws:") or not 1 <= len(key) <= 128 or len(value) > 256 \
                or not all(re.fullmatch(r"[\w .:/=+\-]*", text) for text in (key, value)):
            raise UsageError(
                f"Tag {key}={value!r} is not allowed: keys are 1-128 characters and may not "
                "start with aws:, values at most 256, both only letters, digits, spaces and "
                "_ . : / = + - (what every service of the pipeline accepts)."
            )


def _in_range(key: str, value: int, low: int, high: int, why: str) -> None:
    if not low <= value <= high:
        raise UsageError(f"{key} = {value} is out of range: {why} ({low}-{high}).")


def _check_limits(config: Config) -> None:
    _in_range("batch_size", config.batch_size, 1, 10000,
              "an SQS event source mapping takes 1 to 10000 records per batch")
    _in_range("batching_window_seconds", config.batching_window_seconds, 0, 300,
              "Lambda's MaximumBatchingWindowInSeconds")
    if config.batch_size > 10 and config.batching_window_seconds < 1:
        raise UsageError(
            "batch_size above 10 needs batching_window_seconds of at least 1 (an AWS rule "
            "for SQS event sources); set batching_window_seconds."
        )
    _in_range("function_timeout", config.function_timeout, 1, 900, "Lambda timeout in seconds")
    _in_range("function_memory", config.function_memory, 128, 10240, "Lambda memory in MB")
    _in_range("max_receive_count", config.max_receive_count, 1, 1000,
              "SQS redrive maxReceiveCount")
    _in_range("message_retention_days", config.message_retention_days, 1, 14,
              "SQS keeps messages 1 to 14 days")
    visibility = config.queue_visibility_timeout
    _in_range("visibility_timeout", visibility, 0, 43200, "SQS visibility timeout in seconds")
    if visibility < 6 * config.function_timeout:
        raise UsageError(
            f"visibility_timeout = {visibility} is less than 6 x function_timeout "
            f"({6 * config.function_timeout}); raise it or lower function_timeout so a "
            "retried batch never overlaps a running one."
        )
    if config.log_retention_days not in LOG_RETENTION_DAYS:
        raise UsageError(
            f"log_retention_days = {config.log_retention_days} is not a CloudWatch Logs "
            f"retention; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}."
        )
    _check_concurrency(config)
    if config.alert_threshold <= 0:
        raise UsageError(f"alert_threshold must be positive, not {config.alert_threshold}.")
    _check_split(config)
    if config.conflicting_duplicates not in DUPLICATE_POLICIES:
        raise UsageError(f"conflicting_duplicates must be \"reject\" or \"last_wins\", not "
                         f"{config.conflicting_duplicates!r}.")


def _check_concurrency(config: Config) -> None:
    """Lambda Developer Guide, "Configuring scaling behavior for SQS event source mappings":
    MaximumConcurrency is 2-1000, and must not exceed the function's reserved concurrency
    ("Otherwise, Lambda may throttle your messages"); PutFunctionConcurrency takes 0 or more
    (0 stops the function: a deliberate pause, so it is allowed with any maximum)."""
    maximum, reserved = config.maximum_concurrency, config.reserved_concurrency
    if maximum is not None:
        _in_range("maximum_concurrency", maximum, 2, 1000,
                  "an SQS event source mapping's ScalingConfig.MaximumConcurrency")
    if reserved is not None and reserved < 0:
        raise UsageError(f"reserved_concurrency = {reserved} is out of range: Lambda's "
                         "reserved concurrency is 0 or more.")
    if maximum is not None and reserved and reserved < maximum:
        raise UsageError(
            f"reserved_concurrency = {reserved} is below maximum_concurrency = {maximum}: "
            "Lambda would throttle the batches above it and their messages could end in the "
            "DLQ; raise reserved_concurrency or lower maximum_concurrency.")


def _check_split(config: Config) -> None:
    """Parts of 64 KiB to 1 GiB (a part holds at least a few rows of at most 16 KiB); a
    threshold below the part size would split a file into a single part."""
    for key in ("part_size_kb", "split_threshold_kb"):
        value = getattr(config, key)
        if value is not None:
            _in_range(key, value, 64, 1024 * 1024, "KiB of a file per invocation")
    if config.split_threshold_bytes < config.part_bytes:
        raise UsageError(
            f"split_threshold_kb = {config.split_threshold_bytes // 1024} is below the part "
            f"size ({config.part_bytes // 1024} KiB); raise it or lower part_size_kb.")
