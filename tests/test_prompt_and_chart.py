import io

import numpy as np
from PIL import Image

from watchme_pipeline.chart import render_chart
from watchme_pipeline.prompt import build_prompt
from watchme_pipeline.scoring import SlotSummary
from watchme_pipeline.slots import SLOTS


def fixed_day() -> list[SlotSummary]:
    slots = [SlotSummary(s) for s in SLOTS]  # all missing
    slots[18] = SlotSummary("09-00", recorded=True, transcript="おはようございます",
                            events=[{"label": "Speech", "score": 0.91},
                                    {"label": "Music", "score": 0.4}],
                            emotion={"neu": 0.2, "hap": 0.7, "ang": 0.05, "sad": 0.05})
    slots[19] = SlotSummary("09-30", recorded=True, events=[{"label": "Silence", "score": 0.8}])
    slots[20] = SlotSummary("10-00", failed=True)
    return slots


def test_japanese_prompt_golden_lines():
    prompt = build_prompt("dev-1", "2025-07-18", fixed_day(), "ja")
    lines = prompt.splitlines()
    assert "device: dev-1  date: 2025-07-18" in lines
    assert "[09-00] おはようございます | 音: Speech, Music | 感情: 喜び 0.70" in lines
    assert "[09-30] (発話なし) | 音: Silence" in lines
    assert "[10-00] (録音エラー)" in lines
    assert "[00-00] (録音なし)" in lines
    assert sum(1 for line in lines if line.startswith("[")) == 48
    assert '"emotionScores"' in lines[-1]


def test_english_prompt_golden_lines():
    lines = build_prompt("dev-1", "2025-07-18", fixed_day(), "en").splitlines()
    assert "[09-00] おはようございます | sounds: Speech, Music | emotion: happy 0.70" in lines
    assert "[09-30] (no speech) | sounds: Silence" in lines
    assert "[23-30] (no recording)" in lines
    assert "[10-00] (recording error)" in lines
    assert lines[0].startswith("Below is one day of audio")


def test_chart_has_gaps_exactly_where_scores_are_null():
    scores = [None] * 8 + [(i * 7) % 200 - 100 for i in range(40)]
    scores[20] = None
    png, pixels = render_chart(scores, "dev-1 2025-07-18",
                               [{"time": "12:00", "event": "hap", "score": scores[24]}])
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (1200, 400)
    # Read the image itself: the line's colour near each slot's column.
    rgb = np.asarray(image).astype(int)
    line = np.abs(rgb - (0x1D, 0x35, 0x57)).sum(axis=2) < 40
    star = np.abs(rgb - (0xE6, 0x39, 0x46)).sum(axis=2) < 40  # the notable change at 12:00
    for i, score in enumerate(scores):
        column = int(round(pixels[i, 0]))
        drawn = star if i == 24 else line
        rows = np.flatnonzero(drawn[:, column - 1:column + 2].any(axis=1))
        if score is None:
            assert rows.size == 0, f"slot {i}: a line where the score is null"
        else:
            assert rows.size and np.abs(rows - pixels[i, 1]).min() <= 3, f"slot {i}"
    # Higher scores are drawn higher, within the fixed -100..100 axis.
    top, bottom = pixels[scores.index(96), 1], pixels[scores.index(-100), 1]
    assert 0 < top < bottom < 400


def test_a_day_without_recordings_says_so_on_the_chart_and_in_the_prompt():
    blank, _ = render_chart([None] * 48, "dev-1 2025-07-18")
    said, _ = render_chart([None] * 48, "dev-1 2025-07-18", note="no recordings")
    grey = [np.abs(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
                   - (0x66, 0x66, 0x66)).sum(axis=2) < 30 for png in (blank, said)]
    middle = (slice(150, 250), slice(450, 750))  # the plot's centre, where the note goes
    assert grey[0][middle].sum() == 0 and grey[1][middle].sum() > 500  # text, not a frame
    empty = [SlotSummary(slot=s, recorded=False) for s in SLOTS]
    assert build_prompt("dev-1", "2025-07-18", empty, "ja") == (
        "この日の録音はありません。\ndevice: dev-1  date: 2025-07-18")
    assert build_prompt("dev-1", "2025-07-18", empty, "en").startswith(
        "No recordings on this day.")
