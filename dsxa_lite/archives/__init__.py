"""Looking inside archives: streamed, memory-bounded unpacking of zip (ZipCrypto and AES), tar,
gzip, bzip2, xz, LZMA-alone and 7z, nested to a configurable depth (Office OOXML files are zips;
a ZIP with bytes in front, such as a self-extractor or a ZIP appended to a tar, is found from its
end, and a 7z inside a program: ``container_type``). Other recognised archive formats (RAR,
zstd, LZ4, CAB, ISO…), and a RAR or cabinet inside a program, are ``Unsupported File Type``.

Every member runs through the same engines as a file sent on its own (EICAR, block list, YARA);
a member that is itself an archive is opened in turn. The worst verdict wins and its reason names
the member's path (``a.zip/b.tar.gz/c.exe``); a Malicious member ends the walk at once.

Bomb limits (:class:`ArchiveLimits`): nesting depth, member count, total unpacked bytes,
expansion ratio (unpacked bytes over the size of the file sent, past a floor) and wall time.
Sizes and counts are checked both as members declare them and as their bytes arrive, so a lying
header cannot get past them (a tar's headers count as members and as bytes); reaching one ends the walk with ``Non Compliant`` (sizes, counts,
depth) or ``Not Scanned`` (time), naming the limit and the member. Memory stays bounded: a member
is kept in memory up to the spool threshold and spooled to an unnamed temp file past it, while
unpackers read fixed-size chunks.
"""

from dsxa_lite.archives.limits import ArchiveLimits, LimitReached
from dsxa_lite.archives.walker import CONTAINER_TYPES, ArchiveOutcome, ArchiveScan, container_type

__all__ = [
    "CONTAINER_TYPES",
    "ArchiveLimits",
    "ArchiveOutcome",
    "ArchiveScan",
    "LimitReached",
    "container_type",
]
