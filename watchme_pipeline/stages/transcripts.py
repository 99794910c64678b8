"""transcripts: Whisper text per slot, empty for silence and noise → vibe_whisper."""

from __future__ import annotations

import sqlalchemy as sa

from watchme_pipeline.audio import DecodedAudio, VadSettings
from watchme_pipeline.models.transcribe import WhisperSettings, transcribe
from watchme_pipeline.resources.model_registry import LoadedModel
from watchme_pipeline.schema import metadata, slot_row_columns
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.stage import Stage

vibe_whisper = sa.Table("vibe_whisper", metadata, *slot_row_columns(
    sa.Column("transcription", sa.Text)))


def whisper_settings(settings: PipelineSettings) -> WhisperSettings:
    return WhisperSettings(language=settings.whisper_language)


def transcribe_slots(model: LoadedModel, audios: dict[str, DecodedAudio],
                     settings: WhisperSettings) -> dict[str, dict]:
    return {slot: {"transcription": t.text}
            for slot, t in transcribe(model.model, audios, settings).items()}


def summarize(store, day, rows) -> dict:
    """Counts only: transcripts are people's words and stay in the result store."""
    chars = rows.transcription.fillna("").str.len()
    return {"slots_with_speech": int((chars > 0).sum()), "characters": int(chars.sum())}


STAGE = Stage(
    name="transcripts",
    tables=(vibe_whisper,),
    model_kind="whisper",
    status="transcriptions",
    slot_view=("transcript", 32, lambda row: row.transcription or "(no speech)"),
    # The VAD (run by raw_audio) decides what Whisper hears: its settings count too.
    model_settings=whisper_settings,
    compute=transcribe_slots,
    summarize=summarize,
    # 2: faster-whisper decodes with timestamps (continues after an early end), and a decode
    # still failing at the last temperature is dropped. 3: muffled speech segments (a TV
    # through a wall) are not decoded, and openai-whisper decodes with beam 5 as well.
    # 4: openai-whisper decodes a long window with timestamps and goes on after an early end.
    version=f"4|{VadSettings()!r}",
    description="Whisper transcript per slot (WATCHME_WHISPER_ENGINE: faster-whisper or "
    "openai-whisper). Silero VAD finds the speech; a segment without the 1-4 kHz band (a TV "
    "or voices through a wall, which Whisper cannot read) is not decoded; the others are "
    "packed into windows of up to 30 s cut at pauses, so silence and noise are never "
    "decoded and no word is cut at a fixed seam. Whisper's own rules decide what is kept: a "
    "window is silence when its no-speech probability is high and its log probability low; "
    "a low-confidence or looping decode is retried at higher temperatures; what still loops "
    "or is still unsure after the last one is dropped. A decode that ends early is continued "
    "to the end of its window from its last timestamp (faster-whisper: every window; "
    "openai-whisper: windows over 15 s, the short ones decoded without timestamps). "
    "Written to `vibe_whisper`.",
)
