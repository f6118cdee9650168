#!/usr/bin/env python3
"""Retry configuration (the seed README's example).

    ERMD_SOCKET=/path/to/ermd.sock python3 retry_config.py

The RetryConfig becomes the retry policy ermd decides with: only the
categories of retryable_exceptions are retried (ConnectionError ->
NETWORK_ERROR, TimeoutError -> TIMEOUT_ERROR)."""

import asyncio
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import ErrorRecoveryManager, RetryConfig

retry_config = RetryConfig(
    max_attempts=5,
    base_delay=0.05,          # the seed's example says 1.0; kept short here
    max_delay=60.0,
    backoff_factor=2.0,
    jitter=True,
    retryable_exceptions=(ConnectionError, TimeoutError)
)

calls = {"flaky": 0, "broken": 0}


async def flaky():
    calls["flaky"] += 1
    if calls["flaky"] < 3:
        raise TimeoutError("timed out")
    return "ok"


async def broken():
    calls["broken"] += 1
    raise ValueError("bad input")        # not retryable


async def main():
    async with ErrorRecoveryManager(retry_config=retry_config) as m:
        ok, result, err = await m.execute_with_recovery(flaky, "flaky")
        print(f"flaky: success={ok} result={result} attempts={calls['flaky']}")
        ok2, _, err = await m.execute_with_recovery(broken, "broken")
        print(f"broken: success={ok2} error={err!r} "
              f"attempts={calls['broken']}")
    return 0 if ok and not ok2 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
