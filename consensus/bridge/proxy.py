"""One proxy mechanism for every public object, for asyncio callers and for plain code.

A proxy holds a trio object (a ``Room``, a ``Hotline``...) and its
:class:`~consensus.bridge.shared.Lease` on the trio thread it lives in, and forwards each
attribute by its kind on the trio class:

========================  ======================================  ==========================
trio attribute            ``consensus.aio``                       ``consensus.blocking``
========================  ======================================  ==========================
``async def`` method      coroutine, awaited on the caller's loop  plain call, blocks
async generator / method  async iterator (:class:`AioIterator`)    iterator
returning one
plain method, property    plain call, run in the trio thread       the same
========================  ======================================  ==========================

Results that are trio objects come back as proxies of the same front (``PROXIES``), so a
``member.hotline(peer)`` is an ``aio.Hotline``. ``surface.py`` declares each name once, for
both fronts, with the typed descriptors of ``declare.py``; a name it does not declare is
still forwarded by ``__getattr__``, untyped. Arguments from asyncio are adapted by
:func:`~consensus.bridge.handlers.adapt_arguments`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from consensus.bridge.handlers import adapt_arguments
from consensus.bridge.shared import Lease

__all__ = ["AioIterator", "AioProxy", "BlockingIterator", "BlockingProxy", "Proxy"]

Y = TypeVar("Y")


class Proxy:
    """A trio object seen from outside its thread. ``PROXIES`` maps trio classes to the
    proxy classes of this front: a front's class registers itself there by the ``TRIO``
    class its surface names."""

    __slots__ = ("_target", "_thread")
    PROXIES: ClassVar[dict[type, type[Proxy]]] = {}
    TRIO: ClassVar[type | None] = None  # the trio class shown (set by the surface classes)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TRIO is not None and cls.PROXIES is not Proxy.PROXIES:  # a front's class, not a surface
            cls.PROXIES[cls.TRIO] = cls

    def __init__(self, target: Any, thread: Lease) -> None:
        self._target = target
        self._thread = thread

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} of {self._thread.call_sync(repr, self._target)}>"

    def __getattr__(self, name: str) -> Any:  # what the public module does not declare, untyped
        if name.startswith("__"):
            raise AttributeError(name)
        kind = inspect.getattr_static(type(self._target), name, None)
        if inspect.isasyncgenfunction(kind):
            return self._iterator_method(name)
        if inspect.iscoroutinefunction(kind):
            return self._async_method(name, self.wrap)
        if callable(kind) and not isinstance(kind, property):
            return self._plain_method(name, self.wrap)
        return self.wrap(self._thread.call_sync(getattr, self._target, name))

    def wrap(self, value: Any) -> Any:
        """``value`` as this front shows it: a trio object as its proxy, an async iterator
        as an iterator of this front, anything else as it is."""
        proxy = self.PROXIES.get(type(value))
        if proxy is not None:
            return proxy(value, self._thread)
        if type(value) is tuple:  # (peer, line) from member.hotlines()
            return tuple(self.wrap(item) for item in value)
        if isinstance(value, AsyncIterator):
            return self.iterate(value)
        return value

    def _plain_method(self, name: str, wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            value = self._thread.call_sync(functools.partial(getattr(self._target, name), *args, **kwargs))
            return value if wrap is None else wrap(value)

        return call

    def _iterator_method(self, name: str) -> Callable[..., Any]:
        plain = self._plain_method(name, None)
        return lambda *args, **kwargs: self.iterate(plain(*args, **kwargs))

    def _async_method(self, name: str, wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
        raise NotImplementedError

    def iterate(self, source: AsyncIterable[Any]) -> Any:
        raise NotImplementedError


class AioProxy(Proxy):
    """The asyncio front: ``async def`` methods become coroutines awaited on the caller's loop."""

    __slots__ = ()
    PROXIES: ClassVar[dict[type, type[Proxy]]] = {}

    def _async_method(self, name: str, wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            args, kw = adapt_arguments(args, kwargs, asyncio.get_running_loop())
            value = await self._thread.acall(functools.partial(getattr(self._target, name), *args, **kw))
            return value if wrap is None else wrap(value)

        return call

    def _plain_method(self, name: str, wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
        plain = super()._plain_method(name, wrap)

        def call(*args: Any, **kwargs: Any) -> Any:  # a distribute(tasks) may take an async iterable
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return plain(*args, **kwargs)
            args, kw = adapt_arguments(args, kwargs, loop)
            return plain(*args, **kw)

        return call

    def iterate(self, source: AsyncIterable[Any]) -> AioIterator[Any]:
        return AioIterator(source, self._thread, self.wrap)


class BlockingProxy(Proxy):
    """The plain front: ``async def`` methods become calls that block until trio answers."""

    __slots__ = ()
    PROXIES: ClassVar[dict[type, type[Proxy]]] = {}

    def _async_method(self, name: str, wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            value = self._thread.call(functools.partial(getattr(self._target, name), *args, **kwargs))
            return value if wrap is None else wrap(value)

        return call

    def iterate(self, source: AsyncIterable[Any]) -> BlockingIterator[Any]:
        return BlockingIterator(source, self._thread, self.wrap)


class AioIterator(Generic[Y]):
    """A trio async iterator read from asyncio: ``async for``; :meth:`aclose` (or leaving
    ``async with``) ends it early, in trio (a streamed ask, say, stops waiting for chunks)."""

    __slots__ = ("_iterator", "_thread", "_wrap")

    def __init__(self, source: AsyncIterable[Y], thread: Lease, wrap: Callable[[Any], Any] | None = None) -> None:
        self._iterator = thread.call_sync(aiter, source)
        self._thread = thread
        self._wrap = wrap

    def __aiter__(self) -> AioIterator[Y]:
        return self

    async def __anext__(self) -> Y:
        item: Y = await self._thread.acall(self._iterator.__anext__)
        return item if self._wrap is None else self._wrap(item)

    async def aclose(self) -> None:
        close = getattr(self._iterator, "aclose", None)
        if close is not None and self._thread.running:
            await self._thread.acall(close)

    async def __aenter__(self) -> AioIterator[Y]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class BlockingIterator(Generic[Y]):
    """A trio async iterator read from plain code: ``for``; :meth:`close` (or leaving
    ``with``) ends it early, in trio."""

    __slots__ = ("_iterator", "_thread", "_wrap")

    def __init__(self, source: AsyncIterable[Y], thread: Lease, wrap: Callable[[Any], Any] | None = None) -> None:
        self._iterator = thread.call_sync(aiter, source)
        self._thread = thread
        self._wrap = wrap

    def __iter__(self) -> Iterator[Y]:
        return self

    def __next__(self) -> Y:
        try:
            item: Y = self._thread.call(self._iterator.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None
        return item if self._wrap is None else self._wrap(item)

    def close(self) -> None:
        close = getattr(self._iterator, "aclose", None)
        if close is not None and self._thread.running:
            self._thread.call(close)

    def __enter__(self) -> BlockingIterator[Y]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
