"""The asset graph, in lineage order:
raw_audio → transcripts, event_scores, emotion_scores → vibe_prompt → mood_chart."""

from watchme_pipeline.assets.emotion_scores import emotion_scores
from watchme_pipeline.assets.event_scores import event_scores
from watchme_pipeline.assets.mood_chart import mood_chart
from watchme_pipeline.assets.raw_audio import raw_audio
from watchme_pipeline.assets.transcripts import transcripts
from watchme_pipeline.assets.vibe_prompt import vibe_prompt

ALL_ASSETS = [raw_audio, transcripts, event_scores, emotion_scores, vibe_prompt, mood_chart]

__all__ = ["ALL_ASSETS", "emotion_scores", "event_scores", "mood_chart", "raw_audio",
           "transcripts", "vibe_prompt"]
