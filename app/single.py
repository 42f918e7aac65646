"""One tray app per profile: a second launch hands its request ("show", or "show <page>") to
the first over a local socket and exits; the first brings its dashboard forward.

On Linux and macOS the socket lives in a directory only this user can enter
(`socket_dir`): a socket in the shared temporary directory could be raced or replaced by
another user of the computer. Windows names a pipe (its ACL is the user's)."""

from __future__ import annotations

import getpass
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

CONNECT_MS = 500


def socket_dir() -> Path:
    """A directory for the socket that only this user can enter: $XDG_RUNTIME_DIR when it is
    private, else `<tmp>/grove-village-<uid>`, created 0700 and checked to be ours and
    private (OSError in plain words when it is not)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and _private(Path(runtime)):
        return Path(runtime)
    path = Path(tempfile.gettempdir()) / f"grove-village-{os.getuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    if not _private(path):
        raise OSError(f"{path} is not a private directory of this user (it must belong to "
                      f"you and be mode 700): remove it, or fix it with 'chmod 700 {path}'.")
    return path


def _private(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
            and stat.S_IMODE(st.st_mode) & 0o077 == 0)


def server_name(profile_key: str) -> str:
    digest = hashlib.sha256(f"{getpass.getuser()}:{profile_key}".encode()).hexdigest()[:16]
    name = f"grove-village-{digest}"
    if os.name == "nt":
        return name
    return str(socket_dir() / name)


class SingleInstance(QObject):
    message = Signal(str)

    def __init__(self, profile_key: str) -> None:
        super().__init__()
        self.name = server_name(profile_key)
        self.server: QLocalServer | None = None

    def forward(self, message: str) -> bool:
        """True when another instance is running and took `message`."""
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if not sock.waitForConnected(CONNECT_MS):
            return False
        sock.write(message.encode()[:200] + b"\n")
        sock.waitForBytesWritten(CONNECT_MS)
        sock.disconnectFromServer()
        return True

    def listen(self) -> None:
        QLocalServer.removeServer(self.name)  # a stale socket left by a crash
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self.server.listen(self.name):
            raise OSError(f"cannot listen on {self.name}: {self.server.errorString()}")
        self.server.newConnection.connect(self._accept)

    def _accept(self) -> None:
        # the sender writes one short line right after connecting: read it here, briefly
        # (sockets are never handed to later callbacks, so none outlives the server)
        assert self.server is not None
        while (sock := self.server.nextPendingConnection()) is not None:
            deadline = CONNECT_MS
            while not sock.canReadLine() and deadline > 0:
                sock.waitForReadyRead(50)
                deadline -= 50
            line = bytes(sock.readLine(200).data()).decode(errors="replace").strip() \
                if sock.canReadLine() else ""
            sock.close()
            if line:
                self.message.emit(line)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
