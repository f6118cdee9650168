#!/usr/bin/env python3
"""Fallback storage (the seed README's example).

    ERMD_SOCKET=/path/to/ermd.sock python3 fallback_storage.py

The backends are the daemon's [backend.NAME] sections.  The operation gets
the backend ermd selects (name, type, location); here the first one
"fails", so the next one is used."""

import asyncio
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import ErrorRecoveryManager

first = []


async def storage_operation(backend):
    if not first:
        first.append(backend.name)
        raise ConnectionError(f"{backend.name} is unreachable")
    return f"stored on {backend.name} ({backend.type} {backend.location})"


async def main():
    async with ErrorRecoveryManager() as recovery_manager:
        # Automatic fallback when primary storage fails
        success, result, error = await recovery_manager.execute_with_fallback(
            storage_operation
        )
        print(f"Success: {success}, result: {result}, error: {error}")

        current_storage = recovery_manager.fallback_storage.current_storage
        print(f"Storage used: {current_storage}")
        # The failure was reported; give the backend its health back.
        if first:
            await recovery_manager.fallback_storage.report(first[0], True)
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
