"""The segmenter on synthetic timelines: speech segments packed into Whisper windows of at
most 30 s, cut only between segments (at pauses), never on a fixed grid."""

import numpy as np

from watchme_pipeline.audio import SAMPLE_RATE, speech_segments, speech_windows

S = SAMPLE_RATE
W = 30 * S


def seconds(windows):
    return [[(a / S, b / S) for a, b in w] for w in windows]


def speech_length(window):
    return sum(b - a for a, b in window)


def test_an_utterance_across_the_30_s_mark_stays_whole():
    # 24-36 s: a fixed 30 s grid would cut it in half; here it is one window, one piece.
    assert seconds(speech_windows([(24 * S, 36 * S)])) == [[(24.0, 36.0)]]


def test_segments_share_a_window_while_their_speech_fits():
    segs = [(2 * S, 10 * S), (14 * S, 22 * S), (40 * S, 50 * S), (53 * S, 58 * S)]
    windows = speech_windows(segs)
    # 8 + 8 + 10 = 26 s of speech fit one window; the next 5 s would make 31: a new window,
    # starting at the pause before 53 s.
    assert seconds(windows) == [[(2, 10), (14, 22), (40, 50)], [(53, 58)]]
    assert all(speech_length(w) <= W for w in windows)


def test_pause_lengths_decide_nothing_but_order_is_kept():
    """Short or long pauses: the packing depends on speech, not on clock time."""
    for gap in (0.3, 2.0, 20.0):
        segs, t = [], 1.0
        for _ in range(4):
            segs.append((int(t * S), int((t + 9) * S)))
            t += 9 + gap
        windows = speech_windows(segs)
        assert [len(w) for w in windows] == [3, 1]
        flat = [s for w in windows for s in w]
        assert flat == segs  # nothing dropped, nothing reordered, nothing overlapping


def test_a_70_s_utterance_is_split_into_equal_windows_under_30_s():
    windows = speech_windows([(5 * S, 75 * S)])
    assert len(windows) == 3
    lengths = [speech_length(w) / S for w in windows]
    assert all(23 <= x <= 30 for x in lengths) and sum(lengths) == 70
    # Contiguous: each piece starts where the last ended.
    pieces = [s for w in windows for s in w]
    assert pieces[0][0] == 5 * S and pieces[-1][1] == 75 * S
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))


def test_no_segments_no_windows():
    assert speech_windows([]) == []


def test_the_vad_bounds_a_long_stretch_of_speech_at_30_s():
    """Silero cuts a stretch longer than a window at its last pause: 70 s of speech-like
    audio (espeak-ng when present, else tones) comes back as segments of at most 30 s."""
    from speech_corpus import espeak_available, speak

    if espeak_available():
        line = speak("We talked for a long time about the garden, the weather and the "
                     "neighbours, and then about the children and their school.", "en", 175)
    else:  # pragma: no cover - CI installs espeak-ng
        import pytest

        pytest.skip("espeak-ng not installed: no speech to detect")
    audio = np.zeros(80 * S, dtype=np.float32)
    t = 5 * S
    while t + len(line) < 75 * S:
        audio[t : t + len(line)] = line
        t += len(line) + int(0.25 * S)
    segments = speech_segments(audio)
    assert segments and all(b - a <= W for a, b in segments)
    covered = sum(b - a for a, b in segments) / S
    assert covered > 60
    windows = speech_windows(segments)
    assert all(speech_length(w) <= W for w in windows)


def test_digital_silence_is_gated_before_the_vad():
    assert speech_segments(np.zeros(60 * S, dtype=np.float32)) == []
    faint = np.full(60 * S, 1e-4, dtype=np.float32)  # -80 dBFS: under the pre-gate
    assert speech_segments(faint) == []
