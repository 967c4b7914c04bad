"""The vocabularies nowm writes and reads, and how their values map to nowm policies.

Sources (looked up, not guessed):

- IPTC Photo Metadata 2023.1, property "Data Mining": XMP ``plus:DataMining`` in the PLUS
  namespace ``http://ns.useplus.org/ldf/xmp/1.0/``; values are URIs of the PLUS LDF
  data-mining vocabulary ``http://ns.useplus.org/ldf/vocab/DMI-*``.
- W3C TDM Reservation Protocol (TDMRep, Community Group final report 2024-05-10): XMP
  properties ``tdm:reservation`` (1 = rights reserved, 0 = not reserved) and ``tdm:policy``
  (a URL) in the namespace ``http://www.w3.org/ns/tdmrep/``; EPUB 3 uses the same terms
  with ``#`` instead of the final ``/``, which readers accept too.
- XMP Rights Management: ``xmpRights:Marked`` (Boolean) and ``xmpRights:UsageTerms``
  (language alternative) in ``http://ns.adobe.com/xap/1.0/rights/``.
- CAWG Training and Data Mining assertion 1.1: label ``cawg.training-mining``, an
  ``entries`` map whose keys ``cawg.ai_training``, ``cawg.ai_generative_training``,
  ``cawg.ai_inference`` and ``cawg.data_mining`` have ``use`` ``allowed``, ``notAllowed``
  or ``constrained`` (``constrained`` is treated as ``notAllowed``). C2PA 1.x used the
  ``c2pa.`` prefix for the same structure.
"""

from __future__ import annotations

import re

from ..policy import POLICIES, Policy

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
NS_TDM = "http://www.w3.org/ns/tdmrep/"
NS_TDM_ALT = ("http://www.w3.org/ns/tdmrep/", "http://www.w3.org/ns/tdmrep#",
              "http://www.w3.org/ns/tdmrep")
NS_XMP_RIGHTS = "http://ns.adobe.com/xap/1.0/rights/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_XML = "http://www.w3.org/XML/1998/namespace"
PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"

#: PLUS LDF data-mining codes -> nowm policy (None: says nothing about AI use).
DMI_POLICY = {
    "DMI-UNSPECIFIED": None,
    "DMI-ALLOWED": "ai-allowed",
    "DMI-PROHIBITED-AIMLTRAINING": "no-ai-training",
    "DMI-PROHIBITED-GENAIMLTRAINING": "no-genai-training",
    # prohibits AI/ML training and all other mining except search-engine indexing
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": "no-tdm",
    "DMI-PROHIBITED": "no-tdm",
    "DMI-PROHIBITED-SEECONSTRAINT": "consent-required",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": "consent-required",
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": "consent-required",
}

#: Most restrictive first is the larger number; ``ai-allowed`` never overrides a restriction.
RESTRICTIVENESS = {"ai-allowed": 0, "no-genai-training": 1, "no-ai-training": 2,
                   "consent-required": 3, "no-tdm": 4}

_DMI_RE = re.compile(r"DMI-[A-Z]+(?:-[A-Z]+)*")
_PHRASE = {
    "no-ai-training": "No AI training",
    "no-genai-training": "No generative AI training",
    "no-tdm": "No text and data mining",
    "consent-required": "No AI use without the rightsholder's consent",
    "ai-allowed": "AI training allowed",
}
_MAX_VALUE = 500  # characters of a value kept in a report


def most_restrictive(names):
    """The most restrictive of some nowm policy names (None when there is none)."""
    names = [n for n in names if n in RESTRICTIVENESS]
    return max(names, key=RESTRICTIVENESS.__getitem__) if names else None


def dmi_codes(text: str) -> list:
    """Every PLUS ``DMI-*`` code in ``text`` (bare or inside a URI), in order, once."""
    seen = []
    for code in _DMI_RE.findall(text or ""):
        if code not in seen:
            seen.append(code)
    return seen


def policy_of_dmi(text: str):
    """nowm policy of a ``plus:DataMining`` value (full URI or bare code), or None."""
    codes = dmi_codes(text)
    return most_restrictive(DMI_POLICY.get(c) for c in codes)


def notice(pol: Policy) -> str:
    """Short copyright-field notice, e.g. ``No AI training (DMI-PROHIBITED-AIMLTRAINING; nowm)``."""
    return f"{_PHRASE[pol.name]} ({pol.iptc}; nowm)"


def terms(pol: Policy, owner: int = 0) -> str:
    """Usage-terms sentence naming the policy, its IPTC URI and TDMRep reservation."""
    who = f", owner id {owner}" if owner else ""
    return (f"{_PHRASE[pol.name]}: {pol.summary}. IPTC plus:DataMining {pol.iptc_uri}; "
            f"TDMRep tdm-reservation {reservation(pol)}. Marked with nowm, policy {pol.name}{who}.")


def reservation(pol: Policy) -> str:
    """TDMRep ``tdm:reservation`` value: ``"1"`` when the policy reserves rights."""
    return "1" if pol.reserves else "0"


def tdm_policy(pol: Policy):
    """TDMRep ``tdm:policy`` value: the PLUS URI of the policy (None when not reserving)."""
    return pol.iptc_uri if pol.reserves else None


def is_ours(text: str) -> bool:
    """True for a notice or terms text nowm wrote (so re-marking replaces, not duplicates)."""
    return bool(text) and re.search(r"\bnowm\b", text) is not None and _DMI_RE.search(text) is not None


def merge_values(existing, ours: str) -> list:
    """Existing values without nowm's old ones, then ``ours``."""
    return [v for v in existing if not is_ours(v)] + [ours]


def merge_notice(existing: str, ours: str) -> str:
    """A one-line copyright field: the user's text without nowm's old notices, then ``ours``
    after ``"; "``."""
    text = existing or ""
    for pol in POLICIES.values():
        old = notice(pol)
        text = text.replace("; " + old, "").replace(old + "; ", "").replace(old, "")
    text = text.strip()
    return f"{text}; {ours}" if text else ours


def merge_lines(existing: str, ours: str) -> str:
    """A multi-line text field: the user's lines without nowm's old ones, then ``ours``."""
    kept = [line for line in (existing or "").replace("\r\n", "\n").split("\n")
            if line.strip() and not is_ours(line)]
    return "\n".join(kept + [ours])


def clip(value) -> str:
    """A value as a short single string for a report."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE] + f"... ({len(text)} chars)"

