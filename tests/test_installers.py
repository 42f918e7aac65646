"""The installer tooling that runs on Linux: the smoke test, the signing script, the Windows
installer (NSIS) with Authenticode signing and verification by osslsigncode, and the compute
pack's activation. The frozen bundle and the .deb are built, signed, installed and
smoke-tested by installers/linux/ci-check, which .ci/run runs after the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import compute_pack
from tests.conftest import ROOT, grove, have, need


def test_smoke_test_from_source(grove_env: dict[str, str]) -> None:
    out = grove("--smoke-test", "--require-torch", env=grove_env, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, result
    assert result["ok"] and result["failed"] == []
    assert result["ui_node"].startswith("ok") and "paused and resumed" in result["ui_node"]
    assert result["torch"].startswith("ok") and result["start_seconds"] > 0
    assert all(v.startswith("ok") for v in result["checks"].values())
    assert not result["frozen"]


def test_signing_script_signs_and_lists(tmp_path: Path, grove_env: dict[str, str]) -> None:
    need("minisign", have("minisign"), "minisign is not installed (apt install minisign)")
    subprocess.run(["minisign", "-G", "-W", "-p", str(tmp_path / "k.pub"), "-s",
                    str(tmp_path / "k.key")], check=True, capture_output=True)
    rel = tmp_path / "release"
    rel.mkdir()
    (rel / "grove-village_0.1.0_amd64.deb").write_bytes(b"!<arch>\n" + bytes(5000))
    (rel / "grove-village-0.1.0-linux-x86_64.tar.gz").write_bytes(b"\x1f\x8b" + bytes(5000))
    files = sorted(str(p) for p in rel.iterdir())
    out = subprocess.run([str(ROOT / "installers" / "sign"), "-s", str(tmp_path / "k.key"),
                          *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for f in [*files, str(rel / "SHA256SUMS")]:
        assert Path(f + ".minisig").is_file()
        ok = grove("verify", f, "--key", str(tmp_path / "k.pub"), env=grove_env)
        assert ok.returncode == 0, ok.stderr
    listed = grove("verify", str(rel / "SHA256SUMS"), "--key", str(tmp_path / "k.pub"),
                   "--json", env=grove_env)
    assert set(json.loads(listed.stdout)["files"].values()) == {"ok"}
    bad = subprocess.run([str(ROOT / "installers" / "sign"), "-s", str(tmp_path / "k.key")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj",
                    "/CN=Grove Village CI/O=Grove Foundation", "-addext",
                    "extendedKeyUsage=codeSigning", "-addext", "keyUsage=digitalSignature"],
                   check=True, capture_output=True)
    return cert, key


def test_windows_installer_builds_signs_and_verifies(tmp_path: Path) -> None:
    need("nsis+osslsigncode", have("makensis", "osslsigncode", "openssl"),
         "makensis, osslsigncode or openssl is missing (apt install nsis osslsigncode)")
    # PyInstaller cannot build for Windows here: a stand-in folder takes the bundle's place;
    # the script, the compiler, the signing and the verification are the real ones.
    payload = tmp_path / "grove-windows"
    (payload / "_internal").mkdir(parents=True)
    (payload / "grove.exe").write_bytes(b"MZ stand-in")
    (payload / "_internal" / "data.bin").write_bytes(bytes(range(256)) * 64)
    setup = tmp_path / "grove-village-0.1.0-installer.exe"
    built = subprocess.run(["makensis", "-V2", "-DVERSION=0.1.0", f"-DSRCDIR={payload}",
                            f"-DOUTFILE={setup}",
                            str(ROOT / "installers" / "windows" / "grove.nsi")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert setup.read_bytes()[:2] == b"MZ"
    cert, key = _self_signed(tmp_path)
    unsigned = subprocess.run(["osslsigncode", "verify", "-CAfile", str(cert), "-in",
                               str(setup)], capture_output=True, text=True)
    assert unsigned.returncode != 0
    signed = tmp_path / "grove-village-0.1.0-installer-signed.exe"
    out = subprocess.run([str(ROOT / "installers" / "windows" / "sign-authenticode"), "-c",
                          str(cert), "-k", str(key), str(setup), str(signed)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    good = subprocess.run(["osslsigncode", "verify", "-CAfile", str(cert), "-in",
                           str(signed)], capture_output=True, text=True)
    assert good.returncode == 0 and "Signature verification: ok" in good.stdout
    tampered = tmp_path / "tampered.exe"
    data = bytearray(signed.read_bytes())
    data[len(data) // 3] ^= 0x01
    tampered.write_bytes(bytes(data))
    bad = subprocess.run(["osslsigncode", "verify", "-CAfile", str(cert), "-in",
                          str(tampered)], capture_output=True, text=True)
    assert bad.returncode != 0 and "MISMATCH" in bad.stdout


def test_compute_pack_is_found_by_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pack = tmp_path / "compute"
    env = {compute_pack.ENV: str(pack)}
    assert compute_pack.activate(env) is None  # nothing there yet
    (pack / "torch").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert compute_pack.activate(env) == pack and str(pack) in sys.path
    assert sys.path.count(str(pack)) == 1
    compute_pack.activate(env)
    assert sys.path.count(str(pack)) == 1  # once
    assert "grove verify" in compute_pack.missing_sentence()


def test_missing_torch_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what a bundle without its pack sees
    with pytest.raises(compute_pack.ComputePackMissing, match="compute pack"):
        compute_pack.require_torch()


def _nvml(cuda: str | None, *names: str, available: bool = True):  # type: ignore[no-untyped-def]
    from core.hardware import GpuInfo, NvmlReading

    gpus = tuple(GpuInfo(i, n, f"GPU-{i}", 12 * 2**30, 11 * 2**30, 0.0, 50.0, 20.0)
                 for i, n in enumerate(names))
    return NvmlReading(available, "NVML: Driver Not Loaded" if not available else "ok",
                       "550.1" if available else None, cuda, gpus)


def test_the_pack_a_computer_needs_follows_what_nvml_reports() -> None:
    assert compute_pack.recommend(_nvml(None, available=False)) == (
        "cpu", "no NVIDIA GPU can be used here (NVML: Driver Not Loaded)")
    assert compute_pack.recommend(_nvml("12.4"))[0] == "cpu"          # NVML, no GPU
    variant, why = compute_pack.recommend(_nvml("11.8", "GTX 1080"))
    assert variant == "cpu" and "update the driver" in why and "GTX 1080" in why
    variant, why = compute_pack.recommend(_nvml("12.4", "RTX 3060", "RTX 3060"))
    assert variant == "cuda12" and why == "2 NVIDIA GPU(s) (RTX 3060) with a driver for CUDA 12.4"


def test_the_app_says_which_pack_it_runs_and_what_this_computer_needs(tmp_path: Path) -> None:
    pack = tmp_path / "compute"
    (pack / "torch").mkdir(parents=True)
    env = {compute_pack.ENV: str(pack)}
    report = compute_pack.pack_report(_nvml("12.4", "RTX 4090"), env)
    assert report["running"] == "unknown" and "no PACK.json" in report["note"]
    (pack / "PACK.json").write_text('{"variant": "cpu", "torch": "2.13.0", "cuda": ""}')
    report = compute_pack.pack_report(_nvml("12.4", "RTX 4090"), env)
    assert (report["running"], report["recommended"]) == ("cpu", "cuda12")
    assert "your GPU does no work" in report["note"] and "grove-compute-cuda12" in report["note"]
    report = compute_pack.pack_report(_nvml(None, available=False), env)
    assert report["note"] == "the cpu pack, as this computer needs"
    (pack / "PACK.json").write_text('{"variant": "cuda12", "torch": "2.13.0", "cuda": "12.6"}')
    report = compute_pack.pack_report(_nvml(None, available=False), env)
    assert report["running"] == "cuda12" and "work runs on the CPU" in report["note"]
    for bad in ('{"variant": "rocm"}', "not json", '{"torch": "2"}', "x" * 10_000):
        (pack / "PACK.json").write_text(bad)
        info = compute_pack.read_pack(pack)
        assert info.variant == "unknown" and "cannot be read" in info.note


def test_the_systemd_units_run_grove_unprivileged_and_restart_on_failure(
        tmp_path: Path) -> None:
    """resources/systemd: `grove node` and `grove relay` as dynamic unprivileged users with
    their own state directory, restarted on failure, installed disabled (the .deb has no
    maintainer scripts: installers/linux/ci-check); systemd-analyze finds nothing wrong."""
    import configparser
    import shutil
    import subprocess

    from app.cli import build_parser

    for name, command in (("grove-node", "node"), ("grove-relay", "relay")):
        path = ROOT / "resources" / "systemd" / f"{name}.service"
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read(path)
        svc = unit["Service"]
        exe, sub, *flags = svc["ExecStart"].split()
        assert exe == "/opt/grove-village/grove" and sub == command
        build_parser().parse_args([sub, *flags])  # flags the command takes
        assert svc["DynamicUser"] == "yes" and svc["Restart"] == "on-failure"
        assert svc["StateDirectory"] == f"grove-village/{command}"
        env = path.read_text()
        assert f"GROVE_HOME=/var/lib/grove-village/{command}" in env
        assert "GROVE_KEY_STORE=file" in env  # no Secret Service for a system user
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        if shutil.which("systemd-analyze"):
            copy = tmp_path / f"{name}.service"
            copy.write_text(env.replace("/opt/grove-village/grove", shutil.which("true")
                                        or "/bin/true"))
            out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                                 text=True, timeout=60)
            problems = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
            assert out.returncode == 0 and not problems, problems
