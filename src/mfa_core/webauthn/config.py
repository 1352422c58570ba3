"""The relying party's WebAuthn settings: :class:`WebAuthnConfig`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..errors import InvalidParameter

__all__ = ["ATTESTATION_FORMATS", "DEFAULT_ALGORITHMS", "WebAuthnConfig"]

ATTESTATION_FORMATS: Final = frozenset(
    {"none", "packed", "fido-u2f", "tpm", "android-key", "android-safetynet", "apple"}
)
"""The attestation statement formats the ``webauthn`` extra (py_webauthn) verifies."""
DEFAULT_ALGORITHMS: Final = (-8, -7, -257)
"""COSE algorithms offered, in order of preference: EdDSA (Ed25519), ES256, RS256."""
_SUPPORTED_ALGORITHMS: Final = frozenset({-8, -7, -35, -36, -37, -38, -39, -257, -258, -259})
_ORIGIN: Final = re.compile(r"https?://[a-z0-9.-]{1,253}(?::[0-9]{1,5})?\Z")
_RP_ID: Final = re.compile(
    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z"
)
_UV: Final = ("required", "preferred", "discouraged")
_CONVEYANCE: Final = ("none", "indirect", "direct", "enterprise")


def _origins(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list, frozenset, set)):
        raise InvalidParameter("origins must be a sequence of origins")
    return tuple(value)


def _frozen_certs(value: object) -> Mapping[str, tuple[bytes, ...]]:
    if not isinstance(value, Mapping):
        raise InvalidParameter("attestation_root_certs must map a format to PEM certificates")
    return {k: tuple(v) for k, v in value.items()}  # a plain dict: picklable (process pools)


@attrs.frozen(kw_only=True)
class WebAuthnConfig:
    """Who the relying party is and what its ceremonies accept; checked on creation
    (:class:`~mfa_core.errors.InvalidParameter`).

    ``origins`` is the exact list of web origins the ceremonies may run on
    (``"https://example.com"``, ``"http://localhost:8000"``): ``clientDataJSON.origin`` must
    equal one of them, character for character; a subdomain is another origin.
    """

    rp_id: str
    """The RP ID: the registrable domain (``example.com``) or ``localhost``."""
    rp_name: str
    """The name shown by the browser and the authenticator."""
    origins: tuple[str, ...] = attrs.field(converter=_origins)
    """The exact origins allowed (scheme, host, optional port; no path)."""
    allow_cross_origin: bool = False
    """Accept ``crossOrigin: true`` (a ceremony in a cross-origin iframe); off by default."""
    top_origins: tuple[str, ...] = attrs.field(default=(), converter=_origins)
    """With ``allow_cross_origin``: the top-level origins an iframe ceremony may be embedded
    in (``topOrigin``); empty accepts none."""
    user_verification: str = "preferred"
    """What the options ask of the authenticator: ``required``, ``preferred`` or
    ``discouraged``. With ``required``, a response without the UV flag is refused."""
    resident_key: str = "preferred"
    """Discoverable credentials (passkeys): ``required``, ``preferred`` or ``discouraged``."""
    attestation: str = "none"
    """Attestation conveyance asked for: ``none`` (the default), ``indirect``, ``direct`` or
    ``enterprise``."""
    attestation_formats: frozenset[str] = attrs.field(
        default=ATTESTATION_FORMATS, converter=frozenset
    )
    """The attestation statement formats accepted (each verified by the library)."""
    attestation_root_certs: Mapping[str, tuple[bytes, ...]] = attrs.field(
        factory=dict, converter=_frozen_certs
    )
    """Per format, the PEM root certificates an attestation chain must lead to."""
    algorithms: tuple[int, ...] = attrs.field(default=DEFAULT_ALGORITHMS, converter=tuple)
    """COSE algorithms offered and accepted."""
    challenge_ttl: float = 300.0
    """Seconds a challenge is accepted (and the options' ``timeout``): 10 s to 1 hour."""

    def __attrs_post_init__(self) -> None:
        if type(self.rp_id) is not str or not _RP_ID.match(self.rp_id):
            raise InvalidParameter("rp_id must be a lowercase domain name")
        if type(self.rp_name) is not str or not 1 <= len(self.rp_name) <= 64:
            raise InvalidParameter("rp_name must be text of 1 to 64 characters")
        if not self.origins:
            raise InvalidParameter("origins must name at least one origin")
        for origin in (*self.origins, *self.top_origins):
            if type(origin) is not str or not _ORIGIN.match(origin):
                raise InvalidParameter("an origin must be scheme://host[:port] in lowercase")
        if type(self.allow_cross_origin) is not bool:
            raise InvalidParameter("allow_cross_origin must be a bool")
        for name, value, allowed in (
            ("user_verification", self.user_verification, _UV),
            ("resident_key", self.resident_key, _UV),
            ("attestation", self.attestation, _CONVEYANCE),
        ):
            if value not in allowed or type(value) is not str:
                raise InvalidParameter(f"{name} must be one of {', '.join(allowed)}")
        if not self.attestation_formats or not self.attestation_formats <= ATTESTATION_FORMATS:
            raise InvalidParameter("attestation_formats must be formats the library verifies")
        if not self.algorithms or not all(
            type(a) is int and a in _SUPPORTED_ALGORITHMS for a in self.algorithms
        ):
            raise InvalidParameter("algorithms must be supported COSE algorithm identifiers")
        for fmt, certs in self.attestation_root_certs.items():
            if fmt not in ATTESTATION_FORMATS or not all(type(c) is bytes for c in certs):
                raise InvalidParameter("attestation_root_certs must map formats to PEM bytes")
        ttl: Any = self.challenge_ttl
        if type(ttl) not in (int, float) or not math.isfinite(ttl) or not 10 <= ttl <= 3600:
            raise InvalidParameter("challenge_ttl must be 10 to 3600 seconds")

    @property
    def requires_user_verification(self) -> bool:
        """Whether a response without the UV flag is refused."""
        return self.user_verification == "required"
