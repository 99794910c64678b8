"""Where a model's weights come from: a hub id, a local path, the verified Whisper base that
`make weights` cached, or a tiny random-weight stand-in built on disk (profile ``tiny``)."""

from __future__ import annotations

from pathlib import Path

from watchme_pipeline.models.catalog import ModelChoice
from watchme_pipeline.models.kinds import MODEL_KINDS
from watchme_pipeline.models.tiny import TINY_BUILDERS
from watchme_pipeline.models.weights import cached_whisper_base


def _real_whisper_base(choice: ModelChoice, kind: str, cache_dir: Path) -> str | None:
    """The cached real Whisper base for both engines and both profiles (the tiny profile
    stands in only for weights that are not here); None when not cached."""
    if kind != "whisper" or choice.whisper_model != "base":
        return None
    cached = cached_whisper_base(cache_dir)
    if cached is None:
        return None
    return str(cached.ct2_dir if choice.ct2(kind) else cached.openai_checkpoint)


def is_stand_in(choice: ModelChoice, kind: str, cache_dir: Path) -> bool:
    """True where a tiny random-weight model stands in for the real one."""
    if kind == "speaker" and choice.speaker_model == "resemblyzer":
        return False  # the real encoder is in the wheel, in every profile
    return choice.profile == "tiny" and _real_whisper_base(choice, kind, cache_dir) is None


def resolve_source(choice: ModelChoice, kind: str, cache_dir: Path) -> str:
    """What the loader is given: a local path, or an id the engine fetches itself. Builds the
    tiny stand-in on disk the first time it is asked for (cached)."""
    configured = choice.configured(kind)
    if kind == "speaker" and configured == "resemblyzer":
        # Its real weights ship inside its wheel: no stand-in is ever needed for them.
        from watchme_pipeline.models.speaker import wheel_weights

        return str(wheel_weights())
    real = _real_whisper_base(choice, kind, cache_dir)
    if real is not None:
        return real
    if choice.profile == "tiny":
        builder = "whisper-ct2" if choice.ct2(kind) else MODEL_KINDS[kind].tiny_builder
        return str(TINY_BUILDERS[builder](cache_dir))
    return configured


def checkpoint_folder(source: str, local_only: bool = False) -> Path:
    """A local folder for a transformers checkpoint: itself, or the hub's cached snapshot
    (``local_only``: only if the hub's cache already holds it, else OSError)."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, local_files_only=local_only))
    except Exception as exc:  # noqa: BLE001 - the hub client's errors vary by version
        if local_only:
            raise OSError(f"{source}: not in the model hub's cache") from exc
        raise


def onnx_label(choice: ModelChoice, kind: str) -> str:
    """An ONNX export's name: the checkpoint folder's, or the hub id's ('/' as '--')."""
    if choice.profile == "tiny":
        return f"tiny-{'ast' if kind == 'events' else kind}"
    source = choice.configured(kind)
    return Path(source).name if Path(source).is_dir() else source.replace("/", "--")
