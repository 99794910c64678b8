"""transcripts: Whisper text per slot, empty for silence and noise → vibe_whisper."""

import datetime as dt

import dagster as dg

from watchme_pipeline.assets.common import (
    ASSET_DEFAULTS,
    PerPartition,
    for_partition,
    per_partition,
    preview,
    run_stage,
    stage_code_version,
)
from watchme_pipeline.audio import VadSettings
from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.models.transcribe import WhisperSettings, transcribe
from watchme_pipeline.resources import AudioStore, ModelRegistry, ResultStore
from watchme_pipeline.settings import load_settings

_LANGUAGE = None if load_settings().language == "auto" else load_settings().language


class StageConfig(dg.Config):
    recompute: bool = False  # also redo slots already completed (e.g. after a model change)


@dg.asset(
    **ASSET_DEFAULTS,
    op_tags=pod_tags("transcripts"),
    kinds={"pytorch", "sql"},
    tags={"stage": "model"},
    pool="models",
    # The VAD decides what Whisper hears: its settings are part of the code version.
    code_version=stage_code_version("whisper",
                                    (WhisperSettings(language=_LANGUAGE), VadSettings())),
    description="Whisper transcript per slot (WATCHME_WHISPER_ENGINE: faster-whisper or "
    "openai-whisper). Silero VAD finds the speech; its segments are packed into windows of "
    "up to 30 s cut at pauses, so silence and noise are never decoded and no word is cut at "
    "a fixed seam. Whisper's own rules decide what is kept: a window is silence when its "
    "no-speech probability is high and its log probability low; a low-confidence or looping "
    "decode is retried at higher temperatures; what still loops is dropped. Written to "
    "`vibe_whisper`.",
)
def transcripts(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    raw_audio: PerPartition,
    audio_store: AudioStore,
    result_store: ResultStore,
    model_registry: ModelRegistry,
) -> PerPartition:
    settings = WhisperSettings(language=_LANGUAGE)

    def one_day(key, day):
        def compute(audios):
            loaded = model_registry.get("whisper")
            results = transcribe(loaded.model, audios, settings)
            now = dt.datetime.now(dt.UTC)
            return [{"device_id": day.device_id, "date": day.date, "time_block": slot,
                     "transcription": r.text, "model": loaded.model_id, "processed_at": now}
                    for slot, r in results.items()]

        meta = run_stage(context, day, stage="transcriptions",
                         raw_audio=for_partition(raw_audio, key, context),
                         audio_store=audio_store, result_store=result_store,
                         recompute=config.recompute, compute=compute, table="vibe_whisper")
        df = result_store.read("vibe_whisper", day.device_id, day.date)
        meta["slots_with_speech"] = int((df.transcription.fillna("") != "").sum())
        meta["model"] = model_registry.model_id("whisper")
        meta["preview"] = preview(df, ["time_block", "transcription"])
        return df, meta

    return per_partition(context, one_day)
