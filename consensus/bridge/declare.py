"""Typed declarations of the forwarded names, one for both fronts.

``poll = method(Room.poll)`` on a proxy class reads, through an ``aio`` proxy, as
``async def poll(...)`` with ``Room.poll``'s parameters, and through a ``blocking`` proxy as
a plain ``def poll(...)`` returning the same value: the descriptors' ``__get__`` is typed by
the front of the instance (:class:`AioProxy` or :class:`BlockingProxy`), so
``consensus/bridge/surface.py`` declares each name once and mypy and editors see the right
signature in each front. At run time the proxy's class does the forwarding.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from consensus.bridge.proxy import AioIterator, AioProxy, BlockingIterator, BlockingProxy, Proxy

__all__ = ["attribute", "iterator", "method", "method_to", "plain", "plain_to"]

P = ParamSpec("P")
R = TypeVar("R")
Y = TypeVar("Y")
X = TypeVar("X", bound=Proxy)


class _Declared:
    """A forwarded method: its trio name, doc, kind and the proxy class of its result."""

    def __init__(self, fn: Callable[..., Any], wrap: type[Proxy] | None, kind: str) -> None:
        self.name = fn.__name__
        self.__doc__ = fn.__doc__
        self._wrap = wrap
        self._kind = kind

    def _bound(self, obj: Proxy) -> Any:
        wrap = None if self._wrap is None else functools.partial(self._wrap, thread=obj._thread)
        if self._kind == "async":
            return obj._async_method(self.name, wrap)
        if self._kind == "iterator":
            return obj._iterator_method(self.name)
        return obj._plain_method(self.name, wrap)


class _Method(_Declared, Generic[P, R]):
    @overload
    def __get__(self, obj: None, owner: type) -> _Method[P, R]: ...
    @overload
    def __get__(self, obj: AioProxy, owner: type) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __get__(self, obj: BlockingProxy, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: Proxy | None, owner: type) -> Any:
        return self if obj is None else self._bound(obj)


class _Iterator(_Declared, Generic[P, Y]):
    @overload
    def __get__(self, obj: None, owner: type) -> _Iterator[P, Y]: ...
    @overload
    def __get__(self, obj: AioProxy, owner: type) -> Callable[P, AioIterator[Y]]: ...
    @overload
    def __get__(self, obj: BlockingProxy, owner: type) -> Callable[P, BlockingIterator[Y]]: ...
    def __get__(self, obj: Proxy | None, owner: type) -> Any:
        return self if obj is None else self._bound(obj)


class _Plain(_Declared, Generic[P, R]):
    @overload
    def __get__(self, obj: None, owner: type) -> _Plain[P, R]: ...
    @overload
    def __get__(self, obj: Proxy, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: Proxy | None, owner: type) -> Any:
        return self if obj is None else self._bound(obj)


def method(fn: Callable[Concatenate[Any, P], Awaitable[R]]) -> _Method[P, R]:
    """An ``async def`` method: awaited from asyncio, a blocking call from plain code."""
    return _Method(fn, None, "async")


def method_to(fn: Callable[Concatenate[Any, P], Awaitable[Any]], proxy: type[X]) -> _Method[P, X]:
    """An ``async def`` method returning a trio object, shown as ``proxy`` (of the front)."""
    return _Method(fn, proxy, "async")


def iterator(fn: Callable[Concatenate[Any, P], AsyncIterator[Y]]) -> _Iterator[P, Y]:
    """A method returning an async iterator (``messages()``): ``async for`` / ``for``."""
    return _Iterator(fn, None, "iterator")


def plain(fn: Callable[Concatenate[Any, P], R]) -> _Plain[P, R]:
    """A plain method (``statistics()``), run in the trio thread."""
    return _Plain(fn, None, "plain")


def plain_to(fn: Callable[Concatenate[Any, P], Any], proxy: type[X]) -> _Plain[P, X]:
    """A plain method returning a trio object (``distribute()``), shown as ``proxy``."""
    return _Plain(fn, proxy, "plain")


class attribute(Generic[R]):  # lower case: used like ``property``
    """A property or plain attribute of the trio object, read in the trio thread."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> attribute[R]: ...
    @overload
    def __get__(self, obj: Proxy, owner: type) -> R: ...
    def __get__(self, obj: Proxy | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj.wrap(obj._thread.call_sync(getattr, obj._target, self.name))
