import json

import pytest

from watchme_pipeline.scoring import (
    TIME_POINTS,
    MalformedReply,
    SlotSummary,
    local_reply,
    local_slot_score,
    validate_reply,
)
from watchme_pipeline.slots import SLOTS


def test_local_rule_values():
    assert local_slot_score(SlotSummary("09-00")) is None  # no recording
    assert local_slot_score(SlotSummary("09-00", recorded=True)) == 0  # nothing to go on
    happy = SlotSummary("09-00", recorded=True,
                        emotion={"neu": 0.1, "hap": 0.8, "ang": 0.05, "sad": 0.05})
    assert local_slot_score(happy) == 70
    sad = SlotSummary("09-00", recorded=True,
                      emotion={"neu": 0.2, "hap": 0.0, "ang": 0.3, "sad": 0.5})
    assert local_slot_score(sad) == -80
    laughing = SlotSummary("09-00", recorded=True, events=[{"label": "Laughter", "score": 0.9}])
    assert local_slot_score(laughing) == 90
    words = SlotSummary("09-00", recorded=True, transcript="ありがとう、嬉しい")
    assert local_slot_score(words) == 100
    mixed = SlotSummary("09-00", recorded=True, transcript="疲れた",
                        emotion={"neu": 1.0, "hap": 0.0, "ang": 0.0, "sad": 0.0})
    assert local_slot_score(mixed) == round(100 * (0.15 * -0.5) / 0.75)


def test_local_reply_is_valid_and_null_where_missing():
    slots = [SlotSummary(s, recorded=i % 3 != 0,
                         emotion={"neu": 0.5, "hap": 0.5, "ang": 0, "sad": 0})
             for i, s in enumerate(SLOTS)]
    recorded = {s.slot for s in slots if s.recorded}
    result = validate_reply(local_reply(slots), recorded)
    assert len(result.vibe_scores) == 48
    assert all((v is None) == (s not in recorded) for s, v in zip(SLOTS, result.vibe_scores))
    assert result.average_score == 50.0 and result.positive_hours == 0.5 * len(recorded)


def reply(scores, **extra):
    return json.dumps({"timePoints": list(TIME_POINTS), "emotionScores": scores,
                       "insights": "ok", **extra})


ALL = set(SLOTS)
HALF = set(SLOTS[:24])


# Each hostile reply and what is stored for it (or the reason it is refused).
HOSTILE = [
    ("fenced", "```json\n" + reply([10] * 48) + "\n```", ALL, [10] * 48, None),
    ("prose around", "Sure! Here it is: " + reply([5] * 48) + " Hope it helps.", ALL, [5] * 48,
     None),
    ("clamped", reply([150, -3000] + [0] * 46), ALL, [100, -100] + [0] * 46, None),
    ("NaN literal", reply([0] * 48).replace("[0, ", "[NaN, ", 1), ALL, [None] + [0] * 47, None),
    ("strings", reply(["42", "NaN", "abc"] + [0] * 45), ALL, [42, None, None] + [0] * 45, None),
    ("floats rounded", reply([12.6] * 48), ALL, [13] * 48, None),
    ("forced null", reply([30] * 48), HALF, [30] * 24 + [None] * 24, None),
    ("49 without time points", json.dumps({"emotionScores": [1] * 49}), ALL, [1] * 48, None),
    ("47 scores", json.dumps({"emotionScores": [1] * 47}), ALL, None, "47 scores"),
    ("47 with 48 time points", json.dumps({"timePoints": list(TIME_POINTS),
                                           "emotionScores": [1] * 47}), ALL, None,
     "differ in length"),
    ("wrong time point", reply([0] * 48).replace('"00:30"', '"00:31"'), ALL, None,
     "unknown time point"),
    ("duplicate time point", reply([0] * 48).replace('"00:30"', '"00:00"'), ALL, None,
     "given twice"),
    ("missing scores", json.dumps({"insights": "x"}), ALL, None, "emotionScores missing"),
    ("empty", "", ALL, None, "empty reply"),
    ("no json", "I cannot help with that.", ALL, None, "no JSON object"),
    ("broken json", "{\"emotionScores\": [1, 2", ALL, None, "no JSON object"),
]


@pytest.mark.parametrize("name, raw, recorded, stored, error", HOSTILE,
                         ids=[h[0] for h in HOSTILE])
def test_hostile_llm_replies(name, raw, recorded, stored, error):
    if error:
        with pytest.raises(MalformedReply, match=error):
            validate_reply(raw, recorded)
        return
    result = validate_reply(raw, recorded)
    assert result.vibe_scores == stored
    known = [s for s in stored if s is not None]
    assert result.average_score == (round(sum(known) / len(known), 1) if known else None)
    assert result.positive_hours + result.negative_hours + result.neutral_hours == (
        0.5 * len(known))


def test_time_points_realign_and_changes_are_limited_to_known_slots():
    points = list(reversed(TIME_POINTS))
    scores = list(range(48))  # score i at time point 47-i
    raw = {"timePoints": points, "emotionScores": scores, "emotionChanges": [
        {"time": "09:00", "event": "laughed", "score": 500},
        {"time": "25:00", "event": "bogus", "score": 1},
        {"time": "23:30", "event": "not recorded", "score": 1},
    ]}
    result = validate_reply(raw, set(SLOTS[:47]))
    assert result.vibe_scores[0] == 47 and result.vibe_scores[46] == 1
    assert result.vibe_scores[47] is None
    assert result.vibe_changes == [{"time": "09:00", "event": "laughed", "score": 100}]
    assert result.average_score == round(sum(range(1, 48)) / 47, 1)


def test_notable_changes_read_as_words_never_silence():
    """A change is named by the emotion spelled out, or by a sound other than Silence."""
    quiet = SlotSummary("09-00", recorded=True, events=[{"label": "Silence", "score": 0.9}])
    happy = SlotSummary("09-30", recorded=True,
                        emotion={"neu": 0.1, "hap": 0.9, "ang": 0.0, "sad": 0.0})
    crying = SlotSummary("10-00", recorded=True, events=[{"label": "Silence", "score": 0.5},
                                                         {"label": "Crying, sobbing",
                                                          "score": 0.9}])
    back = SlotSummary("10-30", recorded=True, events=[{"label": "Silence", "score": 0.9},
                                                       {"label": "Laughter", "score": 0.01}])
    slots = [SlotSummary(s) for s in SLOTS]
    for s in (quiet, happy, crying, back):
        slots[SLOTS.index(s.slot)] = s
    changes = local_reply(slots)["emotionChanges"]
    assert [(c["time"], c["event"]) for c in changes] == [
        ("09:30", "happy voice"), ("10:00", "Crying, sobbing"), ("10:30", "Laughter")]
