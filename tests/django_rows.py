"""Writes django-otp and django-allauth rows with the REAL packages into a SQLite file.

Run as a subprocess by ``tests/test_importers.py`` (Django's settings are process-wide):
``python tests/django_rows.py DB_PATH`` configures Django on that file, runs the
migrations, creates devices and authenticators through the packages' own models (and lets
them verify a code, as at a login before the switch), and prints one JSON object of facts
the test checks the import against. allauth runs with an adapter that encrypts its
secrets (:class:`EncryptingAdapter`), as a host's may.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path


def _encrypt(text: str) -> str:
    """A stand-in for a host's encryption (reversible, not secure): the test's decrypt hook
    is :func:`decrypt`."""
    return "enc:" + base64.b64encode(text[::-1].encode()).decode()


def decrypt(text: str) -> str:
    """The host's decrypt hook, as ``mfa-core admin import --allauth-decrypt`` takes it."""
    if not text.startswith("enc:"):
        raise ValueError("not encrypted")
    return base64.b64decode(text[4:]).decode()[::-1]


def _configure(path: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": path}},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_otp",
            "django_otp.plugins.otp_totp",
            "django_otp.plugins.otp_hotp",
            "django_otp.plugins.otp_static",
            "allauth",
            "allauth.account",
            "allauth.mfa",
        ],
        USE_TZ=True,
        MIDDLEWARE=["allauth.account.middleware.AccountMiddleware"],
        SECRET_KEY="django-rows-test",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        MFA_ADAPTER="django_rows.EncryptingAdapter",
        MFA_RECOVERY_CODE_DIGITS=16,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    django.setup()


def main(path: str) -> None:
    """Write the rows into ``path`` and print the facts."""
    sys.path.insert(0, str(Path(__file__).parent))
    _configure(path)
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)

    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret, hotp_value
    from django_otp.oath import hotp, totp
    from django_otp.plugins.otp_hotp.models import HOTPDevice
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    alice = User.objects.create(username="alice")
    bob = User.objects.create(username="bob")
    carol = User.objects.create(username="carol")
    dora = User.objects.create(username="dora")

    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    accepted_at = time.time()
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    assert device.verify_token(str(code).zfill(device.digits)), "django-otp accepts its code"
    device.refresh_from_db()
    TOTPDevice.objects.create(user=bob, name="never confirmed", confirmed=False)
    TOTPDevice.objects.create(user=carol, name="odd t0", confirmed=True, t0=7)
    counter = HOTPDevice.objects.create(user=bob, name="token", confirmed=True)
    assert counter.verify_token(str(hotp(counter.bin_key, 0)).zfill(6))
    counter.refresh_from_db()
    static = StaticDevice.objects.create(user=alice, name="backup", confirmed=True)
    StaticToken.objects.create(device=static, token="ABCDEFGHJKMNPQRS")
    StaticToken.objects.create(device=static, token=StaticToken.random_token())

    secret = generate_totp_secret()
    authenticator = TOTP.activate(dora, secret).instance
    used_at = time.time()
    key = base64.b32decode(secret)
    dora_code = str(hotp_value(secret, int(used_at) // 30)).zfill(6)
    assert TOTP(authenticator).validate_code(dora_code)
    authenticator.record_usage()
    codes = RecoveryCodes.activate(dora)
    every = codes.generate_codes()
    assert codes.validate_code(every[2]), "allauth accepts its recovery code"
    Authenticator.objects.create(user=carol, type="webauthn", data={"credential": {}})

    print(
        json.dumps(
            {
                "alice": str(alice.pk),
                "bob": str(bob.pk),
                "dora": str(dora.pk),
                "otp_key_hex": device.key,
                "otp_last_t": device.last_t,
                "otp_accepted_at": accepted_at,
                "hotp_key_hex": counter.key,
                "hotp_counter": counter.counter,
                "allauth_key_hex": key.hex(),
                "allauth_used_at": used_at,
                "allauth_codes": every,
                "allauth_unused": RecoveryCodes(
                    Authenticator.objects.get(pk=codes.instance.pk)
                ).get_unused_codes(),
                "allauth_used_code": every[2],
            }
        )
    )


def __getattr__(name: str) -> object:
    # EncryptingAdapter subclasses allauth's DefaultMFAAdapter, importable only after
    # django.setup(): made on first access (Django imports it by its dotted path).
    if name == "EncryptingAdapter":
        from allauth.mfa.adapter import DefaultMFAAdapter

        class EncryptingAdapter(DefaultMFAAdapter):  # type: ignore[misc]
            """allauth's adapter with the host's encrypt/decrypt hooks."""

            def encrypt(self, text: str) -> str:
                return _encrypt(text)

            def decrypt(self, encrypted_text: str) -> str:
                return decrypt(encrypted_text)

        globals()["EncryptingAdapter"] = EncryptingAdapter
        return EncryptingAdapter
    raise AttributeError(name)


if __name__ == "__main__":
    main(sys.argv[1])
