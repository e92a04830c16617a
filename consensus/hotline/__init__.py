"""Hotlines: a direct line between two agents, its protocol as a sans-IO object, and its driver.

The pure core is exported here: :class:`LineProtocol` (the rules of one end of a line; the
same for both ends but for its :class:`Role`) and the :class:`AskTable` it keeps. The driver,
:class:`consensus.Hotline`, is opened with :func:`consensus.hotline`. See ``docs/hotline.md``.
"""

from consensus.hotline.asks import AskTable
from consensus.hotline.events import Role
from consensus.hotline.protocol import LineProtocol

__all__ = ["AskTable", "LineProtocol", "Role"]
