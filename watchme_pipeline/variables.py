"""Every environment variable the deployment reads (``settings.load_deployment``), with its
default and what it chooses: the table of docs/configuration.md (``docs.py``). A test fails
when a variable read in settings.py is missing here, or one here is never read."""

from __future__ import annotations

from dataclasses import dataclass

from watchme_pipeline.models.kinds import MODEL_KINDS


@dataclass(frozen=True)
class Variable:
    names: tuple[str, ...]  # one setting; several where they go together
    default: str
    what: str

    @property
    def name(self) -> str:
        return ", ".join(self.names)


VARIABLES = (
    Variable(("WATCHME_DATA_DIR",), "./data", "where the embedded defaults keep their files"),
    Variable(("WATCHME_AUDIO_STORE",), "{data}/audio", "the audio store (recordings and chart "
             "images): a local folder, or s3://bucket/prefix"),
    Variable(("AWS_REGION", "AWS_ENDPOINT_URL_S3"), "(boto3's)", "the S3 store's region and "
             "endpoint (AWS_DEFAULT_REGION, AWS_ENDPOINT_URL also read)"),
    Variable(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
             "(boto3's chain)", "S3 and SQS credentials, handed on as `dg.EnvVar`, never logged"),
    Variable(("WATCHME_DATABASE_URL",), "sqlite:///{data}/watchme.db",
             "the result store, a SQLAlchemy URL (Supabase's Postgres URL included)"),
    Variable(("SUPABASE_URL", "SUPABASE_KEY"), "(none)",
             "Supabase REST, when WATCHME_DATABASE_URL is unset"),
    Variable(("WATCHME_TIMEZONE",), "Asia/Tokyo", "the devices' local day"),
    Variable(("WATCHME_START_DATE",), "2025-01-01", "the first daily partition"),
    Variable(("WATCHME_MODEL_PROFILE",), "standard", "standard checkpoints by id, or tiny "
             "random-weight models (the CLI picks tiny where no real weights can be had)"),
    Variable(tuple(k.variable for k in MODEL_KINDS.values()), "models/kinds.py",
             "a model id or a local path"),
    Variable(("WATCHME_WHISPER_ENGINE",), "faster-whisper", "or openai-whisper"),
    Variable(("WATCHME_EVENT_RUNTIME",), "pytorch", "or onnxruntime: AST exported once "
             "(`make export`), checked against PyTorch"),
    Variable(("WATCHME_QUANTIZE",), "(none)", "`events`: AST on ONNX Runtime int8, weights per "
             "channel (1.8x faster than PyTorch fp32)"),
    Variable(("WATCHME_MEMORY_MB", "WATCHME_MODEL_MEMORY_MB"), "2000", "what the run process "
             "may hold (the second is its old name, which warns)"),
    Variable(("WATCHME_LANGUAGE",), "ja", "transcription language (a Whisper code; 'auto' "
             "detects)"),
    Variable(("WATCHME_PROMPT_LANGUAGE",), "ja", "language of the LLM prompt (ja, en)"),
    Variable(("WATCHME_OTHERS_SPEECH",), "keep", "others' speech where the device has a wearer "
             "profile: keep, or redact (never transcribed, stored or sent to an LLM; counted "
             "and timed only)"),
    Variable(("WATCHME_MOOD_SCORER",), "local", "local, or openai: an OpenAI-compatible "
             "endpoint"),
    Variable(("WATCHME_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"), "gpt-4o-mini",
             "the openai scorer's model, endpoint (none: OpenAI's) and key"),
    Variable(("WATCHME_DEPLOYMENT",), "local", "the executor: local, multiprocess or k8s"),
    Variable(("WATCHME_ALERT_EMAIL_TO", "WATCHME_ALERT_EMAIL_FROM",
              "WATCHME_ALERT_EMAIL_SMTP_HOST", "WATCHME_ALERT_EMAIL_SMTP_PORT",
              "WATCHME_ALERT_EMAIL_SMTP_SECURITY", "WATCHME_ALERT_EMAIL_USER",
              "WATCHME_ALERT_EMAIL_PASSWORD"), "(off)", "mail alerts"),
    Variable(("WATCHME_ALERT_WEBHOOK_URL",), "(off)", "chat webhook alerts (Slack, Mattermost, "
             "Teams)"),
    Variable(("WATCHME_ALERT_GROUP_S",), "300", "failures within this many seconds go out as "
             "one alert"),
    Variable(("WATCHME_CHART_DEADLINE",), "06:00", "when yesterday's charts are overdue"),
    Variable(("WATCHME_SILENT_AFTER_H",), "3", "hours without a recording before a device that "
             "recorded yesterday is silent"),
    Variable(("WATCHME_DIGEST_AT",), "07:00", "when the daily digest is sent"),
    Variable(("WATCHME_UI_URL",), "http://127.0.0.1:3000", "the UI, for links in alerts and "
             "the CLI's output (`make dev PORT=…` sets it)"),
    Variable(("WATCHME_UPLOAD_QUEUE", "AWS_ENDPOINT_URL_SQS"), "(none)", "an SQS queue of S3 "
             "upload notifications (needs the SQL result store)"),
    Variable(("WATCHME_RUN_DELAY_S",), "180", "queue mode: a device-day's run waits this long "
             "for more uploads"),
    Variable(("WATCHME_DEVICE_GROUPS",), "0", "N > 0: partitions are date x N groups of devices"),
    Variable(("WATCHME_AUDIO_RETENTION_DAYS",), "(off)", "N > 0: a daily schedule deletes the "
             "raw audio of recordings older than N days that every stage completed (results "
             "stay)"),
    Variable(("DAGSTER_HOME",), "(ephemeral)", "the Dagster instance the CLI's runs go into "
             "(`make` sets .dagster_home)"),
)
