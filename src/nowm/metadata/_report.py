"""What :func:`nowm.metadata.read_tags` found."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import _vocab
from ..policy import POLICIES


@dataclass
class TagFinding:
    """One rights statement found in a file's metadata.

    Attributes
    ----------
    vocabulary : str
        ``iptc-plus``, ``tdmrep``, ``xmp-rights``, ``vorbis-comment``, ``id3``,
        ``riff-info``, ``mp4`` or ``c2pa-cawg``.
    field : str
        The field as the vocabulary names it, e.g. ``plus:DataMining``, ``TXXX:DataMining``.
    value : str
        Its value (long values are shortened).
    policy : str or None
        The nowm policy the value maps to, or None when it says nothing about AI use.
    source : str
        Where in the file it was, e.g. ``RIFF _PMX``, ``ID3 PRIV:XMP``.
    """

    vocabulary: str
    field: str
    value: str
    policy: str | None
    source: str = ""


@dataclass
class TagReport:
    """Rights metadata found in one file, separate from the watermark verdict.

    Attributes
    ----------
    findings : list of TagFinding
    skipped : list of str
        What was malformed, too large or unsupported, and why it was ignored.
    container : str or None
        ``wav``, ``mp3``, ``flac``, ``ogg-vorbis``, ``ogg-opus``, ``ogg-flac``, ``mp4``, or
        None when the data is not a container nowm reads.
    policy : str or None
        The most restrictive nowm policy any finding maps to.
    reserved : bool
        True when some finding reserves AI training (any policy but ``ai-allowed``).
    """

    findings: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    container: str | None = None

    @property
    def policy(self):
        return _vocab.most_restrictive(f.policy for f in self.findings)

    @property
    def reserved(self) -> bool:
        return any(f.policy in POLICIES and POLICIES[f.policy].reserves for f in self.findings)

    def add(self, vocabulary, field_name, value, policy=None, source=""):
        self.findings.append(TagFinding(vocabulary, field_name, _vocab.clip(value), policy, source))

    def skip(self, why: str):
        self.skipped.append(_vocab.clip(why))

    def to_dict(self) -> dict:
        """JSON-serialisable summary."""
        return {"container": self.container, "policy": self.policy, "reserved": self.reserved,
                "findings": [asdict(f) for f in self.findings], "skipped": list(self.skipped)}
