"""Report files in the data directory: the embedded default. The worker's atomic write (a
temporary file renamed into place after ``fsync``) already put the file where it is served from."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Optional


class LocalArtifacts:
    """Files under ``<data_dir>``, named by their key (``reports/<id>.pdf``)."""

    is_local = True

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def describe(self) -> str:
        return str(self.data_dir / "reports")

    def path_of(self, key: str) -> Optional[Path]:
        """The file of ``key`` if it is a file under the data dir (keys come from the store, and
        are checked all the same)."""
        path = (self.data_dir / key).resolve()
        if self.data_dir.resolve() not in path.parents or not path.is_file():
            return None
        return path

    def save(self, key: str, path: Path) -> None:
        """Keep the finished file at ``path`` under ``key``; moved into place unless it is there."""
        target = self.data_dir / key
        if Path(path).resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            Path(path).replace(target)

    def exists(self, key: str) -> bool:
        return self.path_of(key) is not None

    def open(self, key: str) -> BinaryIO:
        path = self.path_of(key)
        if path is None:
            raise FileNotFoundError(key)
        return open(path, "rb")

    def delete(self, key: str) -> None:
        try:
            (self.data_dir / key).unlink()
        except FileNotFoundError:
            pass

    def presigned_url(self, key: str, filename: str, media_type: str, ttl: int) -> Optional[str]:
        """None: a local file is only served through the API."""
        return None
