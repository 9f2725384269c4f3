"""Command attempts: what a command's record would say if its process died mid-flight.

Before a command's handler runs, the pipeline stores an attempt (``AuditLog.
record_attempt``): the command's audit record with the outcome ``INTERRUPTED``, in
``audit_attempts``, under the id of the process (``audit_owners``). The command's own
record deletes the attempt in the transaction that stores it. An attempt that outlives
its process is thus a command that may have had an effect (an invoice stored, a charge
sent) and has no record; the next process to start records it as ``INTERRUPTED``
(``AuditLog.close_interrupted``).

A process is gone when, on this host (same boot, same pid namespace), no process runs
with its pid and start time; on another host, when it has not renewed its row for
``LEASE_SECONDS`` (processes renew theirs every ``HEARTBEAT_SECONDS``).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from registry.audit_record import FIELDS, AuditRecord

#: How long a process on another host may go without renewing its row before its
#: attempts count as interrupted.
LEASE_SECONDS = 60.0
#: How often a process that stored attempts renews its row.
HEARTBEAT_SECONDS = 10.0

INTERRUPTED = "INTERRUPTED"
INTERRUPTED_STATUS = 500
INTERRUPTED_DETAIL = (
    "The process running this command stopped before its outcome was recorded; "
    "its effect, if any, is unknown"
)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def host_key() -> str:
    """Where pids mean the same process: the kernel's boot id and this pid namespace
    (Linux); elsewhere the host name."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    if boot and namespace:
        return f"{boot}/{namespace}"[:200]
    return f"host:{socket.gethostname()}"[:200]


def process_started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, ``/proc/<pid>/stat``); 0
    when it runs but this cannot be told; None when no such process runs."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is not None:
        fields = stat.rsplit(")", 1)[-1].split()
        return int(fields[19])  # field 22, starttime; fields[0] is field 3
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


@dataclass(frozen=True, slots=True)
class Process:
    """A process, as ``audit_owners`` names it."""

    host: str
    pid: int
    started: int

    @classmethod
    def current(cls) -> Process:
        pid = os.getpid()
        return cls(host_key(), pid, process_started(pid) or 0)


def is_gone(owner: Process, heartbeat_at: datetime, now: datetime, here: Process) -> bool:
    """Whether the process ``owner``, last seen alive at ``heartbeat_at``, has ended, as
    ``here`` (the asking process) can tell at ``now`` (both naive UTC)."""
    if owner.host == here.host:
        started = process_started(owner.pid)
        return started is None or (started != 0 and owner.started not in (0, started))
    return (now - heartbeat_at).total_seconds() > LEASE_SECONDS


def attempt_text(record: AuditRecord) -> str:
    """An attempt as ``audit_attempts.record`` keeps it: the record as JSON."""
    return json.dumps(record.as_dict(), separators=(",", ":"))


def interrupted_record(text: str) -> AuditRecord:
    """The ``INTERRUPTED`` record of a stored attempt."""
    values = json.loads(text)
    record = AuditRecord(**{name: values.get(name) for name in FIELDS})
    record.outcome = INTERRUPTED
    record.status = INTERRUPTED_STATUS
    record.detail = INTERRUPTED_DETAIL
    return record
