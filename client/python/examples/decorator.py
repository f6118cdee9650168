#!/usr/bin/env python3
"""Decorator usage (the seed README's example).

    ERMD_SOCKET=/path/to/ermd.sock python3 decorator.py"""

import asyncio
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import ErrorRecoveryManager, RetryConfig, recovery_operation


def process_data(data):
    return data.upper()


async def main():
    async with ErrorRecoveryManager(
            retry_config=RetryConfig(base_delay=0.05)) as recovery_manager:
        calls = []

        @recovery_operation(recovery_manager)
        async def decorated_function(data: str):
            # This function will automatically get error recovery
            calls.append(data)
            if len(calls) == 1:
                raise TimeoutError("first call timed out")
            return process_data(data)

        result = await decorated_function("test data")
        print(f"Result: {result} (after {len(calls)} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
