"""Deployment profiles: which executor runs the steps, and what each step's pod asks for.

``WATCHME_DEPLOYMENT`` chooses:

* ``local`` (default): Dagster's in-process executor. The steps of a run share one process,
  and its models (loaded once, within ``WATCHME_MEMORY_MB``).
* ``multiprocess``: one process per step, at most 2 at a time; the ``models`` pool in
  dagster.yaml still keeps model steps of different runs apart.
* ``k8s``: dagster-k8s's ``k8s_job_executor``, one Kubernetes job per step, each pod sized by
  the ``dagster-k8s/config`` tags below (``Stage.memory_mb``: the registry's estimate of the
  step; a test keeps it above make bench's measured peaks).

Steps share nothing but the audio store and the result store (each asset writes its tables and
the next reads them), so any executor gives the same rows.
"""

from __future__ import annotations

import math

import dagster as dg

from watchme_pipeline.settings import Deployment
from watchme_pipeline.stage import Stage
from watchme_pipeline.stages import STAGES


def pod_memory(stage: Stage) -> tuple[str, str]:
    """The step pod's memory (request, limit): what the stage's step needs
    (``Stage.memory_mb``, from its model's estimate) as the request, +25 % as the limit.
    WATCHME_MEMORY_MB inside the pod is the request: the process keeps under it."""
    request = stage.memory_mb()
    return f"{request}Mi", f"{math.ceil(request * 1.25 / 50) * 50}Mi"


POD_MEMORY = {s.name: pod_memory(s) for s in STAGES}


def pod_tags(stage: Stage) -> dict[str, dict]:
    """The ``dagster-k8s/config`` op tag for the stage's step pod (other executors ignore it)."""
    request, limit = pod_memory(stage)
    cpu = "2" if stage.model_kind else "500m"
    return {"dagster-k8s/config": {"container_config": {
        "resources": {"requests": {"memory": request, "cpu": cpu}, "limits": {"memory": limit}},
        # The step's process keeps under its pod's request (the registry refuses past it).
        "env": [{"name": "WATCHME_MEMORY_MB", "value": request.removesuffix("Mi")}],
    }}}


K8S_EXECUTOR_CONFIG = {
    # Steps of one run: at most 3 pods at once (the three model stages in parallel).
    "max_concurrent": 3,
    "job_namespace": "watchme",
    "env_secrets": ["watchme-secrets"],  # AWS_*, OPENAI_API_KEY, SUPABASE_KEY, database URL
    "env_config_maps": ["watchme-config"],  # WATCHME_* settings
    "step_k8s_config": {"pod_spec_config": {"node_selector": {"watchme/pool": "cpu"}}},
}


def executor_for(deployment: Deployment) -> dg.ExecutorDefinition:
    """WATCHME_DEPLOYMENT: local (in-process), multiprocess or k8s."""
    if deployment.executor == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": 2})
    if deployment.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(K8S_EXECUTOR_CONFIG)
    return dg.in_process_executor
