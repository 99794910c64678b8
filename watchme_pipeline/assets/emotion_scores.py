"""emotion_scores: speech-emotion probabilities per slot (wav2vec2 SUPERB-ER)."""

import datetime as dt

import dagster as dg
import pandas as pd

from watchme_pipeline.assets.common import (
    ASSET_DEFAULTS,
    PerPartition,
    for_partition,
    per_partition,
    preview,
    run_stage,
    stage_code_version,
)
from watchme_pipeline.assets.transcripts import StageConfig
from watchme_pipeline.audio import VadSettings
from watchme_pipeline.day_tables import LABEL_COLUMNS
from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.models.emotion import EmotionSettings, classify_emotion
from watchme_pipeline.resources import AudioStore, ModelRegistry, ResultStore
from watchme_pipeline.slots import SLOTS


@dg.asset(
    **ASSET_DEFAULTS,
    op_tags=pod_tags("emotion_scores"),
    kinds={"pytorch", "sql"},
    tags={"stage": "model"},
    pool="models",
    code_version=stage_code_version("emotion", (EmotionSettings(), VadSettings())),
    description="Emotion probabilities (neutral/happy/angry/sad) per slot from a wav2vec2 "
    "classifier over the speech the VAD found (the segments Whisper decodes), in 10 s "
    "chunks; null for slots without speech. "
    "Per slot in `emotion_superb`, the day's series in `emotion_opensmile_summary`.",
)
def emotion_scores(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    raw_audio: PerPartition,
    audio_store: AudioStore,
    result_store: ResultStore,
    model_registry: ModelRegistry,
) -> PerPartition:
    settings = EmotionSettings()
    cols = list(LABEL_COLUMNS.values())

    def one_day(key, day):
        def compute(audios):
            loaded = model_registry.get("emotion")
            results = classify_emotion(loaded.model, loaded.extractor, audios, settings)
            now = dt.datetime.now(dt.UTC)
            rows = []
            for slot, probs in results.items():
                row = {"device_id": day.device_id, "date": day.date, "time_block": slot,
                       "voiced_seconds": round(audios[slot].voiced_seconds, 2),
                       "model": loaded.model_id, "processed_at": now}
                row.update({c: (probs or {}).get(label) for label, c in LABEL_COLUMNS.items()})
                rows.append(row)
            return rows

        meta = run_stage(context, day, stage="emotion_features",
                         raw_audio=for_partition(raw_audio, key, context),
                         audio_store=audio_store, result_store=result_store,
                         recompute=config.recompute, compute=compute, table="emotion_superb")
        df = result_store.read("emotion_superb", day.device_id, day.date)
        by_slot = {r.time_block: r for r in df.itertuples()}
        graph = [
            {"time": slot, **{c: getattr(by_slot[slot], c) for c in cols}}
            if slot in by_slot else {"time": slot, **dict.fromkeys(cols)}
            for slot in SLOTS
        ]
        result_store.replace_partition("emotion_opensmile_summary", day.device_id, day.date, [{
            "device_id": day.device_id, "date": day.date, "emotion_graph": graph,
            "processed_at": dt.datetime.now(dt.UTC),
        }])
        df["top_emotion"] = [
            None if pd.isna(r[cols]).all() else r[cols].astype(float).idxmax()
            for _, r in df.iterrows()
        ]
        meta["slots_with_voice"] = int(df.top_emotion.notna().sum())
        meta["model"] = model_registry.model_id("emotion")
        meta["preview"] = preview(df, ["time_block", "voiced_seconds", *cols])
        return df, meta

    return per_partition(context, one_day)
