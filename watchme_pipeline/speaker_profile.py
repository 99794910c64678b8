"""The wearer's voice, learnt per device from its own recent days: plain Python (numpy, and
scikit-learn to fit), with no Dagster.

The rule (make speaker-probe measured it with real weights on Kokoro's five Japanese voices,
docs/accuracy.md): the wearer is the voice nearest the microphone, so the history's loud turns
(within ``LEVEL_SEED_DB`` of its 90th-percentile level) are seeds of the wearer's voice; the
quieter turns in the same voice join them (positive-unlabelled learning: a backend learns the
seeds against every other turn, and a turn whose held-out score reaches half the seeds' mean
joins, Elkan & Noto); a logistic regression on the embedding and the turn's level against the
wearer's usual level is then trained on those labels, and again on its own labels of every
turn. An enrollment recording's turns join the seeds. Clustering the voices, or a cosine
threshold to an enrolled profile, labelled 49-92 % of turns right where this does 97-99 %.

The fitted profile is a standardizer and a linear model (``Profile.params``): applying it needs
numpy only, and the stored form is what made a verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

RULE = "level-seeds-widened-1"  # raise when the rule changes: every profile is then new
LEVEL_SEED_DB = 6.0
SEED_PERCENTILE = 90
MIN_DAYS = 3  # days with speech before a profile is trusted (the targets' history)
HISTORY_DAYS = 14  # the days before a date whose turns make its profile
# A profile serves the days after the one it was fitted for, up to this many: fitting costs
# seconds (12 regressions on up to MAX_TURNS turns), so a device refits weekly, not daily.
REFIT_DAYS = 7
MAX_TURNS = 4000  # the most recent turns of them: a fit stays bounded on a talkative device
MIN_TURNS = 20
WIDEN_ROUNDS = 2


@dataclass(frozen=True)
class History:
    """Turns to learn from: embeddings (n, 256), levels in dBFS, and the day of each (an
    enrollment recording's turns are ``enrolled``)."""

    embeddings: np.ndarray
    levels_db: np.ndarray
    days: np.ndarray
    enrolled: np.ndarray

    @property
    def day_count(self) -> int:
        return len(set(self.days[~self.enrolled]))


@dataclass(frozen=True)
class Profile:
    """A device's fitted wearer model, as stored in ``speaker_profiles.params``."""

    params: dict

    @property
    def version(self) -> str:
        """12 hex digits of the rule and the fitted numbers: the same history, the same
        version; any change, a new one (and the rows it attributes are remade)."""
        text = json.dumps({"rule": RULE, **self.params}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def wearer_probability(self, embeddings: np.ndarray, levels_db: np.ndarray) -> np.ndarray:
        p = self.params
        x = features(embeddings, levels_db, p["reference_db"])
        z = (x - np.array(p["mean"])) / np.array(p["scale"]) @ np.array(p["coef"]) + p["intercept"]
        return 1.0 / (1.0 + np.exp(-z))


def features(embeddings: np.ndarray, levels_db: np.ndarray, reference_db: float) -> np.ndarray:
    """The embedding and the turn's level against the wearer's usual level, in 10 dB."""
    return np.c_[embeddings, (np.asarray(levels_db) - reference_db) / 10]


def classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(
        C=0.1, class_weight="balanced", max_iter=5000))


def level_seeds(levels_db: np.ndarray) -> np.ndarray:
    """The wearer is nearest: a turn within LEVEL_SEED_DB of the loud turns is a seed."""
    return levels_db >= np.percentile(levels_db, SEED_PERCENTILE) - LEVEL_SEED_DB


def held_out_scores(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per turn, P(label) by a backend that did not see it (5 folds)."""
    from sklearn.model_selection import KFold

    scores = np.zeros(len(embeddings))
    for fit_rows, held in KFold(5, shuffle=True, random_state=0).split(embeddings):
        if len(set(labels[fit_rows])) < 2:
            scores[held] = float(labels[fit_rows][0])
            continue
        scores[held] = classifier().fit(embeddings[fit_rows], labels[fit_rows]).predict_proba(
            embeddings[held])[:, 1]
    return scores


def widened_by_voice(embeddings: np.ndarray, seeds: np.ndarray,
                     rounds: int = WIDEN_ROUNDS) -> np.ndarray:
    """The seeds plus the turns in the seeds' voice (the wearer speaking softly)."""
    wearer = seeds.copy()
    for _ in range(rounds):
        score = held_out_scores(embeddings, wearer)
        wearer = wearer | (score >= 0.5 * score[wearer].mean())
    return wearer


def fit(history: History, labels: np.ndarray) -> tuple[object, float]:
    """The backend on the turns' voices and levels (the wearer's usual level from the
    device's own turns)."""
    reference = float(np.median(history.levels_db[labels & ~history.enrolled]))
    return classifier().fit(history_features(history, reference), labels), reference


def history_features(history: History, reference_db: float) -> np.ndarray:
    """The features of the history's turns; an enrollment recording's turns at the wearer's
    usual level: the app records it elsewhere, so its level says nothing of the recorder's."""
    levels = np.where(history.enrolled, reference_db, history.levels_db)
    return features(history.embeddings, levels, reference_db)


def build_profile(history: History) -> Profile | None:
    """The wearer's profile from the history, or None when it is too short to trust (fewer
    than MIN_DAYS days with speech without an enrollment recording, fewer than MIN_TURNS
    turns, or one voice only)."""
    if ((history.day_count < MIN_DAYS and not history.enrolled.any())
            or len(history.levels_db) < MIN_TURNS):
        return None
    seeds = history.enrolled.copy()
    seeds[~history.enrolled] = level_seeds(history.levels_db[~history.enrolled])
    labels = widened_by_voice(history.embeddings, seeds)
    if labels.all() or not labels.any():
        return None
    first, reference = fit(history, labels)
    relabelled = first.predict(history_features(history, reference))
    relabelled = relabelled.astype(bool) | history.enrolled
    if relabelled.all() or not relabelled.any():
        return None
    model, reference = fit(history, relabelled)
    scaler, regression = model[0], model[-1]
    return Profile({
        "reference_db": round(reference, 4),
        "mean": [round(float(v), 6) for v in scaler.mean_],
        "scale": [round(float(v), 6) for v in scaler.scale_],
        "coef": [round(float(v), 6) for v in regression.coef_[0]],
        "intercept": round(float(regression.intercept_[0]), 6),
        "days": history.day_count, "turns": int(len(history.levels_db)),
        "enrolled_turns": int(history.enrolled.sum()),
        "wearer_share": round(float(relabelled.mean()), 4),
    })
