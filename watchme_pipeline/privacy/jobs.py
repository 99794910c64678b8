"""The forget_device job: the same forget as the CLI's, launched from the Dagster UI."""

from collections.abc import Sequence

import dagster as dg

from watchme_pipeline.privacy.forget import FORGET_JOB, forget_device
from watchme_pipeline.resources import AudioStore
from watchme_pipeline.store import ResultStore

JOB_NAME = FORGET_JOB


class ForgetConfig(dg.Config):
    device_id: str
    confirm: str  # the device id again: a typo forgets nobody


def build_forget_job(asset_keys: Sequence[dg.AssetKey], device_groups: int
                     ) -> dg.JobDefinition:
    """forget_device for this graph's assets and partitions."""

    @dg.op(name="forget", description="Deletes everything of one device (its audio, charts, "
           "rows in every table, Dagster's records of it) and writes the audit row.")
    def forget_op(context: dg.OpExecutionContext, config: ForgetConfig,
                  result_store: ResultStore, audio_store: AudioStore) -> None:
        try:
            report = forget_device(config.device_id, config.confirm, audio_store=audio_store,
                                   result_store=result_store, instance=context.instance,
                                   asset_keys=asset_keys, device_groups=device_groups,
                                   log=context.log)
        except ValueError as exc:  # a mismatch or a malformed id: said once, not retried
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        for line in report.lines():
            context.log.info(line)

    @dg.job(name=JOB_NAME, tags={"watchme/kind": "data_request"},
            description="Forget a device (config: device_id, and confirm repeating it): "
            "idempotent and resumable; `python -m watchme_pipeline forget` does the same.")
    def forget_job() -> None:
        forget_op()

    return forget_job
