"""Work sharing: the ledger and the two sides of the protocol as sans-IO objects, and their drivers.

The pure cores are exported here: :class:`TaskLedger` (exactly-once books of one
distribution), :class:`DispatcherProtocol` and :class:`WorkerProtocol`. The drivers,
:class:`consensus.Dispatcher`, :class:`consensus.Distribution` and :class:`consensus.Worker`,
are exported by :mod:`consensus`. See ``docs/work.md``.
"""

from consensus.work.dispatcher_protocol import DispatcherProtocol
from consensus.work.ledger import TaskLedger
from consensus.work.task import LedgerStatistics
from consensus.work.worker_protocol import WorkerProtocol

__all__ = ["DispatcherProtocol", "LedgerStatistics", "TaskLedger", "WorkerProtocol"]
