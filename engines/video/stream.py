"""Live network video in through PyAV (FFmpeg): RTSP, SRT, MPEG-TS over UDP and RTP, with low-latency options and
reconnection.

A stream is opened with FFmpeg's low-latency settings (a short probe without frame-rate estimation, socket timeouts;
for MPEG-TS no frame parser, see `whole_frames`) and decoded with `flags=low_delay` and slice threads only (frame
threads hold frames back). When it stops delivering (the sender died, the network dropped, the server closed the
session) the reader reconnects, with exponential backoff towards servers; after `give_up_s` without a frame it ends
the stream cleanly. Each gap (from the last frame before the drop to the first frame after it) is recorded.
URLs are checked before anything opens: one `InputError` line naming the key and the URL for a scheme we do not
take, a missing host or port; `missing_protocol` names a protocol this FFmpeg build lacks.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import av
import av.format
import numpy as np

from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

INPUT_SCHEMES = ("rtsp", "rtsps", "srt", "udp", "rtp")
OUTPUT_FORMATS = {"udp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts"}
"""Schemes a stream sink writes, and the container each carries (MPEG-TS; over RTP as payload type 33)."""
PROTOCOL_OF = {"rtsp": "tcp", "rtsps": "tls"}
"""FFmpeg protocol a scheme needs when it is not named after one (RTSP is a demuxer over TCP/TLS)."""
NEEDS_PORT = ("srt", "udp", "rtp")
SRT_HINT = ("PyPI's PyAV wheels bundle an FFmpeg without libsrt: relay with `srt-live-transmit <srt-url> "
            "udp://127.0.0.1:5000` (Debian package srt-tools) and read udp://, or build PyAV from source against an "
            "FFmpeg with libsrt")


def ffmpeg_protocols(output: bool = False) -> frozenset[str]:
    """The protocols the FFmpeg inside PyAV can read (or write), e.g. {"udp", "rtp", "tcp", ...}."""
    return _protocols(output)


@functools.lru_cache(maxsize=2)
def _protocols(output: bool) -> frozenset[str]:
    # dlsym on PyAV's own extension module finds libavformat among its dependencies, wherever the wheel put it
    enum = ctypes.CDLL(av.format.__file__).avio_enum_protocols
    enum.restype, enum.argtypes = ctypes.c_char_p, [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
    cursor, names = ctypes.c_void_p(None), set()
    while (name := enum(ctypes.byref(cursor), int(output))) is not None:
        names.add(name.decode())
    return frozenset(names)


def check_stream_url(url: Any, key: str, output: bool = False) -> str:
    """The URL's scheme; InputError "key: url: what is wrong" when it cannot name a stream we read (or write)."""
    schemes = tuple(OUTPUT_FORMATS) if output else INPUT_SCHEMES
    expected = ", ".join(f"{s}://" for s in schemes)
    if not isinstance(url, str) or "://" not in url:
        raise InputError(f"{key}: {url!r} is not a stream URL (expected {expected})")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise InputError(f"{key}: {url}: unsupported scheme '{scheme}://' (expected {expected})")
    try:
        port = parts.port
    except ValueError:
        raise InputError(f"{key}: {url}: the port is not a number from 0 to 65535") from None
    if scheme in NEEDS_PORT and port is None:
        raise InputError(f"{key}: {url}: no port (e.g. {scheme}://127.0.0.1:5000)")
    if scheme not in NEEDS_PORT and not parts.hostname:
        raise InputError(f"{key}: {url}: no host (e.g. {scheme}://camera.local:8554/stream)")
    return scheme


def missing_protocol(url: str, key: str, output: bool = False) -> str | None:
    """One line naming what to install when this FFmpeg build cannot speak the URL's protocol, else None."""
    scheme = urlsplit(url).scheme.lower()
    protocol = PROTOCOL_OF.get(scheme, scheme)
    if protocol in ffmpeg_protocols(output):
        return None
    hint = SRT_HINT if scheme == "srt" else "use a PyAV built against an FFmpeg that has it"
    return f"{key}: {url}: PyAV's FFmpeg has no '{protocol}' protocol: {hint}"


@dataclass
class StreamInputConfig:
    url: str
    """rtsp://host[:port]/path, srt://host:port, udp://host:port (MPEG-TS; 0.0.0.0 listens on every interface),
    rtp://host:port (MPEG-TS payload; other payloads need an SDP file)."""
    open_timeout_s: float = 3.0
    """Longest wait for one connection attempt (RTSP handshake, or the first packets of UDP/SRT/RTP)."""
    read_timeout_s: float = 1.0
    """No data for this long means the stream dropped: reconnect."""
    give_up_s: float = 10.0
    """After a drop, end the stream cleanly when no frame arrived for this long (also the wait for the first one)."""
    retry_initial_ms: float = 100.0
    retry_max_ms: float = 2000.0
    """Backoff between attempts to connect to a server (RTSP, SRT caller): doubles from the first value up to the
    second. Listeners (UDP, RTP, SRT `mode=listener`) wait for packets without pause."""
    probesize: int = 65536
    """Bytes FFmpeg reads to find the stream's format (small: starts faster; too small misses the frame size)."""
    analyzeduration_ms: float = 100.0
    whole_frames: bool = True
    """MPEG-TS (udp, srt, rtp): each PES packet holds one whole frame, as most encoders and StreamSink send it, so
    FFmpeg's frame parser is skipped; it would hold every frame until the next one starts (one frame period of
    latency). Set false for a sender that splits frames across PES packets."""
    options: dict[str, str | int | float] = field(default_factory=dict)
    """Extra FFmpeg options, over ours (e.g. {rtsp_transport: udp} or {buffer_size: 4194304})."""

    def __post_init__(self) -> None:
        check_stream_url(self.url, "url")
        for name in ("open_timeout_s", "read_timeout_s", "give_up_s", "retry_initial_ms"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.retry_max_ms < self.retry_initial_ms:
            raise InputError(f"retry_max_ms: {self.retry_max_ms} is below retry_initial_ms {self.retry_initial_ms}")
        if self.probesize < 32:
            raise InputError(f"probesize: FFmpeg needs at least 32 bytes, got {self.probesize}")


def input_options(config: StreamInputConfig) -> dict[str, str]:
    """FFmpeg options for a low-latency live input of this URL's scheme, with the user's `options` on top.

    No frame-rate probe (`fpsprobesize=0`): FFmpeg would otherwise read ~20 frames before the first one comes out,
    a backlog of ~0.8 s at every (re)connection. No `fflags=nobuffer`: with that short probe there is no backlog to
    drop, and dropping the probed packets loses the first keyframe (one keyframe interval more to wait)."""
    scheme = urlsplit(config.url).scheme.lower()
    options = {"probesize": str(config.probesize), "analyzeduration": str(round(config.analyzeduration_ms * 1000)),
               "fpsprobesize": "0", "timeout": str(round(config.read_timeout_s * 1e6))}
    if config.whole_frames and scheme in OUTPUT_FORMATS:
        options["fflags"] = "noparse"
    if scheme in ("udp", "rtp"):
        options["overrun_nonfatal"] = "1"  # a burst that overflows the socket buffer loses packets, not the stream
    if scheme in ("rtsp", "rtsps"):
        options["rtsp_transport"] = "tcp"  # survives NAT and busy switches ({rtsp_transport: udp}: less delay)
    options.update({name: str(value) for name, value in config.options.items()})
    return options


class StreamReader:
    """Frames of a live network stream as HxWx3 uint8 RGB, reconnecting after drops until `give_up_s` passes."""

    def __init__(self, config: StreamInputConfig, should_stop: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self.should_stop = should_stop
        self.frames = 0
        self.gaps_s: list[float] = []
        """Seconds from the last frame before each drop to the first frame after it."""
        self.attempts = 0
        """Connection attempts that failed (each waited up to `open_timeout_s`)."""
        self.decode_errors = 0
        self.given_up = False
        self.last_error: str | None = None
        self._container: Any = None
        self._frames: Iterator[np.ndarray] | None = None
        self._last_frame_at = time.monotonic()
        self._dropped = False
        self._lock = threading.Lock()
        self._closed = False
        parts = urlsplit(config.url)
        self._listens = parts.scheme.lower() in ("udp", "rtp") or "mode=listener" in parts.query

    def open(self) -> None:
        """Connect for the first time; InputError naming the URL when no stream came within `give_up_s`."""
        self._last_frame_at = time.monotonic()
        if not self._connect_with_backoff():
            if self.should_stop():
                return
            raise InputError(f"{self.config.url}: no stream within {self.config.give_up_s:g} s "
                             f"({self.last_error or 'nothing received'})")

    def read(self) -> np.ndarray | None:
        """The next frame; None once the stream is given up or a stop was requested."""
        while not self.should_stop() and not self._closed:
            if self._frames is None and not self._connect_with_backoff():
                return None
            try:
                with self._lock:
                    frame = next(self._frames, None) if self._frames is not None else None
            except av.ExitError:  # PyAV's read timeout
                frame, self.last_error = None, f"no data for {self.config.read_timeout_s:g} s"
            except Exception as exc:  # a socket error, a closed session, damaged framing: all mean a drop
                frame, self.last_error = None, _reason(exc)
            if frame is not None:
                return self._received(frame)
            self._drop()
        with self._lock:  # closed while this thread was reading: release here
            self._release()
        return None

    def close(self) -> None:
        """Release the connection (a read in progress on another thread releases it when it returns)."""
        self._closed = True
        if self._lock.acquire(timeout=0.05):
            try:
                self._release()
            finally:
                self._lock.release()

    def _received(self, frame: np.ndarray) -> np.ndarray:
        now = time.monotonic()
        if self._dropped:
            gap = now - self._last_frame_at
            self.gaps_s.append(gap)
            self._dropped = False
            log.warning("%s: stream back after a %.2f s gap (%d reconnects so far)", self.config.url, gap,
                        len(self.gaps_s))
        self._last_frame_at = now
        self.frames += 1
        return frame

    def _drop(self) -> None:
        if not self._dropped:
            log.warning("%s: stream dropped (%s): reconnecting", self.config.url, self.last_error or "ended")
        self._dropped = True
        with self._lock:
            self._release()

    def _connect_with_backoff(self) -> bool:
        delay_s = self.config.retry_initial_ms / 1000
        while not self.should_stop() and not self._closed:
            left_s = self.config.give_up_s - (time.monotonic() - self._last_frame_at)
            if left_s <= 0:
                break
            started = time.monotonic()
            try:
                self._connect(min(self.config.open_timeout_s, left_s))
                return True
            except Exception as exc:  # refused, unreachable, timed out, not a stream yet: try again after a pause
                self.attempts += 1
                self.last_error = _reason(exc)
                log.debug("%s: connection attempt %d failed: %s", self.config.url, self.attempts, self.last_error)
            if self._listens:  # the attempt itself waited for packets; pause only after an instant failure (port taken)
                pause_s = delay_s - (time.monotonic() - started)
            else:
                pause_s, delay_s = delay_s, min(2 * delay_s, self.config.retry_max_ms / 1000)
            _sleep_unless(self.should_stop, min(pause_s, left_s))
        if not self.should_stop() and self.frames:
            self.given_up = True
            log.error("%s: no stream for %.1f s: giving up, ending the stream", self.config.url, self.config.give_up_s)
        return False

    def _connect(self, timeout_s: float) -> None:
        container = av.open(self.config.url, options=input_options(self.config),
                            timeout=(timeout_s, self.config.read_timeout_s))
        if not container.streams.video:
            container.close()
            raise InputError(f"{self.config.url}: the stream holds no video")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # frame threads would hold frames back
        stream.codec_context.options = {"flags": "low_delay"}
        with self._lock:
            self._container, self._frames = container, self._decode(container, stream)
        log.info("%s: connected (%s, %s)", self.config.url, container.format.name, stream.codec_context.name)

    def _decode(self, container: Any, stream: Any) -> Iterator[np.ndarray]:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.InvalidDataError:  # a damaged packet (lost datagrams): skip it, the next keyframe repairs
                self.decode_errors += 1
                continue
            for frame in frames:
                yield frame.to_ndarray(format="rgb24")

    def _release(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames = None, None


def _sleep_unless(stop: Callable[[], bool], seconds: float) -> None:
    end = time.monotonic() + seconds
    while not stop() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
