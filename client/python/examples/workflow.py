#!/usr/bin/env python3
"""Workflow automation (the seed README's example).

    ERMD_SOCKET=/path/to/ermd.sock python3 workflow.py

ermd runs the workflow durably; the Python callables run here as client
steps, each with an optional rollback that runs if a later step fails."""

import asyncio
import os
import sys

# From a checkout, use the ermd_client beside this directory.
_top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_top, "ermd_client")):
    sys.path.insert(0, _top)

from ermd_client import ErrorRecoveryManager

data = {}


async def prepare_data():
    data["raw"] = [3, 1, 2]
    print("prepare: loaded", data["raw"])


def process_data():
    data["sorted"] = sorted(data["raw"])
    print("process: sorted", data["sorted"])
    return data["sorted"]


async def save_results():
    print("save: saved", data["sorted"])
    return {"saved": len(data["sorted"])}


def undo_prepare():
    data.clear()
    print("rollback: prepare undone")


async def main():
    async with ErrorRecoveryManager() as recovery_manager:
        operations = [
            {"name": "prepare", "callable": prepare_data,
             "rollback": undo_prepare},
            {"name": "process", "callable": process_data},
            {"name": "save", "callable": save_results}
        ]

        workflow_id = await recovery_manager.create_recovery_workflow(
            "data_workflow", operations, rollback_on_failure=True
        )

        success, errors = await recovery_manager.execute_recovery_workflow(
            workflow_id)
        print(f"Workflow {workflow_id}: success={success}, errors={errors}")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
