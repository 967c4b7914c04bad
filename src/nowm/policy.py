"""The policy vocabulary and its mappings to IPTC, CAWG and TDMRep (DESIGN section 2)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParameterError

__all__ = ["Policy", "POLICIES", "DEFAULT_POLICY", "get_policy", "policy_from_code"]

_IPTC_BASE = "http://ns.useplus.org/ldf/vocab/"
_CAWG_ALL = ("ai_training", "ai_generative_training", "ai_inference", "data_mining")


@dataclass(frozen=True)
class Policy:
    """One reservation a mark can carry.

    Attributes
    ----------
    name : str
        nowm's name, e.g. ``"no-ai-training"``.
    code : int
        Small integer carried in the watermark (selects the sync pattern).
    iptc : str
        IPTC ``plus:DataMining`` code, e.g. ``"DMI-PROHIBITED-AIMLTRAINING"``.
    cawg_not_allowed : tuple of str
        CAWG training-and-data-mining entries that are ``notAllowed``.
    cawg_constrained : bool
        True when the entries are ``constrained`` (consent required) rather than
        ``notAllowed``.
    summary : str
        One-line meaning.
    """

    name: str
    code: int
    iptc: str
    cawg_not_allowed: tuple
    cawg_constrained: bool
    summary: str

    @property
    def iptc_uri(self) -> str:
        """Full PLUS vocabulary URI of the IPTC code."""
        return _IPTC_BASE + self.iptc

    @property
    def reserves(self) -> bool:
        """True for every policy except ``ai-allowed``."""
        return self.name != "ai-allowed"


POLICIES = {
    p.name: p
    for p in (
        Policy("no-ai-training", 0, "DMI-PROHIBITED-AIMLTRAINING",
               ("ai_training", "ai_generative_training"), False,
               "no machine-learning training of any kind"),
        Policy("no-genai-training", 1, "DMI-PROHIBITED-GENAIMLTRAINING",
               ("ai_generative_training",), False,
               "no training of generative models; other ML allowed"),
        Policy("no-tdm", 2, "DMI-PROHIBITED", _CAWG_ALL, False,
               "no text and data mining at all"),
        Policy("consent-required", 3, "DMI-PROHIBITED-SEECONSTRAINT", _CAWG_ALL, True,
               "AI use only with the rightsholder's explicit, recorded opt-in"),
        Policy("ai-allowed", 4, "DMI-ALLOWED", (), False,
               "the rightsholder opted in: training allowed"),
    )
}
DEFAULT_POLICY = "no-ai-training"
_BY_CODE = {p.code: p for p in POLICIES.values()}


def get_policy(policy) -> Policy:
    """Return the :class:`Policy` for a name (or a Policy, returned as is).

    Raises
    ------
    ParameterError
        If the name is not one of :data:`POLICIES`.
    """
    if isinstance(policy, Policy):
        return policy
    try:
        return POLICIES[str(policy)]
    except KeyError:
        raise ParameterError(
            f"policy={policy!r} is unknown; choose one of: {', '.join(POLICIES)}"
        ) from None


def policy_from_code(code: int) -> Policy:
    """Return the :class:`Policy` carried as ``code`` in the watermark."""
    return _BY_CODE[int(code)]
