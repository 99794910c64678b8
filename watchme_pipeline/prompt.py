"""The day's LLM prompt, compatible with the old Japanese vibe prompt.

One line per slot ``[HH-MM] text``; ``(発話なし)`` for a recorded slot with no speech; a slot
with no recording is written out as missing, so the model need not infer gaps. Each line also
carries the slot's top sound events and dominant emotion.
"""

from __future__ import annotations

from watchme_pipeline.scoring import SlotSummary, emotion_name

# vibe_prompt's code version: raise it when the template or the line format changes.
PROMPT_VERSION = "prompt-4"  # 4: each line's speaker (wearer, others) where attributed

TEXT = {
    "ja": {
        "empty_day": "この日の録音はありません。",
        "no_speech": "(発話なし)",
        "missing": "(録音なし)",
        "failed": "(録音エラー)",
        "events": "音",
        "emotion": "感情",
        "wearer": "本人",
        "other": "周りの人",
        "other_speech": "周りの人の発話 {seconds:.0f}秒",
        "speakers": (
            "「本人:」は録音機をつけている本人の発話、「周りの人:」は周りの人の発話です。"
            "本人の発話と感情から本人の心理状態を評価し、周りの人の発話は状況として扱って"
            "ください。周りの人だけが話している時間帯は、本人の気分として扱わないでください。"
        ),
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
        "wearer": "wearer",
        "other": "others",
        "other_speech": "others' speech {seconds:.0f} s",
        "speakers": (
            "Lines marked \"wearer:\" are the person wearing the recorder; \"others:\" are "
            "people around them. Rate the wearer's mood from the wearer's own words and "
            "emotion; treat others' words as context, and a slot where only others spoke as "
            "not the wearer's mood."
        ),
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
    line = f"[{s.slot}] {speech_text(s, t) or t['no_speech']}"
    extras = []
    if s.events:
        extras.append(f"{t['events']}: " + ", ".join(e["label"] for e in s.events[:3]))
    if s.dominant_emotion:
        code = s.dominant_emotion
        extras.append(f"{t['emotion']}: {emotion_name(code, language)} {s.emotion[code]:.2f}")
    return line + (f" | {' | '.join(extras)}" if extras else "")


def speech_text(s: SlotSummary, t: dict[str, str]) -> str | None:
    """The slot's words, each speaker's run marked where speech is attributed (others'
    redacted speech as its length only); else the transcript as it is."""
    if not s.attributed:
        return s.transcript
    runs: list[tuple[str, list[dict]]] = []
    for x in s.lines:
        if runs and runs[-1][0] == x["speaker"]:
            runs[-1][1].append(x)
        else:
            runs.append((x["speaker"], [x]))
    parts = []
    for speaker, lines in runs:
        words = " ".join(x["text"] for x in lines if x["text"])
        if not words:  # redacted: how long others spoke
            words = t["other_speech"].format(seconds=sum(x["end_s"] - x["start_s"]
                                                         for x in lines))
        parts.append(f"{t['wearer' if speaker == 'wearer' else 'other']}: {words}")
    return " / ".join(parts)


def build_prompt(device_id: str, date: str, slots: list[SlotSummary], language: str = "ja") -> str:
    if language not in TEXT:
        raise ValueError(f"unknown prompt language {language!r}: use 'ja' or 'en'")
    t = TEXT[language]
    if is_empty_day(slots):  # nothing to rate: said, not 48 lines of "no recording"
        return f"{t['empty_day']}\ndevice: {device_id}  date: {date}"
    header = t["header"] + (" " + t["speakers"] if any(s.attributed for s in slots) else "")
    lines = [header, f"device: {device_id}  date: {date}", ""]
    lines += [slot_line(s, language) for s in slots]
    lines += ["", t["format"]]
    return "\n".join(lines)
