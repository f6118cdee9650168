"""ermd_client: the seed's asyncio error-recovery API, backed by ermd.

    from ermd_client import ErrorRecoveryManager

    async with ErrorRecoveryManager() as m:
        ok, result, err = await m.execute_with_recovery(
            fn, "operation_name", file_path, create_backup=True)

Standard library only; Python >= 3.9.  The daemon's socket: the
socket_path argument, then $ERMD_SOCKET, then /run/ermd/ermd.sock.
"""

from ._conn import (CircuitBreakerOpenError, CircuitBreakerOpenException,
                    Connection, DaemonConnectionError, ErmdError,
                    socket_path)
from ._core import (CircuitBreaker, CircuitBreakerConfig, CircuitState,
                    Classification, ErrorRecoveryManager, FallbackStorage,
                    RecoveryResult, RetryConfig, StorageBackend,
                    WorkflowStepError, recovery_operation)
from ._errors import ErrorType, RecoveryStrategy, error_object

# The seed's name for its multi-storage manager (m.fallback_storage).
FallbackStorageManager = FallbackStorage

__version__ = "0.1.0"

__all__ = [
    "CircuitBreaker", "CircuitBreakerConfig", "CircuitBreakerOpenError",
    "CircuitBreakerOpenException", "CircuitState", "Classification",
    "Connection", "DaemonConnectionError", "ErmdError", "ErrorRecoveryManager",
    "ErrorType", "FallbackStorage", "FallbackStorageManager",
    "RecoveryResult", "RecoveryStrategy",
    "RetryConfig", "StorageBackend", "WorkflowStepError", "error_object",
    "recovery_operation", "socket_path",
]
