"""A TCP proxy in front of the MLflow server that can hold MLflow's answer to a transition, or
cut MLflow off right after one.

Requests pass straight through, so MLflow carries the transition out; the answer to the first
`hold` stage-transition or alias requests is kept back until `release()`. A worker waiting on that
answer is "mid-job" in the worst place: MLflow has moved the version, the worker has not recorded
it. With `cut_after_transition`, the transition and its answer pass, and every request after it
finds the connection closed (as when MLflow goes down right after the move) until `heal()`. The
proxy counts every transition request it sees, which is how a test knows MLflow was asked once.
"""

from __future__ import annotations

import socket
import threading

from quorum.localservices import free_port

TRANSITION_PATHS = (b"/model-versions/transition-stage", b"/registered-models/alias")
HTTP_METHODS = (b"GET", b"POST", b"PATCH", b"PUT", b"DELETE")


class HoldingProxy:
    def __init__(self, upstream_port: int, *, hold: int = 1, cut_after_transition: bool = False):
        self.upstream_port = upstream_port
        self.hold = hold
        self.cut_after_transition = cut_after_transition
        self.cut = threading.Event()  # set: every request is refused
        self.refused = 0
        self.transition_requests = 0
        self.held = 0
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def release(self) -> None:
        self._released.set()

    def heal(self) -> None:
        self.cut.clear()

    def close(self) -> None:
        self._closed = True
        self.release()
        for sock in [self._listener, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            holding = threading.Event()  # set while this connection's answers are held back
            threading.Thread(
                target=self._requests, args=(client, upstream, holding), daemon=True
            ).start()
            threading.Thread(
                target=self._answers, args=(upstream, client, holding), daemon=True
            ).start()

    def _requests(self, source, sink, holding: threading.Event) -> None:
        while chunk := self._recv(source):
            if self.cut.is_set() and chunk.startswith(HTTP_METHODS):
                with self._lock:
                    self.refused += 1
                for sock in (source, sink):
                    self._close(sock)
                return
            if chunk.startswith((b"POST", b"PATCH")) and any(p in chunk for p in TRANSITION_PATHS):
                with self._lock:
                    self.transition_requests += 1
                    if self.held < self.hold and not self.cut_after_transition:
                        self.held += 1
                        holding.set()
                    if self.cut_after_transition:
                        self.cut.set()  # this request and its answer still pass
            if not self._send(sink, chunk):
                break
        self._shut(sink)

    def _answers(self, source, sink, holding: threading.Event) -> None:
        while chunk := self._recv(source):
            if holding.is_set():
                self._released.wait()
            if not self._send(sink, chunk):
                break
        self._shut(sink)

    @staticmethod
    def _recv(sock) -> bytes:
        try:
            return sock.recv(65536)
        except OSError:
            return b""

    @staticmethod
    def _send(sock, data: bytes) -> bool:
        try:
            sock.sendall(data)
        except OSError:
            return False
        return True

    @staticmethod
    def _close(sock) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        except OSError:
            pass

    @staticmethod
    def _shut(sock) -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
