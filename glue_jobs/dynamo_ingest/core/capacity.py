"""A table's write capacity as DescribeTable tells it (shared by the job and the estimate)."""

from __future__ import annotations

from typing import Any

DEFAULT_ON_DEMAND_WCU_S = 4000.0  # a new on-demand table is warm for 4,000 writes/s


def table_write_capacity(table: dict[str, Any]) -> tuple[float, str]:
    """The table's write capacity in WCU/s and where the number came from."""
    billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    provisioned = (table.get("ProvisionedThroughput") or {}).get("WriteCapacityUnits") or 0
    if billing != "PAY_PER_REQUEST" and provisioned > 0:
        return float(provisioned), "provisioned WriteCapacityUnits"
    on_demand = (table.get("OnDemandThroughput") or {}).get("MaxWriteRequestUnits") or 0
    if on_demand > 0:
        return float(on_demand), "on-demand MaxWriteRequestUnits"
    warm = (table.get("WarmThroughput") or {}).get("WriteUnitsPerSecond") or 0
    if warm > 0:
        return float(warm), "warm throughput WriteUnitsPerSecond"
    return DEFAULT_ON_DEMAND_WCU_S, "default for a new on-demand table"
