"""Local files another user of the computer could reach: a village key file readable by
group or others is refused with the fix in plain words; the tray's single-instance socket
lives in a directory only this user can enter, and a shared or foreign one is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.errors import IdentityError
from core.identity import KEY_FILE_NAME, load_or_create_key
from core.paths import node_paths


def test_a_key_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    paths = node_paths("default", {"GROVE_HOME": str(tmp_path / "h")}).ensure()
    key, _ = load_or_create_key(paths, env={"GROVE_KEY_STORE": "file"})
    f = paths.data_dir / KEY_FILE_NAME
    f.chmod(0o644)
    with pytest.raises(IdentityError) as e:
        load_or_create_key(paths, env={"GROVE_KEY_STORE": "file"})
    assert "other users" in e.value.what and f"chmod 600 {f}" in e.value.fix
    f.chmod(0o600)  # the fix it names works, and the village keeps its identity
    assert load_or_create_key(paths, env={"GROVE_KEY_STORE": "file"})[0] == key


@pytest.mark.skipif(os.name == "nt", reason="Windows names a pipe")
def test_the_single_instance_socket_is_in_a_private_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("PySide6")
    import tempfile

    from app.single import server_name

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = Path(server_name("p"))
    d = path.parent
    assert d == tmp_path / f"grove-village-{os.getuid()}"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and d.stat().st_uid == os.getuid()
    d.chmod(0o777)  # someone widened it (or made it first, shared): refused, with the fix
    with pytest.raises(OSError, match="chmod 700"):
        server_name("p")
    d.chmod(0o700)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert Path(server_name("p")).parent == runtime
    runtime.chmod(0o755)  # a runtime dir that is not private is not used
    assert Path(server_name("p")).parent == d
