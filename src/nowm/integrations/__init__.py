"""Integrations with dataset tools, each an optional extra.

- :mod:`nowm.integrations.hf`: Hugging Face ``datasets`` (``Dataset.filter``).
- :mod:`nowm.integrations.lhotse`: lhotse (``CutSet.filter``).
- :mod:`nowm.integrations.wds`: webdataset (``select`` before decoding).
- :mod:`nowm.integrations.datadiligence`: a datadiligence evaluator (``is_allowed``).

None of these modules imports its library at import time, except
:mod:`~nowm.integrations.datadiligence`, whose classes derive from the library's.
"""
