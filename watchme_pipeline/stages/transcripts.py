"""transcripts: Whisper text per slot, empty for silence and noise → vibe_whisper."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio, VadSettings
from watchme_pipeline.models.transcribe import Line, WhisperSettings, transcribe
from watchme_pipeline.resources.model_registry import LoadedModel
from watchme_pipeline.schema import JSON, metadata, slot_row_columns
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.stage import Stage
from watchme_pipeline.stages.speakers import OTHER, UNKNOWN, WEARER, voices_of_day

vibe_whisper = sa.Table("vibe_whisper", metadata, *slot_row_columns(
    sa.Column("transcription", sa.Text),
    # [{start_s, end_s, speaker, text}]: who said what (speaker unknown without a profile;
    # others' lines without text where their speech is redacted) (0007).
    sa.Column("lines", JSON)))


@dataclass(frozen=True)
class TranscriptSettings(WhisperSettings):
    # WATCHME_OTHERS_SPEECH: redact: where speech is attributed, Whisper hears the wearer's
    # turns only, and others' are lines of time without text.
    others_speech: str = "keep"


def transcript_settings(settings: PipelineSettings) -> TranscriptSettings:
    return TranscriptSettings(language=settings.whisper_language,
                              others_speech=settings.others_speech)


def speaker_of(line: Line, speakers: dict[str, list[tuple[int, int]]] | None) -> str:
    """Whose turns a line overlaps most; unknown where speech is not attributed."""
    if speakers is None:
        return UNKNOWN
    overlap = {who: sum(max(0, min(e, line.end) - max(s, line.start)) for s, e in turns)
               for who, turns in speakers.items()}
    return max(overlap, key=overlap.get) if any(overlap.values()) else UNKNOWN


def transcribe_slots(model: LoadedModel, audios: dict[str, DecodedAudio],
                     settings: TranscriptSettings) -> dict[str, dict]:
    redact = settings.others_speech == "redact"
    heard = {slot: a.only(WEARER) if redact else a for slot, a in audios.items()}
    out = {}
    for slot, t in transcribe(model.model, heard, settings).items():
        speakers = audios[slot].speakers
        lines = [{"start_s": round(x.start / SAMPLE_RATE, 2),
                  "end_s": round(x.end / SAMPLE_RATE, 2),
                  "speaker": speaker_of(x, speakers), "text": x.text} for x in t.lines]
        if redact and speakers is not None:  # others' turns: when, and how long, only
            lines += [{"start_s": round(s / SAMPLE_RATE, 2), "end_s": round(e / SAMPLE_RATE, 2),
                       "speaker": OTHER, "text": None} for s, e in speakers.get(OTHER, [])]
        lines.sort(key=lambda x: x["start_s"])
        out[slot] = {"transcription": t.text, "lines": lines}
    return out


def summarize(store, day, rows) -> dict:
    """Counts only: transcripts are people's words and stay in the result store."""
    chars = rows.transcription.fillna("").str.len()
    lines = [x for r in rows.lines if isinstance(r, list) for x in r]
    return {"slots_with_speech": int((chars > 0).sum()), "characters": int(chars.sum()),
            **{f"{who}_lines": sum(1 for x in lines if x["speaker"] == who)
               for who in (WEARER, OTHER)}}


STAGE = Stage(
    name="transcripts",
    tables=(vibe_whisper,),
    model_kind="whisper",
    status="transcriptions",
    deps=("raw_audio", "speakers"),
    voices=voices_of_day,
    slot_view=("transcript", 32, lambda row: row.transcription or "(no speech)"),
    # The VAD (run by raw_audio) decides what Whisper hears: its settings count too.
    model_settings=transcript_settings,
    compute=transcribe_slots,
    summarize=summarize,
    # 2: faster-whisper decodes with timestamps (continues after an early end), and a decode
    # still failing at the last temperature is dropped. 3: muffled speech segments (a TV
    # through a wall) are not decoded, and openai-whisper decodes with beam 5 as well.
    # 4: openai-whisper decodes a long window with timestamps and goes on after an early end.
    # 5: lines with speakers (and redaction of others' speech, WATCHME_OTHERS_SPEECH).
    version=f"5|{VadSettings()!r}",
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
    "Each line (a timed Whisper segment, or a window) is marked with the speaker whose turns "
    "it overlaps most (speakers); with WATCHME_OTHERS_SPEECH=redact, Whisper hears the "
    "wearer's turns only and others' turns are kept as times without words. "
    "Written to `vibe_whisper` (`transcription`, and `lines` with speakers).",
)
