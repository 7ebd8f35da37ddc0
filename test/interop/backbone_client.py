#!/usr/bin/env python3
"""A backbone/1 client written from docs/PROTOCOL.md alone (interoperability check).

Standard library plus `cryptography` (Debian: python3-cryptography).

Usage:
    backbone_client.py IDENTITY_FILE [HOST:PORT]     connect and run the command loop
    backbone_client.py --vectors HANDSHAKE_JSON      check the document's test vectors

The identity file is the one `backbone keygen` writes (README § "The identity file"):
`id:` and `server:` lines, the pinned server key as a PUBLIC KEY PEM block and the
client's PKCS#8 key as a PRIVATE KEY PEM block; it must not be accessible to group or
others.

Commands, one per line on stdin:
    send <uuid> <text>      direct C2C message
    broadcast <text>        C2C broadcast
    status                  SERVER_STATUS; prints  STATUS <json>
    clients <id|name>...    CLIENT_STATUS; prints  CLIENTS <json>
    ping                    HEARTBEAT round trip; prints  pong
    quit [reason]           sends STOP and exits 0 (end of input does the same)

Output, one line per event:
    CONFIG <json>                      every CONFIG (the first one means: logged in)
    MSG <direct|broadcast|stored> <sender-uuid> <text>
    NOTICE <json>
    STOP <reason>                      the server stopped us (exit 0)
    ERROR <text>                       exit 1 when fatal (the session is over)

In <text> and <reason>, a backslash is written as \\\\, a newline as \\n and a carriage
return as \\r, so that every event stays on one line. Invalid UTF-8 is replaced.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import math
import os
import re
import socket
import stat
import struct
import sys
import threading
import time
import uuid as uuidlib
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# --- constants (PROTOCOL.md § Constants) -------------------------------------------

MAX_FRAME_PAYLOAD = 65535
TAG_BYTES = 16
MAX_C2C_DATA = 65498
CONTROL_HEADER_BYTES = 5
C2C_HEADER_BYTES = 17
STORED_HEADER_BYTES = 21
MIN_CHALLENGE_DATA = 64
COUNTER_LIMIT = 2**32
BROADCAST_ID = b"\xff" * 16
LABEL_TRANSCRIPT = b"backbone/1 transcript"
LABEL_KEYS = b"backbone/1 keys"
LABEL_AUTH = b"backbone/1 auth"
RSA_BITS = (2048, 3072, 4096)
DEFAULT_PORT = 7447

# byte 0 of a message: (format << 4) | type
C2C_DIRECT, C2C_BROADCAST, C2C_STORED = 0x00, 0x01, 0x02
HEARTBEAT, CONFIG, SERVER_STATUS, CLIENT_STATUS, NOTICE, ACK, STOP = (
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x1F,
)

# key: (lowest, highest, integer) — PROTOCOL.md § Connection settings.
SETTING_RANGES = {
    "heartbeat_interval": (0.05, 3600, False),
    "heartbeat_timeout": (0.1, 10800, False),
    "connection_timeout": (0.05, 3600, False),
    "max_message_size": (1, MAX_C2C_DATA, True),
}
DEFAULT_SETTINGS = {
    "heartbeat_interval": 15.0,
    "heartbeat_timeout": 45.0,
    "connection_timeout": 10.0,
    "max_message_size": MAX_C2C_DATA,
}

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Fatal(Exception):
    """Ends the session: printed as `ERROR <text>`, exit status 1."""


# --- small helpers -----------------------------------------------------------------


def fingerprint(spki: bytes) -> str:
    """`SHA256:` + unpadded standard base64 of SHA-256(SPKI DER)."""
    digest = hashlib.sha256(spki).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "big")


def control(byte0: int, body: bytes = b"") -> bytes:
    return bytes([byte0]) + struct.pack(">I", int(time.time()) & 0xFFFFFFFF) + body


def raw_public(key: X25519PrivateKey) -> bytes:
    """The 32-byte X25519 public key (public_bytes_raw() needs cryptography >= 40)."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def uuid_text(raw: bytes) -> str:
    return str(uuidlib.UUID(bytes=raw))


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check_rsa_key(key: object, what: str) -> None:
    if not isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        raise Fatal(f"{what} is not an RSA key")
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    numbers = public.public_numbers()
    if numbers.e != 65537 or key.key_size not in RSA_BITS:
        raise Fatal(f"{what}: RSA key must have e = 65537 and 2048, 3072 or 4096 bits")


# --- identity file -----------------------------------------------------------------


class Identity:
    def __init__(self, client_id: bytes, server: str, server_spki: bytes, key: rsa.RSAPrivateKey):
        self.client_id = client_id
        self.server = server
        self.server_spki = server_spki
        self.key = key


def pem_blocks(text: str) -> dict[str, bytes]:
    blocks: dict[str, bytes] = {}
    for m in re.finditer(r"-----BEGIN ([A-Z ]+)-----\s*(.*?)-----END \1-----", text, re.S):
        label, body = m.group(1), re.sub(r"\s+", "", m.group(2))
        if label in blocks:
            raise Fatal(f"identity file has two {label} blocks")
        blocks[label] = base64.b64decode(body, validate=True)
    return blocks


def load_identity(path: str) -> Identity:
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Fatal(f"cannot read identity file {path}: {e.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise Fatal(f"identity file {path} is accessible to group or others (chmod 600 it)")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z-]+):\s*(.*?)\s*$", line)
        if m and m.group(1) not in fields:
            fields[m.group(1)] = m.group(2)
    if fields.get("backbone-identity", "1") != "1":
        raise Fatal(f"unknown identity file version {fields['backbone-identity']}")
    if "id" not in fields or not UUID_TEXT.match(fields["id"]):
        raise Fatal("identity file has no valid `id:` line")
    blocks = pem_blocks(text)
    if "PUBLIC KEY" not in blocks:
        raise Fatal("identity file has no pinned server key (no trust on first use)")
    if "PRIVATE KEY" not in blocks:
        raise Fatal("identity file has no PRIVATE KEY block (PKCS#8)")
    server_spki = blocks["PUBLIC KEY"]
    check_rsa_key(serialization.load_der_public_key(server_spki), "pinned server key")
    key = serialization.load_der_private_key(blocks["PRIVATE KEY"], password=None)
    check_rsa_key(key, "client key")
    assert isinstance(key, rsa.RSAPrivateKey)
    return Identity(uuidlib.UUID(fields["id"]).bytes, fields.get("server", ""), server_spki, key)


def split_host_port(address: str) -> tuple[str, int]:
    m = re.match(r"^\[(.+)\]:(\d+)$", address) or re.match(r"^([^:]+):(\d+)$", address)
    if m:
        return m.group(1), int(m.group(2))
    if address:
        return address.strip("[]"), DEFAULT_PORT
    raise Fatal("no server address (identity file `server:` line or HOST:PORT argument)")


# --- framing -----------------------------------------------------------------------


class FrameReader:
    """Reassembles frames by their u16 size, whatever the TCP read boundaries."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _frame_in_buffer(self, max_payload: int) -> bytes | None:
        if len(self.buf) < 2:
            return None
        size = int.from_bytes(self.buf[0:2], "big")
        if size == 0 or size > max_payload:
            raise Fatal(f"protocol error: frame size {size}")
        if len(self.buf) < 2 + size:
            return None
        payload = bytes(self.buf[2 : 2 + size])
        del self.buf[: 2 + size]
        return payload

    def fill(self, deadline: float | None = None) -> None:
        """One TCP read into the buffer; Fatal when the connection has ended."""
        try:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as e:
            raise Fatal(f"connection lost: {e.strerror or e}") from None
        if not chunk:
            raise Fatal("connection closed by the server")
        self.buf += chunk

    def read_frame(self, deadline: float) -> bytes:
        while (frame := self._frame_in_buffer(MAX_FRAME_PAYLOAD)) is None:
            self.fill(deadline)
        return frame

    def buffered_frames(self) -> list[bytes]:
        """Every complete frame already in the buffer (none if there is none)."""
        frames = []
        while (frame := self._frame_in_buffer(MAX_FRAME_PAYLOAD)) is not None:
            frames.append(frame)
        return frames


def frame(payload: bytes) -> bytes:
    assert 1 <= len(payload) <= MAX_FRAME_PAYLOAD
    return len(payload).to_bytes(2, "big") + payload


# --- handshake (PROTOCOL.md § Handshake) ----------------------------------------------


def parse_challenge(challenge: bytes, pinned_spki: bytes) -> bytes:
    """Step 2: layout and pin checks. Returns E_s."""
    if len(challenge) < 2:
        raise Fatal("bad challenge")
    key_size = int.from_bytes(challenge[0:2], "big")
    if key_size < 1 or len(challenge) < 2 + key_size + MIN_CHALLENGE_DATA:
        raise Fatal("bad challenge")
    spki = challenge[2 : 2 + key_size]
    if spki != pinned_spki:
        raise Fatal(
            f"server key mismatch expected {fingerprint(pinned_spki)} got {fingerprint(spki)}"
            " (possible man-in-the-middle)"
        )
    return challenge[2 + key_size : 2 + key_size + 32]


def build_response(
    challenge: bytes,
    identity: Identity,
    e_c: X25519PrivateKey,
    r_c: bytes,
) -> tuple[bytes, bytes, bytes, bytes]:
    """Steps 3 and 4. Returns (response payload, k_c2s, k_s2c, th)."""
    e_s_pub = parse_challenge(challenge, identity.server_spki)
    e_c_pub = raw_public(e_c)
    try:
        shared = e_c.exchange(X25519PublicKey.from_public_bytes(e_s_pub))
    except ValueError:  # cryptography refuses an all-zero result itself
        shared = bytes(32)
    if shared == bytes(32):
        raise Fatal("server sent a low-order X25519 key")
    th = hashlib.sha256(LABEL_TRANSCRIPT + challenge + e_c_pub).digest()
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=th, info=LABEL_KEYS).derive(shared + r_c)
    k_c2s, k_s2c = okm[:32], okm[32:]
    server_pub = serialization.load_der_public_key(identity.server_spki)
    check_rsa_key(server_pub, "server key")
    assert isinstance(server_pub, rsa.RSAPublicKey)
    block = server_pub.encrypt(e_c_pub + r_c, OAEP)
    signature = identity.key.sign(LABEL_AUTH + th + identity.client_id, PSS, hashes.SHA256())
    sealed = AESGCM(k_c2s).encrypt(nonce(0), identity.client_id + signature, None)
    return block + sealed, k_c2s, k_s2c, th


# --- the session ---------------------------------------------------------------------


class Session:
    def __init__(self, identity: Identity, address: str):
        self.identity = identity
        self.address = address
        self.settings = dict(DEFAULT_SETTINGS)
        self.out_lock = threading.Lock()  # printing
        self.send_lock = threading.Lock()  # the single writer: counter, seal, write
        self.done = threading.Event()
        self.exit_code = 0
        self.stored_received = 0  # C2C 0x02 received on this connection (for ACK)
        self.stored_acked = 0
        self.heartbeats: collections.deque[bool] = collections.deque()  # True = a `ping`
        self.sock: socket.socket | None = None
        self.stopping = False  # our STOP is written: send nothing more

    # output

    def emit(self, line: str) -> None:
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def finish(self, code: int, line: str | None = None) -> None:
        """Ends the session once; the first caller's line and code win."""
        with self.out_lock:
            if self.done.is_set():
                return
            if line is not None:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            self.exit_code = code
            self.done.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # sending

    def send(self, message: bytes, *, heartbeat: bool | None = None) -> None:
        """Seals `message` with the next c2s counter and writes it, all under one lock."""
        with self.send_lock:
            if self.done.is_set() or self.stopping:
                return
            if self.send_counter >= COUNTER_LIMIT - 1 and message[0] != STOP:
                message = control(STOP, b"rekey required")
            payload = AESGCM(self.k_c2s).encrypt(nonce(self.send_counter), message, None)
            self.send_counter += 1
            if heartbeat is not None:
                self.heartbeats.append(heartbeat)
            if message[0] == STOP:
                # Set before writing: the server may close before sendall() returns,
                # and the receive loop must then take the close as the expected end.
                self.stopping = True
            assert self.sock is not None
            try:
                self.sock.sendall(frame(payload))
            except OSError as e:
                if self.stopping:  # the server closed first: the session is over anyway
                    return
                raise Fatal(f"connection lost: {e.strerror or e}") from None
            now = time.monotonic()
            self.last_sent = now
            if message[0] == HEARTBEAT:
                self.last_heartbeat = now
            if message[0] == STOP:
                # Half-close, then let the receive loop drain until the server closes
                # (closing with unread input would reset the connection).
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    # handshake

    def connect(self) -> None:
        host, port = split_host_port(self.address)
        timeout = self.settings["connection_timeout"]
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise Fatal(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.reader = FrameReader(sock)
        try:
            challenge = self.reader.read_frame(time.monotonic() + timeout)
            e_c = X25519PrivateKey.generate()
            r_c = os.urandom(32)
            response, self.k_c2s, self.k_s2c, _ = build_response(challenge, self.identity, e_c, r_c)
            del e_c, r_c
            sock.sendall(frame(response))
            # ACK 0 right after the response (c2s counter 1): acknowledged delivery.
            self.send_counter = 1
            ack0 = control(ACK, struct.pack(">I", 0))
            sock.sendall(frame(AESGCM(self.k_c2s).encrypt(nonce(1), ack0, None)))
            self.send_counter = 2
            first = self.reader.read_frame(time.monotonic() + timeout)
        except socket.timeout:
            raise Fatal("handshake timed out") from None
        try:
            message = AESGCM(self.k_s2c).decrypt(nonce(0), first, None)
        except InvalidTag:
            raise Fatal("handshake failed: the first frame does not open") from None
        self.recv_counter = 1
        if len(message) >= CONTROL_HEADER_BYTES and message[0] == STOP:
            reason = message[5:].decode("utf-8", "replace")
            if reason == "authentication failed":
                raise Fatal("authentication failed")
            raise Fatal(f"refused: {escape(reason)}")
        if len(message) < CONTROL_HEADER_BYTES or message[0] != CONFIG:
            raise Fatal("handshake failed: the first frame is not CONFIG")
        self.apply_config(message[5:])
        sock.settimeout(None)
        now = time.monotonic()
        self.last_sent = self.last_received = self.last_heartbeat = now

    def apply_config(self, body: bytes) -> None:
        try:
            values = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            values = None
        if not isinstance(values, dict):
            raise Fatal("CONFIG body is not a JSON object")
        # PROTOCOL.md § Connection settings: every value is bounded by the client; out of
        # range is STOP `protocol error` (the first CONFIG then fails the handshake).
        new = dict(self.settings)
        for key, (low, high, integer) in SETTING_RANGES.items():
            if key not in values:
                continue
            v = values[key]
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  and low <= v <= high and (not integer or float(v).is_integer()))
            if not ok:
                self.protocol_error(f"CONFIG {key} {v!r} is outside {low}..{high}")
            new[key] = float(v)
        if new["heartbeat_timeout"] <= new["heartbeat_interval"]:
            self.protocol_error("CONFIG heartbeat_timeout is not longer than heartbeat_interval")
        new["max_message_size"] = int(new["max_message_size"])
        self.settings = new
        self.emit("CONFIG " + compact(values))

    def protocol_error(self, why: str) -> None:
        """Sends STOP `protocol error` and ends (Fatal)."""
        try:
            self.send(control(STOP, b"protocol error"))
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass
        raise Fatal(f"protocol error: {why}")

    # receiving

    def receive_loop(self) -> None:
        try:
            while not self.done.is_set():
                # Frames already buffered first: the handshake's last read may have
                # brought stored messages along with CONFIG.
                for payload in self.reader.buffered_frames():
                    self.handle_frame(payload)
                    if self.done.is_set():
                        return
                # One ACK per batch of input, with the running count.
                if self.stored_received != self.stored_acked:
                    self.stored_acked = self.stored_received
                    self.send(control(ACK, struct.pack(">I", self.stored_acked & 0xFFFFFFFF)))
                self.reader.fill()
        except Fatal as e:
            self.finish(0 if self.stopping else 1, None if self.stopping else f"ERROR {e}")

    def handle_frame(self, payload: bytes) -> None:
        if self.recv_counter >= COUNTER_LIMIT:
            raise Fatal("s2c counter exhausted")
        try:
            m = AESGCM(self.k_s2c).decrypt(nonce(self.recv_counter), payload, None)
        except InvalidTag:
            raise Fatal("protocol error: a frame failed to open") from None
        self.recv_counter += 1
        self.last_received = time.monotonic()
        fmt, typ = m[0] >> 4, m[0] & 0x0F
        # Order of checks (PROTOCOL.md § Messages): reserved, too short, out of scope.
        if fmt >= 3 or (fmt == 0 and typ >= 3) or (fmt == 1 and 6 <= typ <= 14):
            return
        if fmt == 0 and len(m) < (STORED_HEADER_BYTES if typ == 2 else C2C_HEADER_BYTES):
            raise Fatal("protocol error: C2C message too short")
        if fmt == 1 and len(m) < CONTROL_HEADER_BYTES:
            raise Fatal("protocol error: control message too short")
        if fmt == 2 or m[0] == ACK:
            return
        if fmt == 0:
            sender = uuid_text(m[1:17])
            if typ == 2:
                self.stored_received += 1
                data, kind = m[21:], "stored"
            else:
                data, kind = m[17:], ("direct", "broadcast")[typ]
            self.emit(f"MSG {kind} {sender} {escape(data.decode('utf-8', 'replace'))}")
            return
        body = m[5:]
        if m[0] == HEARTBEAT:
            if self.heartbeats and self.heartbeats.popleft():
                self.emit("pong")
        elif m[0] == CONFIG:
            self.apply_config(body)
        elif m[0] in (SERVER_STATUS, CLIENT_STATUS, NOTICE):
            name = {SERVER_STATUS: "STATUS", CLIENT_STATUS: "CLIENTS", NOTICE: "NOTICE"}[m[0]]
            try:
                value = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise Fatal(f"{name} body is not JSON") from None
            self.emit(f"{name} {compact(value)}")
        elif m[0] == STOP:
            self.finish(0, "STOP " + escape(body.decode("utf-8", "replace")))

    # liveness (PROTOCOL.md § Liveness)

    def liveness_loop(self) -> None:
        try:
            while not self.done.wait(min(1.0, self.settings["heartbeat_interval"] / 4)):
                now = time.monotonic()
                interval = self.settings["heartbeat_interval"]
                if now - self.last_received >= self.settings["heartbeat_timeout"]:
                    raise Fatal("server silent for heartbeat_timeout; closing")
                if now - self.last_sent >= interval or (
                    now - self.last_received >= interval and now - self.last_heartbeat >= interval
                ):
                    self.send(control(HEARTBEAT), heartbeat=False)
        except Fatal as e:
            self.finish(1, f"ERROR {e}")

    # commands

    def command_loop(self) -> None:
        try:
            while not self.done.is_set():
                line = sys.stdin.readline()
                if not line:
                    line = "quit end of input"
                self.command(line.rstrip("\r\n"))
                if self.stopping:
                    # The server closes after our STOP; do not wait for it forever.
                    if not self.done.wait(2):
                        self.finish(0)
                    return
        except Fatal as e:
            self.finish(1, f"ERROR {e}")

    def command(self, line: str) -> None:
        verb, _, rest = line.lstrip(" ").partition(" ")
        if verb == "":
            return
        if verb == "send":
            to, _, text = rest.partition(" ")
            if not UUID_TEXT.match(to):
                self.emit(f"ERROR not a client ID: {to}")
                return
            self.send_c2c(C2C_DIRECT, uuidlib.UUID(to).bytes, text)
        elif verb == "broadcast":
            self.send_c2c(C2C_BROADCAST, BROADCAST_ID, rest)
        elif verb == "status":
            self.send(control(SERVER_STATUS))
        elif verb == "clients":
            names = rest.split()
            if len(names) > 256:
                self.emit("ERROR at most 256 entries per CLIENT_STATUS request")
                return
            self.send(control(CLIENT_STATUS, compact({"clients": names}).encode("utf-8")))
        elif verb == "ping":
            self.send(control(HEARTBEAT), heartbeat=True)
        elif verb == "quit":
            self.send(control(STOP, (rest or "bye").encode("utf-8")))
        else:
            self.emit(f"ERROR unknown command: {verb}")

    def send_c2c(self, byte0: int, address: bytes, text: str) -> None:
        data = text.encode("utf-8")
        if len(data) > self.settings["max_message_size"]:
            self.emit(f"ERROR message too large ({len(data)} > {self.settings['max_message_size']})")
            return
        self.send(bytes([byte0]) + address + data)

    def run(self) -> NoReturn:
        self.connect()
        for target in (self.receive_loop, self.liveness_loop, self.command_loop):
            threading.Thread(target=target, daemon=True).start()
        self.done.wait()
        assert self.sock is not None
        self.sock.close()
        # Leave at once: the command thread may be blocked reading stdin, and a daemon
        # thread holding a stdio lock can abort a normal interpreter shutdown.
        with self.out_lock:
            sys.stdout.flush()
            os._exit(self.exit_code)


# --- test vectors (PROTOCOL.md § Test vectors) ------------------------------------


def check_vectors(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    for case in cases:
        h = {k: bytes.fromhex(v) for k, v in case.items() if isinstance(v, str) and k != "name"
             and k != "config_json" and re.fullmatch(r"(?:[0-9a-f]{2})*", v)}
        server_key = serialization.load_der_private_key(h["server_private_pkcs8_der"], None)
        client_key = serialization.load_der_private_key(h["client_private_pkcs8_der"], None)
        assert isinstance(server_key, rsa.RSAPrivateKey) and isinstance(client_key, rsa.RSAPrivateKey)
        spki = server_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert spki == h["server_public_spki_der"], "server SPKI"
        assert h["challenge_payload"] == len(spki).to_bytes(2, "big") + spki + h["challenge_data"]
        e_c = X25519PrivateKey.from_private_bytes(h["e_c_private"])
        e_s = X25519PrivateKey.from_private_bytes(h["e_s_private"])
        assert raw_public(e_s) == h["e_s_public"] == h["challenge_data"][:32]
        assert raw_public(e_c) == h["e_c_public"]
        assert e_s.exchange(X25519PublicKey.from_public_bytes(h["e_c_public"])) == h["shared_secret"]
        identity = Identity(h["client_id"], "", spki, client_key)
        response, k_c2s, k_s2c, th = build_response(h["challenge_payload"], identity, e_c, h["r_c"])
        assert (th, k_c2s, k_s2c) == (h["th"], h["k_c2s"], h["k_s2c"]), "key schedule"
        # Checks 7-9 on the vector's response and on ours (check 10).
        m = server_key.key_size // 8
        for resp in (h["response_payload"], response):
            assert len(resp) == m + 16 + client_key.key_size // 8 + 16
            assert server_key.decrypt(resp[:m], OAEP) == h["e_c_public"] + h["r_c"]
            inner = AESGCM(k_c2s).decrypt(nonce(0), resp[m:], None)
            assert inner[:16] == h["client_id"]
            client_key.public_key().verify(inner[16:], LABEL_AUTH + th + h["client_id"], PSS,
                                           hashes.SHA256())
        config = bytes([CONFIG]) + struct.pack(">I", case["config_timestamp"]) + case[
            "config_json"].encode("utf-8")
        assert config == h["config_message"]
        assert AESGCM(k_s2c).encrypt(nonce(0), config, None) == h["config_frame_payload"]
        assert AESGCM(k_s2c).decrypt(nonce(0), h["config_frame_payload"], None) == config
        for direction, key, who in (("client_to_server", k_c2s, "recipient"),
                                    ("server_to_client", k_s2c, "sender")):
            c = {k: (bytes.fromhex(v) if isinstance(v, str) else v)
                 for k, v in case["c2c"][direction].items()}
            assert c["message_data"] == b"\x00" + c[who] + c["data"]
            assert AESGCM(key).encrypt(nonce(c["counter"]), c["message_data"], None) == c["payload"]
        print(f"ok {case['name']}")
    return 0


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[attr-defined]
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[attr-defined]
    if len(argv) == 3 and argv[1] == "--vectors":
        return check_vectors(argv[2])
    if len(argv) not in (2, 3) or argv[1].startswith("-"):
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        identity = load_identity(argv[1])
        session = Session(identity, argv[2] if len(argv) == 3 else identity.server)
        return session.run()
    except Fatal as e:
        print(f"ERROR {e}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
