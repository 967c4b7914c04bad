"""XMP packets: build nowm's rights properties into a packet (merging an existing one),
and read rights properties from any packet. XML is parsed with defusedxml, never with
a parser that expands entities or fetches anything."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from . import _vocab as V

#: Larger packets are not parsed (real ones are a few kB; this bounds memory and time).
MAX_XMP_BYTES = 4 << 20

_PREFIXES = {"x": V.NS_X, "rdf": V.NS_RDF, "plus": V.NS_PLUS, "tdm": V.NS_TDM,
             "xmpRights": V.NS_XMP_RIGHTS, "dc": V.NS_DC}
_RDF = "{%s}" % V.NS_RDF
_LANG = "{%s}lang" % V.NS_XML
_USAGE = "{%s}UsageTerms" % V.NS_XMP_RIGHTS
# properties nowm owns in a packet: replaced on every write
_OURS = {(V.NS_PLUS, "DataMining"), (V.NS_XMP_RIGHTS, "Marked")} | {
    (ns, name) for ns in V.NS_TDM_ALT for name in ("reservation", "policy")}


class XmpError(ValueError):
    """A packet that cannot be used: too large, not XML, or with a DTD or entities."""


def _split(tag: str):
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def parse(data: bytes):
    """Parse an XMP packet safely; return the root element.

    Raises
    ------
    XmpError
        Too large, not well-formed, or containing a DTD / entity declarations
        (entity-expansion bombs) or external references.
    """
    import defusedxml
    import defusedxml.ElementTree as DET

    if len(data) > MAX_XMP_BYTES:
        raise XmpError(f"XMP packet of {len(data)} bytes is larger than the "
                       f"{MAX_XMP_BYTES >> 20} MiB limit")
    data = bytes(data).strip(b"\x00 \t\r\n")
    if not data:
        raise XmpError("empty XMP packet")
    try:
        return DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise XmpError(f"XMP packet refused ({type(exc).__name__}: a DTD, entity declaration "
                       "or external reference, as in an entity-expansion bomb)") from None
    except ET.ParseError as exc:
        raise XmpError(f"XMP packet is not well-formed XML ({exc})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise XmpError(f"XMP packet cannot be parsed ({type(exc).__name__})") from None


def _value(el) -> str:
    text = (el.text or "").strip()
    if text:
        return text
    res = el.get(_RDF + "resource")
    if res:
        return res.strip()
    items = [(li.text or "").strip() for li in el.iter(_RDF + "li")]
    return "\n".join(t for t in items if t)


def read(data: bytes, report, source: str) -> None:
    """Add the rights properties of one packet to ``report`` (malformed: to ``skipped``)."""
    try:
        root = parse(data)
    except XmpError as exc:
        report.skip(f"{source}: {exc}")
        return
    props = {}
    try:
        for el in root.iter():
            for attr, val in el.attrib.items():
                ns, local = _split(attr)
                props.setdefault((ns, local), []).append(val.strip())
            ns, local = _split(el.tag) if isinstance(el.tag, str) else ("", "")
            if ns in (V.NS_PLUS, V.NS_XMP_RIGHTS, V.NS_DC) or ns in V.NS_TDM_ALT:
                props.setdefault((ns, local), []).append(_value(el))
    except RecursionError:
        report.skip(f"{source}: XMP packet nested too deeply; ignored")
        return
    tdm_policy = " ".join(v for ns in V.NS_TDM_ALT for v in props.get((ns, "policy"), []))
    for (ns, local), values in props.items():
        for value in values:
            _finding(report, source, ns, local, value, tdm_policy)


def _finding(report, source, ns, local, value, tdm_policy):
    if ns == V.NS_PLUS and local == "DataMining":
        pol = V.policy_of_dmi(value)
        if pol is None and not V.dmi_codes(value):
            report.skip(f"{source}: plus:DataMining value {V.clip(value)!r} is not a PLUS DMI code")
        report.add("iptc-plus", "plus:DataMining", value, pol, source)
    elif ns == V.NS_PLUS and V.dmi_codes(value):
        report.add("iptc-plus", f"plus:{local}", value, V.policy_of_dmi(value), source)
    elif ns in V.NS_TDM_ALT and local == "reservation":
        v = value.strip()
        if v == "1":
            pol = V.policy_of_dmi(tdm_policy) or "no-tdm"
        elif v == "0":
            pol = "ai-allowed"
        else:
            pol = None
            report.skip(f"{source}: tdm:reservation value {V.clip(value)!r} is neither 0 nor 1")
        report.add("tdmrep", "tdm:reservation", v, pol, source)
    elif ns in V.NS_TDM_ALT and local == "policy":
        report.add("tdmrep", "tdm:policy", value, V.policy_of_dmi(value), source)
    elif ns == V.NS_XMP_RIGHTS and local in ("Marked", "UsageTerms", "WebStatement"):
        report.add("xmp-rights", f"xmpRights:{local}", value, V.policy_of_dmi(value), source)
    elif ns == V.NS_DC and local == "rights":
        report.add("xmp-rights", "dc:rights", value, V.policy_of_dmi(value), source)


def build(pol, owner: int = 0, existing: bytes | None = None) -> bytes:
    """An XMP packet carrying ``pol``; with ``existing``, that packet with nowm's properties
    replaced and every other property kept.

    Raises
    ------
    XmpError
        ``existing`` cannot be parsed (the caller then leaves it alone).
    """
    for prefix, uri in _PREFIXES.items():
        ET.register_namespace(prefix, uri)
    if existing:
        root = parse(existing)
        rdf = root if root.tag == _RDF + "RDF" else root.find(f".//{_RDF}RDF")
        if rdf is None:
            rdf = ET.SubElement(root, _RDF + "RDF")
    else:
        root = ET.Element("{%s}xmpmeta" % V.NS_X, {"{%s}xmptk" % V.NS_X: "nowm"})
        rdf = ET.SubElement(root, _RDF + "RDF")
    usage = None
    for desc in rdf.findall(_RDF + "Description"):
        for attr in list(desc.attrib):
            if _split(attr) in _OURS:
                del desc.attrib[attr]
            elif attr == _USAGE:  # a simple-valued UsageTerms: keep its text, as a lang alt
                old = desc.attrib.pop(attr)
                usage = ET.SubElement(desc, _USAGE)
                alt = ET.SubElement(usage, _RDF + "Alt")
                ET.SubElement(alt, _RDF + "li", {_LANG: "x-default"}).text = old
        for child in list(desc):
            if _split(child.tag) in _OURS:
                desc.remove(child)
            elif child.tag == _USAGE and usage is None:
                usage = child
    ours = ET.SubElement(rdf, _RDF + "Description", {_RDF + "about": ""})
    ET.SubElement(ours, "{%s}DataMining" % V.NS_PLUS).text = pol.iptc_uri
    ET.SubElement(ours, "{%s}reservation" % V.NS_TDM).text = V.reservation(pol)
    if V.tdm_policy(pol):
        ET.SubElement(ours, "{%s}policy" % V.NS_TDM).text = V.tdm_policy(pol)
    ET.SubElement(ours, "{%s}Marked" % V.NS_XMP_RIGHTS).text = "True"
    text = V.terms(pol, owner)
    if usage is None:
        usage = ET.SubElement(ours, _USAGE)
    alt = usage.find(_RDF + "Alt")
    if alt is None:
        old = (usage.text or "").strip()
        usage.text = None
        alt = ET.SubElement(usage, _RDF + "Alt")
        if old:
            ET.SubElement(alt, _RDF + "li", {_LANG: "x-default"}).text = old
    items = alt.findall(_RDF + "li")
    default = next((li for li in items if li.get(_LANG, "x-default") == "x-default"), None)
    if default is None:
        default = ET.Element(_RDF + "li", {_LANG: "x-default"})
        alt.insert(0, default)
    default.text = V.merge_lines(default.text, text)
    try:
        body = ET.tostring(root, encoding="unicode")
    except RecursionError:
        raise XmpError("XMP packet nested too deeply to rewrite") from None
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body
            + '\n<?xpacket end="w"?>').encode("utf-8")
