#!/usr/bin/env python3
"""Metrics and monitoring (the seed README's example).

    ERMD_SOCKET=/path/to/ermd.sock python3 metrics.py

The metrics are the daemon's, for the whole host."""

import asyncio
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import ErrorRecoveryManager


async def main():
    async with ErrorRecoveryManager() as recovery_manager:
        metrics = await recovery_manager.get_recovery_metrics()
        print(f"Total errors: {metrics['total_errors']}")
        print(f"Recovery rate: {metrics['successful_recoveries']}")
        print(f"Circuit breaker state: {metrics['circuit_breaker_state']}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
