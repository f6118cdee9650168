#!/usr/bin/env python3
"""Supabase integration (the seed README's example).

    ERMD_SOCKET=/path/to/ermd.sock python3 supabase_integration.py

With ermd the daemon forwards every stored error, finished op and alert to
Supabase from its own config ([supabase] url and key_file; see
docs/supabase/README.md), so no process holds the key.  The seed's
supabase_url / supabase_key arguments are accepted and ignored (with a
warning); this example shows where the forwarding state is."""

import asyncio
import warnings
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import ErrorRecoveryManager


async def main():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with ErrorRecoveryManager(
            supabase_url="https://your-project.supabase.co",
            supabase_key="your-supabase-key"
        ) as recovery_manager:
            # Errors will be automatically tracked
            await recovery_manager.execute_with_recovery(
                lambda: 1 / 0, "supabase_demo")
            status = await recovery_manager.call("status")
    for w in caught:
        print(f"Note: {w.message}")
    fwd = status.get("forward") or {}
    print(f"Errors recorded by ermd: {status['errors_total']}")
    print(f"Forwarding to Supabase: "
          f"{'on' if fwd.get('enabled') else 'off'}, "
          f"backlog {status.get('outbox_backlog', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
