"""An IO manager over the result store: assets write their own tables (atomically, per
partition); inputs are read back from those tables. Nothing is pickled between steps, so any
executor works (in-process, multiprocess, one pod per step) and a batched backfill run gets a
dict of values by partition key."""

import dagster as dg

from watchme_pipeline.partitions import parse_partition_key


class ResultStoreIOManager(dg.IOManager):
    def __init__(self, result_store) -> None:
        self.result_store = result_store

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        # The asset already wrote its rows to the result store, in one transaction.
        return None

    def load_input(self, context: dg.InputContext):
        from watchme_pipeline.day_tables import load_asset_value

        asset = context.asset_key.to_user_string()
        keys = context.asset_partition_keys
        values = {str(k): load_asset_value(self.result_store, asset, parse_partition_key(k))
                  for k in keys}
        return values if len(values) > 1 else next(iter(values.values()))


@dg.io_manager(required_resource_keys={"result_store"},
               description="Reads asset values back from the result store's tables.")
def result_store_io_manager(init_context: dg.InitResourceContext) -> ResultStoreIOManager:
    return ResultStoreIOManager(init_context.resources.result_store)
