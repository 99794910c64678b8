"""The day's LLM prompt, compatible with the old Japanese vibe prompt.

One line per slot ``[HH-MM] text``; ``(発話なし)`` for a recorded slot with no speech; a slot
with no recording is written out as missing, so the model need not infer gaps. Each line also
carries the slot's top sound events and dominant emotion.
"""

from __future__ import annotations

from watchme_pipeline.scoring import SlotSummary, emotion_name

# vibe_prompt's code version: raise it when the template or the line format changes.
PROMPT_VERSION = "prompt-3"

TEXT = {
    "ja": {
        "empty_day": "この日の録音はありません。",
        "no_speech": "(発話なし)",
        "missing": "(録音なし)",
        "failed": "(録音エラー)",
        "events": "音",
        "emotion": "感情",
        "header": (
            "以下はウェアラブル録音機が30分ごとに記録した1日の音声の書き起こしです。"
            "各時間帯の心理状態を -100(とてもネガティブ)から 100(とてもポジティブ)で"
            "評価してください。"
            "(発話なし)の時間帯は 0、(録音なし)と(録音エラー)の時間帯は null にしてください。"
        ),
        "format": (
            "次のJSONだけを返してください: {\"timePoints\": [48個の\"HH:MM\"], "
            "\"emotionScores\": [48個の整数またはnull], \"averageScore\": 数値, "
            "\"positiveHours\": 数値, \"negativeHours\": 数値, \"neutralHours\": 数値, "
            "\"insights\": \"文章\", \"emotionChanges\": [{\"time\": \"HH:MM\", "
            "\"event\": \"文章\", \"score\": 整数}]}"
        ),
    },
    "en": {
        "empty_day": "No recordings on this day.",
        "no_speech": "(no speech)",
        "missing": "(no recording)",
        "failed": "(recording error)",
        "events": "sounds",
        "emotion": "emotion",
        "header": (
            "Below is one day of audio from a wearable recorder, one line per 30-minute slot. "
            "Rate the person's mood in each slot from -100 (very negative) to 100 (very "
            "positive). Use 0 for slots with no speech and null for slots with no recording or "
            "a recording error."
        ),
        "format": (
            "Reply with this JSON only: {\"timePoints\": [48 \"HH:MM\"], \"emotionScores\": "
            "[48 integers or null], \"averageScore\": number, \"positiveHours\": number, "
            "\"negativeHours\": number, \"neutralHours\": number, \"insights\": \"text\", "
            "\"emotionChanges\": [{\"time\": \"HH:MM\", \"event\": \"text\", \"score\": integer}]}"
        ),
    },
}


def is_empty_day(slots: list[SlotSummary]) -> bool:
    """No recording at all, not even one that failed to decode."""
    return not any(s.recorded or s.failed for s in slots)


def empty_day_text(language: str) -> str:
    return TEXT[language if language in TEXT else "ja"]["empty_day"]


def slot_line(s: SlotSummary, language: str = "ja") -> str:
    t = TEXT[language]
    if s.failed:
        return f"[{s.slot}] {t['failed']}"
    if not s.recorded:
        return f"[{s.slot}] {t['missing']}"
    line = f"[{s.slot}] {s.transcript or t['no_speech']}"
    extras = []
    if s.events:
        extras.append(f"{t['events']}: " + ", ".join(e["label"] for e in s.events[:3]))
    if s.dominant_emotion:
        code = s.dominant_emotion
        extras.append(f"{t['emotion']}: {emotion_name(code, language)} {s.emotion[code]:.2f}")
    return line + (f" | {' | '.join(extras)}" if extras else "")


def build_prompt(device_id: str, date: str, slots: list[SlotSummary], language: str = "ja") -> str:
    if language not in TEXT:
        raise ValueError(f"unknown prompt language {language!r}: use 'ja' or 'en'")
    t = TEXT[language]
    if is_empty_day(slots):  # nothing to rate: said, not 48 lines of "no recording"
        return f"{t['empty_day']}\ndevice: {device_id}  date: {date}"
    lines = [t["header"], f"device: {device_id}  date: {date}", ""]
    lines += [slot_line(s, language) for s in slots]
    lines += ["", t["format"]]
    return "\n".join(lines)
