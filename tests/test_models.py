"""Model management against a real HTTP server on localhost serving small fake model zips."""

from __future__ import annotations

import argparse
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from voicebot.cli import models as speech_cli
from voicebot.speech import model_store as models
from voicebot.speech.model_store import CatalogueEntry, DownloadError, MissingModelError

FAKE = CatalogueEntry("xx-XX", "vosk-model-fake-0.1", "1K")
MODEL_FILES = {
    "am/final.mdl": b"\x00" * 2000,
    "conf/model.conf": b"--endpoint.rule2.min-trailing-silence=0.5\n",
    "conf/mfcc.conf": b"--use-energy=false\n",
    "graph/HCLr.fst": b"fst" * 100,
    "graph/Gr.fst": b"fst" * 100,
    "graph/phones/word_boundary.int": b"1 nonword\n",
    "ivector/final.ie": b"ie" * 100,
}


def make_zip(files: dict[str, bytes], folder: str = FAKE.name) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"{folder}/{name}" if folder else name, data)
    return buf.getvalue()


@dataclass
class Server:
    base: str
    files: dict[str, bytes] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)  # send half, then hang up
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            state.requests.append(name)
            body = state.files.get(name)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if name in state.truncate else body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def model_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(root))
    monkeypatch.delenv(models.URL_BASE_ENV, raising=False)
    return root


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_unpacks_with_progress(server: Server, model_root: Path) -> None:
    archive = make_zip(MODEL_FILES)
    server.files[FAKE.name + ".zip"] = archive
    seen: list[tuple[int, int | None]] = []
    where, fetched = models.download(
        FAKE, lambda done, total: seen.append((done, total)), url_base=server.base
    )
    assert fetched and where == model_root / FAKE.name
    assert (where / "am" / "final.mdl").read_bytes() == MODEL_FILES["am/final.mdl"]
    assert (where / "graph" / "phones" / "word_boundary.int").is_file()
    assert seen[0] == (0, len(archive)) and seen[-1] == (len(archive), len(archive))
    assert leftovers(model_root) == [FAKE.name]  # no temp dirs, no zip


def test_second_download_is_a_no_op(server: Server, model_root: Path) -> None:
    server.files[FAKE.name + ".zip"] = make_zip(MODEL_FILES)
    first, fetched = models.download(FAKE, url_base=server.base)
    again, fetched_again = models.download(FAKE, url_base=server.base)
    assert (fetched, fetched_again) == (True, False)
    assert again == first
    assert len(server.requests) == 1


def test_checksum_mismatch_installs_nothing(server: Server, model_root: Path) -> None:
    archive = make_zip(MODEL_FILES)
    server.files[FAKE.name + ".zip"] = archive
    with pytest.raises(DownloadError, match="SHA-256"):
        models.download(FAKE, url_base=server.base, sha256="0" * 64)
    assert leftovers(model_root) == []
    # The right sum passes.
    right = hashlib.sha256(archive).hexdigest()
    assert models.download(FAKE, url_base=server.base, sha256=right)[1]


def test_size_mismatch_installs_nothing(server: Server, model_root: Path) -> None:
    archive = make_zip(MODEL_FILES)
    server.files[FAKE.name + ".zip"] = archive
    pinned = CatalogueEntry(FAKE.lang, FAKE.name, "1K", size_bytes=len(archive) + 1)
    with pytest.raises(DownloadError, match=f"{len(archive)} bytes, expected {len(archive) + 1}"):
        models.download(pinned, url_base=server.base)
    assert leftovers(model_root) == []


def test_interrupted_download_leaves_no_partial_model(server: Server, model_root: Path) -> None:
    server.files[FAKE.name + ".zip"] = make_zip(MODEL_FILES)
    server.truncate.add(FAKE.name + ".zip")
    with pytest.raises(DownloadError, match=r"interrupted after \d+ of \d+ bytes"):
        models.download(FAKE, url_base=server.base)
    assert leftovers(model_root) == []
    with pytest.raises(MissingModelError):
        models.require(FAKE)


def test_http_error_is_one_sentence(server: Server, model_root: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        models.download(FAKE, url_base=server.base)
    assert "\n" not in str(info.value)
    assert leftovers(model_root) == []


def test_zip_slip_member_is_rejected(server: Server, model_root: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in MODEL_FILES.items():
            zf.writestr(f"{FAKE.name}/{name}", data)
        zf.writestr("../../evil.txt", b"owned")
    server.files[FAKE.name + ".zip"] = buf.getvalue()
    with pytest.raises(DownloadError, match="outside the model folder"):
        models.download(FAKE, url_base=server.base)
    assert not list(tmp_path.rglob("evil.txt"))
    assert leftovers(model_root) == []


def test_zip_without_a_model_is_rejected(server: Server, model_root: Path) -> None:
    server.files[FAKE.name + ".zip"] = make_zip({"README": b"hello"})
    with pytest.raises(DownloadError, match="does not contain a Vosk model"):
        models.download(FAKE, url_base=server.base)
    assert leftovers(model_root) == []


def test_incomplete_directory_in_the_way_is_reported(server: Server, model_root: Path) -> None:
    server.files[FAKE.name + ".zip"] = make_zip(MODEL_FILES)
    (model_root / FAKE.name / "conf").mkdir(parents=True)
    with pytest.raises(DownloadError, match="remove it"):
        models.download(FAKE, url_base=server.base)


def test_unwrapped_zip_is_accepted(server: Server, model_root: Path) -> None:
    server.files[FAKE.name + ".zip"] = make_zip(MODEL_FILES, folder="")
    where, _ = models.download(FAKE, url_base=server.base)
    assert models.is_model_dir(where)


def test_model_dir_override_and_xdg_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(tmp_path / "mine"))
    assert models.model_dir() == tmp_path / "mine"
    assert models.path("en-US") == tmp_path / "mine" / "vosk-model-small-en-us-0.15"
    monkeypatch.delenv(models.MODEL_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert models.model_dir() == tmp_path / "cache" / "voicebot" / "models"


def test_url_base_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.URL_BASE_ENV, raising=False)
    en = models.entry("en-US")
    assert en.url() == "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip"
    monkeypatch.setenv(models.URL_BASE_ENV, "http://mirror.example/vosk")
    assert en.url() == "http://mirror.example/vosk/vosk-model-small-en-us-0.15.zip"
    assert en.url("file:///srv/models/") == "file:///srv/models/vosk-model-small-en-us-0.15.zip"


def test_missing_model_says_the_exact_command(model_root: Path) -> None:
    with pytest.raises(MissingModelError) as info:
        models.require("sv")
    message = str(info.value)
    assert "voicebot models download sv-SE" in message
    assert str(model_root) in message
    assert "\n" not in message


def test_language_lookup() -> None:
    assert models.entry("SV_se").lang == "sv-SE"
    assert models.entry("ko").lang == "ko-KR"
    with pytest.raises(models.UnknownLanguageError, match="known: en-US"):
        models.entry("tlh")


def test_packaged_korean_model_is_found(model_root: Path, ko_model_dir: Path) -> None:
    assert models.require("ko-KR") == ko_model_dir
    assert models.download("ko-KR") == (ko_model_dir, False)  # nothing to fetch


# ---------------------------------------------------------------------------- command line


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``voicebot models ...``: through voicebot.cli.main once it registers the speech commands,
    else through a parser built the same way."""
    from voicebot.cli import main as main_cli

    parser = main_cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "models" in commands:
        code = main_cli.main(argv)
    else:
        parser = argparse.ArgumentParser(prog="voicebot")
        speech_cli.register(parser.add_subparsers())
        args = parser.parse_args(argv)
        code = args.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_download_path_and_list(
    server: Server,
    model_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    en = models.entry("en-US")
    server.files[en.name + ".zip"] = make_zip(MODEL_FILES, folder=en.name)
    monkeypatch.setenv(models.URL_BASE_ENV, server.base)

    code, out, err = cli(["models", "path", "en-US"], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "voicebot models download en-US" in err

    code, out, err = cli(["models", "download", "en"], capsys)
    assert code == 0
    assert "100%" in err and en.name in err
    assert f"installed the en-US model in {model_root / en.name}" in out

    code, out, _ = cli(["models", "download", "en-US"], capsys)
    assert code == 0 and "already installed" in out
    assert len(server.requests) == 1

    code, out, _ = cli(["models", "path", "en-US"], capsys)
    assert (code, out) == (0, f"{model_root / en.name}\n")

    code, out, _ = cli(["models", "list"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == set(models.CATALOGUE)
    assert "installed:" in lines["en-US"] and "not installed" in lines["sv-SE"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["models", "download", "tlh"], "No speech model is catalogued for 'tlh'"),
        (["models", "download", "de-DE"], "HTTP 404"),
        (["models", "download", "fr-FR"], "not a valid zip file"),
    ],
)
def test_cli_errors_are_one_sentence_without_traceback(
    argv: list[str],
    needle: str,
    server: Server,
    model_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(models.URL_BASE_ENV, server.base)
    server.files[models.entry("fr-FR").name + ".zip"] = b"<html>not a zip</html>"
    code, out, err = cli(argv, capsys)
    assert (code, out) == (1, "")
    assert "Traceback" not in err
    last = err.splitlines()[-1]  # after any progress lines
    assert last.startswith("voicebot: ") and needle in last
    assert leftovers(model_root) == []
