"""Configuration, parsed in one place: the environment becomes one typed ``Deployment``
(``load_deployment``), and the builders (``definitions.build_resources``) make resources from
it. Nothing else reads the environment. What a run may change is ``PipelineSettings``, a
resource whose defaults come from the deployment.

Every variable, its default and what it chooses: ``variables.VARIABLES``, which
``docs/configuration.md`` shows (``python -m watchme_pipeline docs`` writes it; a test fails
when they differ).

Secrets (AWS keys, SUPABASE_KEY, OPENAI_API_KEY, the alert mail password and webhook URL) are
never read into the deployment: it only notes that they are set, and the builders hand them on
as ``dg.EnvVar``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from watchme_pipeline.alerts import AlertPolicy, parse_clock
from watchme_pipeline.models.catalog import (
    DEFAULT_EMOTION_RUNTIME,
    DEFAULT_EVENT_RUNTIME,
    DEFAULT_WHISPER_ENGINE,
    ModelChoice,
)
from watchme_pipeline.models.kinds import MODEL_KINDS
from watchme_pipeline.partitions import MAX_DEVICE_GROUPS
from watchme_pipeline.run_settings import DEFAULT_MEMORY_MB, PipelineSettings, launch_settings

AWS_SECRET_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
EXECUTORS = ("local", "multiprocess", "k8s")
MOOD_SCORERS = ("local", "openai")
PROMPT_LANGUAGES = ("ja", "en")
# What is kept of others' speech (bystanders) where speech is attributed (stages/speakers.py):
# keep their words, or redact them (never transcribed, stored or sent to an LLM: counted and
# timed only).
OTHERS_SPEECH = ("keep", "redact")
SMTP_SECURITY = ("starttls", "ssl", "none")  # resources/alert_channels.py sends with each


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go (secrets: only whether they are set) and when they are sent."""

    email_to: tuple[str, ...] = ()
    email_from: str = "watchme@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 0
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password_set: bool = False
    webhook_set: bool = False
    policy: AlertPolicy = AlertPolicy()


@dataclass(frozen=True)
class Deployment:
    """Everything the code location is configured with, fixed when it loads."""

    data_dir: Path
    audio_store: str  # a folder, or s3://bucket/prefix
    database_url: str | None  # the SQL result store; None when Supabase REST is the store
    supabase_url: str | None  # Supabase REST (its key: SUPABASE_KEY)
    timezone: str
    start_date: str
    models: ModelChoice
    executor: str = "local"
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    aws_secrets_set: tuple[str, ...] = ()  # which of AWS_SECRET_VARS are set (names only)
    mood_scorer: str = "local"
    llm_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_key_set: bool = False
    language: str = "ja"
    prompt_language: str = "ja"
    others_speech: str = "keep"
    memory_mb: int = DEFAULT_MEMORY_MB
    alerts: AlertSettings = AlertSettings()
    profile_set: bool = True  # WATCHME_MODEL_PROFILE given (else the CLI picks one)
    dagster_home: str | None = None  # DAGSTER_HOME: the instance the CLI writes runs into
    upload_queue: str | None = None  # an SQS queue URL: uploads from S3 notifications
    sqs_endpoint_url: str | None = None
    run_delay_s: int = 180  # a device-day's run waits this long after its oldest new upload
    device_groups: int = 0  # N: partitions are date x N groups of devices; 0: x devices
    audio_retention_days: int = 0  # N > 0: completed recordings' audio deleted after N days

    @property
    def model_cache(self) -> Path:
        return self.data_dir / "models"

    @property
    def result_backend(self) -> str:
        """sql (SQLite or PostgreSQL by URL) or supabase (REST)."""
        return "sql" if self.database_url else "supabase"


def memory_limit_mb(env: Mapping[str, str]) -> int:
    """WATCHME_MEMORY_MB, or its old name WATCHME_MODEL_MEMORY_MB (with a warning)."""
    if env.get("WATCHME_MEMORY_MB"):
        return int(env["WATCHME_MEMORY_MB"])
    if env.get("WATCHME_MODEL_MEMORY_MB"):
        warnings.warn("WATCHME_MODEL_MEMORY_MB is now WATCHME_MEMORY_MB, and limits the whole "
                      "run process, not only the model weights", FutureWarning, stacklevel=2)
        return int(env["WATCHME_MODEL_MEMORY_MB"])
    return DEFAULT_MEMORY_MB


def _one_of(value: str, allowed: tuple[str, ...], var: str) -> str:
    if value not in allowed:
        raise ValueError(f"{var}={value!r}: use one of {', '.join(allowed)}")
    return value


def _number(env: Mapping[str, str], var: str, default: float, kind: type = float) -> float:
    value = env.get(var) or ""
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{var}={value!r}: expected a number") from None
    if number < 0:
        raise ValueError(f"{var}={value!r}: must not be negative")
    return number


def load_alerts(env: Mapping[str, str], timezone: str) -> AlertSettings:
    """The alert channels and policy (docs/operations.md, "Alerts"), validated, naming the
    variable."""
    email_to = tuple(a.strip() for a in (env.get("WATCHME_ALERT_EMAIL_TO") or "").split(",")
                     if a.strip())
    for address in email_to:
        if "@" not in address:
            raise ValueError(f"WATCHME_ALERT_EMAIL_TO: {address!r} is not a mail address")
    return AlertSettings(
        email_to=email_to,
        email_from=env.get("WATCHME_ALERT_EMAIL_FROM") or "watchme@localhost",
        smtp_host=env.get("WATCHME_ALERT_EMAIL_SMTP_HOST") or "localhost",
        smtp_port=int(_number(env, "WATCHME_ALERT_EMAIL_SMTP_PORT", 0, int)),
        smtp_security=_one_of(env.get("WATCHME_ALERT_EMAIL_SMTP_SECURITY") or "starttls",
                              SMTP_SECURITY, "WATCHME_ALERT_EMAIL_SMTP_SECURITY"),
        smtp_user=env.get("WATCHME_ALERT_EMAIL_USER") or None,
        smtp_password_set=bool(env.get("WATCHME_ALERT_EMAIL_PASSWORD")),
        webhook_set=bool(env.get("WATCHME_ALERT_WEBHOOK_URL")),
        policy=AlertPolicy(
            timezone=timezone,
            window_s=int(_number(env, "WATCHME_ALERT_GROUP_S", 300, int)),
            chart_deadline=parse_clock(env.get("WATCHME_CHART_DEADLINE") or "06:00",
                                       "WATCHME_CHART_DEADLINE"),
            silent_after_h=_number(env, "WATCHME_SILENT_AFTER_H", 3.0),
            digest_at=parse_clock(env.get("WATCHME_DIGEST_AT") or "07:00", "WATCHME_DIGEST_AT"),
            ui_url=env.get("WATCHME_UI_URL") or "http://127.0.0.1:3000",
        ),
    )


# Options a deployment no longer chooses (docs/configuration.md, "Options and why"): set,
# they stop the code location with the reason, rather than being silently ignored.
RETIRED = {
    "WATCHME_EMOTION_RUNTIME": "wav2vec2 runs on ONNX Runtime: the same logits (1e-4) as "
    "PyTorch in about 800 MB a step instead of 1,200",
}


def load_deployment(env: Mapping[str, str]) -> Deployment:
    """The deployment the environment describes, validated: a bad value fails at load,
    naming its variable, not later in a run."""
    for var, why in RETIRED.items():
        if env.get(var):
            raise ValueError(f"{var} is retired: {why}. Unset it.")
    data_dir = Path(env.get("WATCHME_DATA_DIR") or "data").resolve()
    database_url = env.get("WATCHME_DATABASE_URL") or None
    supabase = env.get("SUPABASE_URL") if env.get("SUPABASE_KEY") else None
    if not database_url and not supabase:
        database_url = f"sqlite:///{data_dir / 'watchme.db'}"
    audio_store = env.get("WATCHME_AUDIO_STORE") or str(data_dir / "audio")
    if audio_store.startswith("s3://") and not audio_store[len("s3://"):].partition("/")[0]:
        raise ValueError(f"WATCHME_AUDIO_STORE={audio_store!r}: no bucket name")
    deployment = Deployment(
        data_dir=data_dir,
        audio_store=audio_store,
        database_url=database_url,
        supabase_url=None if database_url else supabase,
        timezone=env.get("WATCHME_TIMEZONE") or "Asia/Tokyo",
        start_date=env.get("WATCHME_START_DATE") or "2025-01-01",
        models=ModelChoice(
            profile=env.get("WATCHME_MODEL_PROFILE") or "standard",
            **{k.choice_field: env.get(k.variable) or k.default_model
               for k in MODEL_KINDS.values()},
            whisper_engine=env.get("WATCHME_WHISPER_ENGINE") or DEFAULT_WHISPER_ENGINE,
            event_runtime=env.get("WATCHME_EVENT_RUNTIME") or DEFAULT_EVENT_RUNTIME,
            quantize=env.get("WATCHME_QUANTIZE", ""),
            emotion_runtime=DEFAULT_EMOTION_RUNTIME,
        ),
        executor=_one_of(env.get("WATCHME_DEPLOYMENT") or "local", EXECUTORS,
                         "WATCHME_DEPLOYMENT"),
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        aws_secrets_set=tuple(v for v in AWS_SECRET_VARS if env.get(v)),
        mood_scorer=_one_of(env.get("WATCHME_MOOD_SCORER") or "local", MOOD_SCORERS,
                            "WATCHME_MOOD_SCORER"),
        llm_model=env.get("WATCHME_LLM_MODEL") or "gpt-4o-mini",
        openai_base_url=env.get("OPENAI_BASE_URL") or None,
        openai_key_set=bool(env.get("OPENAI_API_KEY")),
        language=env.get("WATCHME_LANGUAGE") or "ja",
        others_speech=_one_of(env.get("WATCHME_OTHERS_SPEECH") or "keep", OTHERS_SPEECH,
                              "WATCHME_OTHERS_SPEECH"),
        prompt_language=_one_of(env.get("WATCHME_PROMPT_LANGUAGE") or "ja", PROMPT_LANGUAGES,
                                "WATCHME_PROMPT_LANGUAGE"),
        memory_mb=memory_limit_mb(env),
        alerts=load_alerts(env, env.get("WATCHME_TIMEZONE") or "Asia/Tokyo"),
        profile_set=bool(env.get("WATCHME_MODEL_PROFILE")),
        dagster_home=env.get("DAGSTER_HOME") or None,
        upload_queue=env.get("WATCHME_UPLOAD_QUEUE") or None,
        sqs_endpoint_url=env.get("AWS_ENDPOINT_URL_SQS") or env.get("AWS_ENDPOINT_URL") or None,
        run_delay_s=int(_number(env, "WATCHME_RUN_DELAY_S", 180, int)),
        device_groups=int(_number(env, "WATCHME_DEVICE_GROUPS", 0, int)),
        audio_retention_days=int(_number(env, "WATCHME_AUDIO_RETENTION_DAYS", 0, int)),
    )
    if deployment.upload_queue and not deployment.database_url:
        raise ValueError("WATCHME_UPLOAD_QUEUE needs the SQL result store (its upload ledger "
                         "is a table): set WATCHME_DATABASE_URL (Supabase's PostgreSQL URL "
                         "works), not SUPABASE_URL + SUPABASE_KEY")
    if deployment.device_groups > MAX_DEVICE_GROUPS:
        raise ValueError(f"WATCHME_DEVICE_GROUPS={deployment.device_groups}: at most "
                         f"{MAX_DEVICE_GROUPS} (partitions are dates x groups; Dagster "
                         "recommends at most 100,000 per asset)")
    ZoneInfo(deployment.timezone)  # fail at load with the bad name, not later in a run
    return deployment


def quiet_idle_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning: two busy-waiting torch processes on 2
    cores slowed small ops 40-fold. A thread-pool variable for this process and the step
    processes it starts; it must be set before torch is first imported."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def deployment_from_environment() -> Deployment:
    """The process's own deployment: the one place its environment is read (the CLI and
    ``definitions.py`` start here)."""
    import os

    return load_deployment(os.environ)


def with_profile(deployment: Deployment, profile: str) -> Deployment:
    """The same deployment with another model profile (the CLI's choice when none is set)."""
    return dataclasses.replace(deployment,
                               models=dataclasses.replace(deployment.models, profile=profile))


def run_settings(deployment: Deployment) -> PipelineSettings:
    """The deployment's run settings (what the builders read)."""
    return PipelineSettings(language=deployment.language,
                            prompt_language=deployment.prompt_language,
                            others_speech=deployment.others_speech,
                            memory_mb=deployment.memory_mb)


__all__ = ["Deployment", "PipelineSettings", "launch_settings", "load_deployment",
           "run_settings"]
