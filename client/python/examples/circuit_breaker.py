#!/usr/bin/env python3
"""Circuit breaker protection (the seed README's example).

    ERMD_SOCKET=/path/to/ermd.sock python3 circuit_breaker.py

The breaker lives in ermd: give it a name to share it with every process
on the host; without one it is private to this process."""

import asyncio
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import (CircuitBreaker, CircuitBreakerConfig,
                         CircuitBreakerOpenError)


def handle_state_change(old_state, new_state):
    print(f"Circuit breaker: {old_state} -> {new_state}")


async def unreliable_service():
    raise ConnectionError("service unavailable")


async def main():
    config = CircuitBreakerConfig(
        failure_threshold=5,
        recovery_timeout=60.0,
        state_change_callback=handle_state_change,
    )

    circuit_breaker = CircuitBreaker(config)
    try:
        for i in range(7):
            try:
                async with circuit_breaker.execute(unreliable_service):
                    response = await unreliable_service()
                    print(f"Response: {response}")
            except CircuitBreakerOpenError as e:
                print(f"Call {i + 1}: blocked, circuit is {e.state} "
                      f"(retry after {e.retry_after:.0f}s)")
            except ConnectionError as e:
                print(f"Call {i + 1}: failed: {e}")
        await asyncio.sleep(0.1)        # let the state event arrive
        print(f"Circuit breaker state: {circuit_breaker.state}")
    finally:
        await circuit_breaker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
