#!/usr/bin/env python3
"""Basic usage (the seed README's first example).

    ERMD_SOCKET=/path/to/ermd.sock python3 basic_usage.py [FILE]

FILE (optional) is backed up before the operation; it must lie beneath a
[root.NAME] of the daemon's config.  The operation fails once with a
connection error, which ermd decides to retry, then succeeds."""

import asyncio
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import ErrorRecoveryManager, RetryConfig

attempts = 0


async def risky_operation():
    global attempts
    attempts += 1
    if attempts == 1:
        raise ConnectionResetError("connection reset by peer")
    return "processed after %d attempts" % attempts


async def main():
    file_path = sys.argv[1] if len(sys.argv) > 1 else None
    # A short base delay keeps the demo quick; without retry_config the
    # daemon's [retry] policy applies.
    async with ErrorRecoveryManager(
            retry_config=RetryConfig(base_delay=0.05)) as recovery_manager:
        # Execute operation with full recovery
        success, result, error = await recovery_manager.execute_with_recovery(
            risky_operation,
            "operation_name",
            file_path,
            create_backup=file_path is not None
        )

        if success:
            print(f"Operation succeeded: {result}")
        else:
            print(f"Operation failed: {error}")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
