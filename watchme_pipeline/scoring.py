"""Mood scores: the local rule, and validation of whatever a scorer (local or LLM) replies.

The local rule (deterministic, documented in docs/configuration.md):
  emotion  e = sum(p(label) * valence(label)), valence hap +1, neu 0, ang -1, sad -1
  events   v = clip(sum(score * valence(event)), -1, 1) over the slot's top events that carry
           a valence (laughter, music, cheering +; crying, screaming, sirens, alarms -)
  speech   s = clip((positive words - negative words) / 2, -1, 1) from a small lexicon
  score    round(100 * weighted mean of the parts present), weights 0.6 / 0.25 / 0.15
A slot with no recording (or whose recording could not be decoded) is null; a recorded slot
with nothing to go on is 0.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from watchme_pipeline.slots import SLOTS

TIME_POINTS = tuple(s.replace("-", ":") for s in SLOTS)
NEUTRAL_BAND = 10  # |score| below this counts as neutral time
EMOTION_VALENCE = {"hap": 1.0, "neu": 0.0, "ang": -1.0, "sad": -1.0}
# SUPERB-ER's label codes, spelled out for people (chart, prompt, notable changes).
EMOTION_NAMES = {"en": {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad"},
                 "ja": {"neu": "平静", "hap": "喜び", "ang": "怒り", "sad": "悲しみ"}}
# Events that say nothing happened: never a notable change.
NON_EVENTS = {"Silence"}


def emotion_name(code: str, language: str = "en") -> str:
    return EMOTION_NAMES[language].get(code, code)
EVENT_VALENCE = {
    "Laughter": 1.0, "Baby laughter": 1.0, "Giggle": 1.0, "Belly laugh": 1.0,
    "Chuckle, chortle": 0.8, "Cheering": 0.8, "Applause": 0.6, "Singing": 0.5, "Music": 0.3,
    "Happy music": 0.6, "Children playing": 0.4, "Purr": 0.4,
    "Bird vocalization, bird call, bird song": 0.2,
    "Crying, sobbing": -1.0, "Baby cry, infant cry": -0.8, "Screaming": -1.0, "Wail, moan": -0.8,
    "Whimper": -0.6, "Groan": -0.5, "Sigh": -0.3, "Shout": -0.4, "Yell": -0.5, "Siren": -0.3,
    "Alarm": -0.3, "Smoke detector, smoke alarm": -0.5, "Sad music": -0.4, "Angry music": -0.4,
    "Traffic noise, roadway noise": -0.1, "Jackhammer": -0.3,
}
POSITIVE_WORDS = ("嬉しい", "うれしい", "楽しい", "ありがとう", "美味しい", "おいしい", "好き",
                  "最高", "良かった", "よかった", "happy", "great", "thanks", "love", "fun")
NEGATIVE_WORDS = ("疲れた", "つかれた", "嫌", "いや", "悲しい", "辛い", "つらい", "怒", "最悪",
                  "痛い", "tired", "sad", "angry", "hate", "awful")
WEIGHTS = {"emotion": 0.6, "events": 0.25, "speech": 0.15}


@dataclass
class SlotSummary:
    slot: str
    recorded: bool = False  # a recording exists and decoded
    failed: bool = False  # a recording exists but could not be used
    transcript: str | None = None
    events: list[dict] = field(default_factory=list)
    emotion: dict[str, float] | None = None  # the wearer's, where speech is attributed
    # [{start_s, end_s, speaker, text}] (vibe_whisper.lines); speaker wearer/other/unknown.
    lines: list[dict] = field(default_factory=list)

    @property
    def dominant_emotion(self) -> str | None:
        return max(self.emotion, key=self.emotion.get) if self.emotion else None

    @property
    def attributed(self) -> bool:
        """Whether its lines say who spoke (the device has a wearer profile)."""
        return any(x["speaker"] != "unknown" for x in self.lines)

    def words_of(self, speaker: str) -> str:
        return " ".join(x["text"] for x in self.lines if x["speaker"] == speaker and x["text"])

    @property
    def own_words(self) -> str | None:
        """What the wearer said: their lines where attributed, else the whole transcript."""
        return self.words_of("wearer") if self.attributed else self.transcript


def local_slot_score(s: SlotSummary) -> int | None:
    if not s.recorded:
        return None
    parts: dict[str, float] = {}
    if s.emotion:
        parts["emotion"] = sum(p * EMOTION_VALENCE.get(k, 0.0) for k, p in s.emotion.items())
    valenced = [e for e in s.events if e["label"] in EVENT_VALENCE]
    if valenced:
        v = sum(e["score"] * EVENT_VALENCE[e["label"]] for e in valenced)
        parts["events"] = max(-1.0, min(1.0, v))
    if s.own_words:  # the wearer's words: others' moods are not the wearer's
        text = s.own_words.lower()
        pos = sum(text.count(w) for w in POSITIVE_WORDS)
        neg = sum(text.count(w) for w in NEGATIVE_WORDS)
        if pos or neg:
            parts["speech"] = max(-1.0, min(1.0, (pos - neg) / 2))
    if not parts:
        return 0
    total = sum(WEIGHTS[k] for k in parts)
    return round(100 * sum(WEIGHTS[k] * v for k, v in parts.items()) / total)


class MalformedReply(ValueError):
    """A scorer reply that cannot be turned into a valid day; the message says why."""


@dataclass
class MoodResult:
    vibe_scores: list[int | None]
    average_score: float | None
    positive_hours: float
    negative_hours: float
    neutral_hours: float
    insights: str
    vibe_changes: list[dict]
    warnings: list[str]


def _parse_json(raw: str | dict) -> dict:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise MalformedReply("empty reply")
    text = raw.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise MalformedReply("no JSON object in reply")
    try:
        obj = json.loads(text[start : end + 1], parse_constant=lambda c: None)  # NaN -> null
    except json.JSONDecodeError as exc:
        raise MalformedReply(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedReply("reply JSON is not an object")
    return obj


def _as_score(value) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(max(-100, min(100, round(value))))


def _normalise_time(t) -> str | None:
    m = re.fullmatch(r"\s*(\d{1,2})[:\-](\d{2})\s*", str(t))
    if not m:
        return None
    tp = f"{int(m[1]):02d}:{m[2]}"
    return tp if tp in TIME_POINTS else None


# Part of mood_chart's code version: raise it when validation or the day's figures change.
RULES_VERSION = "rules-1"


def day_figures(scores: list[int | None]) -> tuple[float | None, float, float, float]:
    known = [s for s in scores if s is not None]
    average = round(sum(known) / len(known), 1) if known else None
    pos = 0.5 * sum(1 for s in known if s >= NEUTRAL_BAND)
    neg = 0.5 * sum(1 for s in known if s <= -NEUTRAL_BAND)
    return average, pos, neg, 0.5 * len(known) - pos - neg


def validate_reply(raw: str | dict, recorded: set[str]) -> MoodResult:
    """Turn a reply into exactly 48 clamped scores; raise MalformedReply if it cannot be."""
    obj = _parse_json(raw)
    warnings: list[str] = []
    scores = obj.get("emotionScores")
    if not isinstance(scores, list):
        raise MalformedReply("emotionScores missing or not a list")
    points = obj.get("timePoints")
    if points is not None:
        if not isinstance(points, list) or len(points) != len(scores):
            raise MalformedReply("timePoints and emotionScores differ in length")
        by_time: dict[str, object] = {}
        for t, v in zip(points, scores):
            tp = _normalise_time(t)
            if tp is None:
                raise MalformedReply(f"unknown time point {t!r}")
            if tp in by_time:
                raise MalformedReply(f"time point {tp} given twice")
            by_time[tp] = v
        if len(by_time) != len(TIME_POINTS):
            raise MalformedReply(f"{len(by_time)} time points, expected 48")
        aligned = [by_time[tp] for tp in TIME_POINTS]
    else:
        if len(scores) < len(SLOTS):
            raise MalformedReply(f"{len(scores)} scores, expected 48")
        if len(scores) > len(SLOTS):
            warnings.append(f"{len(scores)} scores without timePoints: kept the first 48")
        aligned = scores[: len(SLOTS)]
    final: list[int | None] = []
    for slot, value in zip(SLOTS, aligned):
        score = _as_score(value)
        if slot not in recorded and score is not None:
            warnings.append(f"{slot}: score for a slot with no recording forced to null")
            score = None
        final.append(score)
    average, pos, neg, neutral = day_figures(final)
    changes = []
    for change in obj.get("emotionChanges") or []:
        if not isinstance(change, dict):
            continue
        tp = _normalise_time(change.get("time", ""))
        if tp is None or tp.replace(":", "-") not in recorded:
            continue
        changes.append({
            "time": tp, "event": str(change.get("event", ""))[:200],
            "score": _as_score(change.get("score")),
        })
    insights = obj.get("insights")
    return MoodResult(
        vibe_scores=final, average_score=average, positive_hours=pos, negative_hours=neg,
        neutral_hours=neutral, insights=str(insights)[:2000] if insights else "",
        vibe_changes=changes, warnings=warnings,
    )


def local_reply(slots: list[SlotSummary], min_change: int = 40) -> dict:
    """What the local scorer 'replies': the same JSON an LLM is asked for."""
    scores = [local_slot_score(s) for s in slots]
    changes = []
    previous: tuple[str, int] | None = None
    for s, score in zip(slots, scores):
        if score is None:
            continue
        if previous is not None and abs(score - previous[1]) >= min_change:
            sounds = [e["label"] for e in s.events if e["label"] not in NON_EVENTS]
            what = (f"{emotion_name(s.dominant_emotion)} voice" if s.dominant_emotion
                    else sounds[0] if sounds else "quiet")
            changes.append({"time": s.slot.replace("-", ":"), "event": what, "score": score})
        previous = (s.slot, score)
    average, pos, neg, _ = day_figures(scores)
    recorded = sum(1 for s in slots if s.recorded)
    insights = (
        f"{recorded} recorded slots; average {average if average is not None else '-'}; "
        f"{pos:g} h positive, {neg:g} h negative (local rule)."
    )
    return {
        "timePoints": list(TIME_POINTS), "emotionScores": scores, "averageScore": average,
        "positiveHours": pos, "negativeHours": neg, "neutralHours": 0.5 * recorded - pos - neg,
        "insights": insights, "emotionChanges": changes,
    }
