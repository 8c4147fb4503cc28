"""Synthetic credential values and look-alikes for the labelled corpus.

Every value is random (seeded): nothing here is a real credential. Token
formats follow their published shapes, including checksums (GitHub/npm
tokens carry a valid CRC32/base62 checksum, zero-padded like the real ones).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
import zlib

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
WORDS = [
    "summer",
    "winter",
    "autumn",
    "spring",
    "dragon",
    "monkey",
    "shadow",
    "master",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome",
    "charlie",
    "donald",
    "freedom",
    "whatever",
    "trustno1",
    "batman",
    "superman",
    "michael",
    "jennifer",
    "hunter",
    "ranger",
    "buster",
    "thomas",
    "tigger",
    "robert",
    "soccer",
    "hockey",
    "killer",
    "george",
    "andrew",
    "harley",
    "orange",
    "purple",
    "silver",
    "golden",
    "falcon",
    "eagle",
    "rocket",
    "coffee",
    "pepper",
    "ginger",
    "banana",
    "cheese",
    "cookie",
    "butter",
    "maggie",
    "bailey",
    "sophie",
    "chelsea",
    "arsenal",
    "liverpool",
    "madrid",
    "barcelona",
]


class Gen:
    """All value factories share one seeded RNG so a corpus is reproducible."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def s(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def pick(self, items):
        return self.r.choice(items)

    # ---------------------------------------------------------------- tokens

    def crc_token(self, prefix: str) -> str:
        body = self.s(30)
        crc = zlib.crc32(body.encode())
        digits = []
        while crc:
            crc, rest = divmod(crc, 62)
            digits.append(B62[rest])
        return f"{prefix}_{body}{''.join(reversed(digits)).rjust(6, '0')}"

    def github(self) -> str:
        return self.crc_token(self.pick(["ghp", "ghp", "ghp", "gho", "ghs", "ghu"]))

    def npm(self) -> str:
        return self.crc_token("npm")

    def aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    def gitlab(self) -> str:
        return "glpat-" + self.s(20, ALNUM + "_-")

    def slack(self) -> str:
        kind = self.pick(["xoxb", "xoxp"])
        if kind == "xoxb":
            return f"xoxb-{self.s(12, string.digits)}-{self.s(13, string.digits)}-{self.s(24)}"
        return (
            f"xoxp-{self.s(12, string.digits)}-{self.s(12, string.digits)}-"
            f"{self.s(13, string.digits)}-{self.s(32, HEX)}"
        )

    def slack_webhook(self) -> str:
        up = string.ascii_uppercase + string.digits
        return f"https://hooks.slack.com/services/T{self.s(8, up)}/B{self.s(10, up)}/{self.s(24)}"

    def discord_webhook(self) -> str:
        return (
            f"https://discord.com/api/webhooks/{self.s(18, string.digits)}/"
            f"{self.s(68, ALNUM + '_-')}"
        )

    def stripe(self) -> str:
        return self.pick(["sk_live_", "rk_live_", "sk_live_"]) + self.s(self.pick([24, 34, 99]))

    def sendgrid(self) -> str:
        return f"SG.{self.s(22, ALNUM + '_-')}.{self.s(43, ALNUM + '_-')}"

    def google(self) -> str:
        return "AIza" + self.s(35, ALNUM + "_-")

    def twilio(self) -> str:
        return "SK" + self.s(32, HEX)

    def mailgun(self) -> str:
        return "key-" + self.s(32, HEX)

    def shopify(self) -> str:
        return self.pick(["shpat_", "shpss_"]) + self.s(32, HEX)

    def databricks(self) -> str:
        return "dapi" + self.s(32, HEX)

    def digitalocean(self) -> str:
        return "dop_v1_" + self.s(64, HEX)

    def huggingface(self) -> str:
        return "hf_" + self.s(34)

    def openai(self) -> str:
        return "sk-" + self.pick(["", "proj-"]) + self.s(20) + "T3BlbkFJ" + self.s(20)

    def anthropic(self) -> str:
        return "sk-ant-api03-" + self.s(93, ALNUM + "_-") + "AA"

    def vault(self) -> str:
        return "hvs." + self.s(self.pick([24, 90]), ALNUM + "_-")

    def telegram(self) -> str:
        return f"{self.s(10, string.digits)}:AA{self.s(33, ALNUM + '_-')}"

    def pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(self.pick([60, 140]), ALNUM + "_-")

    def jwt(self) -> str:
        def enc(obj: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        header = enc({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        payload = enc(
            {
                "sub": self.s(8, string.digits),
                "role": "service",
                "iat": 1700000000 + self.r.randint(0, 9999999),
            }
        )
        return f"{header}.{payload}.{self.s(43, ALNUM + '_-')}"

    def azure_conn(self) -> str:
        key = base64.b64encode(bytes(self.r.getrandbits(8) for _ in range(64))).decode()
        return (
            f"DefaultEndpointsProtocol=https;AccountName=st{self.s(8, string.ascii_lowercase)};"
            f"AccountKey={key};EndpointSuffix=core.windows.net"
        )

    def private_key(self) -> list[str]:
        kind = self.pick(
            ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"]
        )
        raw = base64.b64encode(
            bytes(self.r.getrandbits(8) for _ in range(self.pick([120, 300, 600])))
        )
        body = raw.decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return [f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]

    def hex_key(self) -> str:
        return self.s(self.pick([32, 40, 64]), HEX)

    def b64_key(self) -> str:
        return base64.b64encode(
            bytes(self.r.getrandbits(8) for _ in range(self.pick([24, 32])))
        ).decode()

    def api_key(self) -> str:
        return self.pick(
            [self.hex_key, self.b64_key, lambda: self.s(32), lambda: self.s(40, ALNUM + "_-")]
        )()

    # ---------------------------------------------------------------- passwords

    def strong_password(self) -> str:
        return self.s(self.r.randint(10, 20), ALNUM + "!@#%^&*-_+=")

    def weak_password(self) -> str:
        word = self.pick(WORDS)
        form = self.r.randint(0, 5)
        if form == 0:
            return (
                word.capitalize() + str(self.r.randint(1970, 2025)) + self.pick(["!", "#", "$", ""])
            )
        if form == 1:
            return word + str(self.r.randint(1, 999))
        if form == 2:
            return word.replace("a", "@").replace("o", "0").replace("e", "3").capitalize() + "!"
        if form == 3:
            return (
                self.pick(WORDS)
                + self.pick(["_", ".", "-"])
                + self.pick(WORDS)
                + str(self.r.randint(0, 99))
            )
        if form == 4:
            return word.capitalize() + self.pick(["123", "1234", "!23", "2024"])
        return self.pick(["qwerty", "abc", "pass", "admin", "root", "letmein"]) + str(
            self.r.randint(10, 9999)
        )

    def password(self) -> str:
        return self.strong_password() if self.r.random() < 0.5 else self.weak_password()

    # ---------------------------------------------------------------- look-alikes

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def sha(self, algo: str = "sha256") -> str:
        return hashlib.new(algo, self.s(20).encode()).hexdigest()

    def bad_github(self) -> str:
        token = self.crc_token("ghp")
        return token[:-1] + ("x" if token[-1] != "x" else "y")
