"""Work done ahead in a second thread: the next items of a generator made while the last is used."""

import queue
import threading

_DONE = object()


def read_ahead(iterable, depth=1):
    """The items of ``iterable``, in order, made by a second thread up to ``depth`` items ahead.

    For two stages of long work that let go of the GIL (decoding, numpy, ONNX Runtime,
    encoding): the second stage works on item ``k`` while the first makes ``k + 1``. Memory
    grows by ``depth`` items. An exception in the thread is raised here, at the item it stopped
    at; closing this generator early (``break``, an error, Ctrl-C) stops the thread after the
    item it is making.

    Parameters
    ----------
    iterable : iterable
    depth : int, default=1
        Items made ahead and held, at most (>= 1).

    Yields
    ------
    item
        Each item of ``iterable``.
    """
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                del item
                if stop.is_set():
                    return
            outcome = (_DONE, None)
        except BaseException as exc:  # raised in the caller's thread, where it can be handled
            outcome = (_DONE, exc)
        while not stop.is_set():
            try:
                items.put(outcome, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="skavc-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
            del item
    finally:
        stop.set()
        while thread.is_alive():  # let a blocked put through, then wait for the item being made
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)
