"""The crossing from asyncio and from plain code into trio, shared by :mod:`consensus.aio`
and :mod:`consensus.blocking`.

``thread.py`` runs a trio loop in a thread and takes calls into it; ``shared.py`` shares
one such thread among the objects of a front; ``mailbox.py`` carries many calls across for
one wake-up; ``handlers.py`` runs asyncio handlers on their caller's loop for the trio
drivers; ``proxy.py`` forwards the methods of the trio objects; ``declare.py`` and
``surface.py`` declare the forwarded names once, typed for each front; ``opening.py`` holds
a trio context manager open for the caller's ``async with`` / ``with``. docs/asyncio.md
explains the choice.
"""
