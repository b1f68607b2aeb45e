#!/usr/bin/python3
"""Password hash test vectors made by the real Django hashers.

Run with an interpreter that has Django (Debian's python3-django 3.2.25 plus
python3-argon2 and python3-bcrypt):

    /usr/bin/python3 password/testdata/django-hash-vectors.py > password/testdata/django_vectors.json
    /usr/bin/python3 password/testdata/django-hash-vectors.py --live   # a few fresh vectors, random salts

Every vector is checked again through django.contrib.auth.hashers.check_password,
and each probe password carries Django's own verdict. "must_update" is what
check_password decides with a Django 5.2 preferred hasher (pbkdf2_sha256,
1,000,000 iterations), computed by Django's check_password itself.
"""
import base64
import hashlib
import hmac
import json
import sys

import django
from django.conf import settings

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.BCryptPasswordHasher",
        "django.contrib.auth.hashers.SHA1PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.UnsaltedSHA1PasswordHasher",
        "django.contrib.auth.hashers.UnsaltedMD5PasswordHasher",
    ],
)
django.setup()

import argon2  # noqa: E402
import bcrypt  # noqa: E402
from django.contrib.auth import hashers as H  # noqa: E402


class Preferred52(H.PBKDF2PasswordHasher):
    """Django 5.2's preferred hasher: only the iteration count differs from 3.2."""
    iterations = 1_000_000


PREFERRED = Preferred52()

LONG = "Correct-Horse-Battery-Staple-" * 3 + "0123456789abc"  # 100 chars
assert len(LONG) == 100
PASSWORDS = ["password", "x", "", "pässwörd✓", LONG]


def probes(pw):
    """Passwords near pw, each of which Django judges."""
    out = [pw + "!", pw.swapcase() if pw.swapcase() != pw else pw + "X", pw + " "]
    if len(pw.encode()) > 72:
        out.append(pw[:72] + "DIFFERENT-TAIL")
    if pw:
        out.append(pw[:-1])
    seen, res = set(), []
    for p in out:
        if p != pw and p not in seen:
            seen.add(p)
            res.append(p)
    return res


def argon2_legacy(password, salt, type_, m, t, p):
    """What Django's Argon2PasswordHasher.encode wrote before 3.2 (argon2i) or
    with non-default settings: "argon2" + argon2-cffi's encoded hash."""
    data = argon2.low_level.hash_secret(
        password.encode(), salt.encode(), time_cost=t, memory_cost=m,
        parallelism=p, hash_len=16, type=type_)
    return "argon2" + data.decode("ascii")


def scrypt_encode(password, salt, n, r, p):
    """ScryptPasswordHasher.encode from Django 4.0-5.2 (hashers.py), which
    Django 3.2 lacks: hashlib.scrypt, maxmem=0, dklen=64."""
    hash_ = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=0, dklen=64)
    hash_ = base64.b64encode(hash_).decode("ascii").strip()
    return "%s$%d$%s$%d$%d$%s" % ("scrypt", n, salt, r, p, hash_)


def scrypt_verify(password, encoded):
    """ScryptPasswordHasher.verify from Django 4.0-5.2."""
    algorithm, n, salt, r, p, hash_ = encoded.split("$", 6)
    assert algorithm == "scrypt"
    return hmac.compare_digest(encoded.encode(), scrypt_encode(password, salt, int(n), int(r), int(p)).encode())


def scrypt_vector(password, salt, n, r, p):
    encoded = scrypt_encode(password, salt, n, r, p)
    assert scrypt_verify(password, encoded)
    return {
        "algorithm": "scrypt",
        "password": password,
        "encoded": encoded,
        "must_update": True,
        "probes": [{"password": q, "ok": scrypt_verify(q, encoded)} for q in probes(password)],
        "note": "Django 4.0+ ScryptPasswordHasher code run on hashlib (Django 3.2 has no scrypt)",
    }


# Published Django 4.2 and 5.2 scrypt values (reference §3.2), which
# scrypt_encode must reproduce.
PUBLISHED_SCRYPT = {
    1: "scrypt$16384$abcdefghijklmnopqrstuv$8$1$FiY8XCVPLRSpSapMuI9WuNt8wVDsppFal3qwH2Hy/9S9qm0DMPnjW6klIOgpy8PHd+69JzcvB7dcdwHG8HeExA==",
    5: "scrypt$16384$abcdefghijklmnopqrstuv$8$5$nEm7Pi7EHJjCWhbAUOPwKB9ZkBdqed/x08Sl27mc9dSFwnLRD4E8HcfCrBo/7ZEPTRlkZEGw3FuBXHxXLkBAIA==",
}


def vector(algorithm, password, encoded, note="", with_probes=True):
    calls = []
    ok = H.check_password(password, encoded, setter=lambda raw: calls.append(raw), preferred=PREFERRED)
    assert ok, (algorithm, password, encoded)
    assert H.identify_hasher(encoded).algorithm == algorithm, (algorithm, encoded)
    v = {
        "algorithm": algorithm,
        "password": password,
        "encoded": encoded,
        "must_update": bool(calls),
        "probes": [{"password": p, "ok": H.check_password(p, encoded, preferred=PREFERRED)}
                   for p in (probes(password) if with_probes else [])],
    }
    if note:
        v["note"] = note
    return v


def all_vectors():
    out = []
    salt = "abcdefghijklmnopqrstuv"
    for name in ("pbkdf2_sha256", "pbkdf2_sha1"):
        h = H.get_hasher(name)
        for it in (1, 1000, 260000, 600000, 1000000):
            pws = PASSWORDS if it <= 1000 else ["password", "pässwörd✓"]
            for pw in pws:
                out.append(vector(name, pw, h.encode(pw, salt, it)))
        # A pre-3.2 12-character salt.
        out.append(vector(name, "password", h.encode("password", "aB3dE5gH7jK9", 1000000), "short salt"))
    h = H.get_hasher("pbkdf2_sha256")
    out.append(vector("pbkdf2_sha256", "pässwörd✓", h.encode("pässwörd✓", "sält✓", 1000), "non-ASCII salt"))

    h = H.get_hasher("argon2")  # Django 3.2 defaults: argon2id, m=102400, t=2, p=8
    for pw in ("password", "pässwörd✓"):
        out.append(vector("argon2", pw, h.encode(pw, salt)))
    for pw in PASSWORDS:
        out.append(vector("argon2", pw, argon2_legacy(pw, salt, argon2.low_level.Type.I, 512, 2, 2),
                          "argon2i as Django 1.10-3.1 wrote it"))
    out.append(vector("argon2", "password",
                      argon2_legacy("password", "0123456789abcdef", argon2.low_level.Type.ID, 1024, 3, 1),
                      "argon2id, custom parameters"))

    for name in ("bcrypt_sha256", "bcrypt"):
        h = H.get_hasher(name)
        out.append(vector(name, "password", h.encode("password", b"$2b$12$abcdefghijklmnopqrstuu")))
        for pw in PASSWORDS:
            out.append(vector(name, pw, h.encode(pw, bcrypt.gensalt(5))))
        out.append(vector(name, LONG, h.encode(LONG, bcrypt.gensalt(4, prefix=b"2a")), "$2a$ prefix"))

    for p, published in PUBLISHED_SCRYPT.items():
        v = scrypt_vector("password", salt, 2**14, 8, p)
        assert v["encoded"] == published, v["encoded"]
        out.append(v)
    for pw in PASSWORDS:
        out.append(scrypt_vector(pw, salt, 16, 1, 1))

    for name in ("sha1", "md5"):
        h = H.get_hasher(name)
        for pw in PASSWORDS:
            out.append(vector(name, pw, h.encode(pw, h.salt())))
        out.append(vector(name, "password", h.encode("password", salt)))
    for name in ("unsalted_sha1", "unsalted_md5"):
        h = H.get_hasher(name)
        for pw in PASSWORDS:
            out.append(vector(name, pw, h.encode(pw, "")))
    out.append(vector("unsalted_md5", "password", "md5$$" + H.get_hasher("unsalted_md5").encode("password", ""),
                      "md5$$ form"))
    return out


def live_vectors():
    """Fresh random salts: proves the committed file is not hand-made."""
    out = []
    for name, kw in (("pbkdf2_sha256", {"iterations": 1000}), ("md5", {}), ("bcrypt_sha256", {})):
        h = H.get_hasher(name)
        salt = bcrypt.gensalt(4) if name.startswith("bcrypt") else h.salt()
        # No probes: a wrong password below the preferred iteration count
        # makes Django harden_runtime() up to a million iterations.
        out.append(vector(name, "pässwörd✓", h.encode("pässwörd✓", salt, **kw), with_probes=False))
    return out


def main():
    live = "--live" in sys.argv[1:]
    vectors = live_vectors() if live else all_vectors()
    json.dump({
        "generator": "password/testdata/django-hash-vectors.py",
        "django": django.get_version(),
        "argon2_cffi": argon2.__version__,
        "bcrypt": bcrypt.__version__,
        "preferred": "pbkdf2_sha256, 1000000 iterations (Django 5.2)",
        "vectors": vectors,
    }, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
