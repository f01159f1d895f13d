"""Every Parquet file scalesweep writes or reads goes through here, so that damage is an error, never data.

Pages are written with CRC checksums and verified on every read: without them, bytes flipped inside a data
page decode as plausible numbers (a loss of 2e294) and every command carries on. Files written without
checksums, by earlier versions, still read (there is nothing to verify). Any failure to read a file (empty,
truncated, checksum mismatch, garbage footer or metadata) becomes one :class:`DamagedFile` naming the file
and what to do, which the CLI prints as one line (exit 2).
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.spec.schema import SpecError

RESTORE = (
    "restore it from a backup, or move it aside to read the rest without its rows "
    "(they are in no other file)"
)
"""What to do about a damaged file whose rows exist nowhere else: the default advice."""


class DamagedFile(SpecError):
    """A results file that cannot be read as written: one line naming it, why, and what to do."""

    def __init__(self, path: Path, reason: str, advice: str = RESTORE) -> None:
        super().__init__(f"{path}: damaged ({reason}); {advice}")
        self.path, self.reason = path, reason


def _reason(err: BaseException) -> str:
    """pyarrow's message, first sentence only, without the file name it repeats; bytes it quotes from
    the damaged file are escaped, so the line stays one printable line."""
    text = (str(err).splitlines() or [""])[0]
    text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", text)
    text = text.split(". ")[0].rstrip(".") or type(err).__name__
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[:160])


@contextmanager
def reading(path: Path, advice: str = RESTORE) -> Iterator[None]:
    """Turn any failure to read ``path`` (or to decode what it holds) into :class:`DamagedFile`.

    A missing file is not damage: FileNotFoundError passes through for the caller to handle.
    """
    try:
        yield
    except (FileNotFoundError, DamagedFile):
        raise
    except (OSError, ValueError, pa.ArrowException) as err:  # ValueError: JSON, UTF-8, Arrow
        raise DamagedFile(path, _reason(err), advice) from None


def read_table(path: Path, columns: list[str] | None = None, advice: str = RESTORE) -> pa.Table:
    """The file's table, every page's checksum verified (ParquetFile: 3× faster than ``pq.read_table``
    on many small files, as fast as a dataset)."""
    with reading(path, advice), pq.ParquetFile(path, page_checksum_verification=True) as file:
        return file.read(columns=columns)


def concat(tables: Iterable[pa.Table]) -> pa.Table:
    """Several files' tables as one, without their metadata; a column some files lack (a metric first
    reported after they were written) holds nulls in their rows."""
    return pa.concat_tables(tables, promote_options="default").replace_schema_metadata()


def read_schema(path: Path, advice: str = RESTORE) -> pa.Schema:
    """The file's schema and key-value metadata (its footer; no data page is read)."""
    with reading(path, advice):
        return pq.read_schema(path)


def write_table(table: pa.Table, path: Path, **options: Any) -> None:
    """Write ``table`` with page checksums, atomically: a hidden temp file renamed into place, so a
    reader never sees half a file. ``options`` go to ``pq.write_table`` (e.g. ``row_group_size``)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp, write_page_checksum=True, **options)
    os.replace(tmp, path)


def move_aside(damage: DamagedFile, then: str) -> Path:
    """Rename a damaged file to ``_<name>.damaged-<time>`` beside it, and say so in one line on stderr,
    with ``then``, what was done instead: nothing is set aside unseen, nor deleted (what of it is
    readable may still be wanted). The name is outside every ``*.parquet`` glob, and pyarrow (so pandas
    too) skips names starting with ``_`` when it reads a directory."""
    path = damage.path
    target = path.with_name(f"_{path.name}.damaged-{datetime.now():%Y%m%d-%H%M%S-%f}")
    os.replace(path, target)
    print(
        f"note: {path}: damaged ({damage.reason}); moved to {target.name}; {then}", file=sys.stderr
    )
    return target
