"""The evaluation corpus: files in the shapes of real repositories, in two parts.

``tune`` is what the scanner may be tuned on (its misses are printed);
``heldout`` is built from *different* templates (``eval_heldout.py``, written
before any tuning on this corpus and never edited to fit results), another
seed and other value generators, and only its totals are ever reported.
Each part is a directory of files plus ``labels.json``: one label per planted
value, with the line span it occupies and whether it is a credential.

Values are random (seeded) and synthetic; token formats carry valid checksums
where the format has one, so a scanner cannot tell them from real ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import shutil
import string
import sys
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ALNUM = string.ascii_letters + string.digits
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Values:
    """Random credential values and look-alikes; ``flavour`` changes the word lists and shapes so
    the two parts do not share values."""

    def __init__(self, seed: int, flavour: str) -> None:
        self.rng = random.Random(seed)
        self.flavour = flavour
        if flavour == "tune":
            self.words = [
                "summer",
                "dragon",
                "monkey",
                "shadow",
                "falcon",
                "rocket",
                "coffee",
                "pepper",
                "ginger",
            ]
            self.users = ["admin", "app", "svc", "deploy", "ci", "root", "backend", "worker"]
        elif flavour == "heldout2":
            self.words = [
                "orchid",
                "granite",
                "walrus",
                "biscuit",
                "nimbus",
                "cobalt",
                "saffron",
                "tundra",
                "pelican",
            ]
            self.users = [
                "ledger",
                "crm",
                "events",
                "uploader",
                "analytics",
                "ops2",
                "qa",
                "mailer",
            ]
        else:
            self.words = [
                "meadow",
                "copper",
                "lantern",
                "harbor",
                "velvet",
                "thistle",
                "juniper",
                "sparrow",
            ]
            self.users = [
                "ops",
                "etl",
                "reporting",
                "jenkins",
                "buildbot",
                "api",
                "gateway",
                "batch",
            ]

    # -- primitives ---------------------------------------------------------------
    def s(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def pick(self, items: list[str]) -> str:
        return self.rng.choice(items)

    # -- positives ------------------------------------------------------------------
    def password(self) -> str:
        rng = self.rng
        shape = rng.randrange(4)
        if shape == 0:
            return (
                self.pick(self.words).capitalize()
                + str(rng.randrange(10, 2030))
                + rng.choice("!@#$%")
            )
        if shape == 1:
            return self.s(rng.randrange(10, 18), ALNUM + "!#%^&*-_")
        if shape == 2:
            return (
                self.pick(self.words) + self.s(2, string.digits) + self.pick(self.words).upper()[:3]
            )
        return self.s(12, ALNUM)

    def weak_password(self) -> str:
        return self.pick(self.words) + self.pick(["", "1", "123", "!"])

    def api_key(self) -> str:
        return self.pick([self.s(32), self.s(40, "0123456789abcdef"), self.s(24, ALNUM)])

    def b64_secret(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def uuid_key(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def github(self, prefix: str = "ghp") -> str:
        body = self.s(30)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def npm(self) -> str:
        return self.github("npm")

    def aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    def stripe(self) -> str:
        return "sk_live_" + self.s(24)

    def slack(self) -> str:
        return f"xoxb-{self.s(11, string.digits)}-{self.s(12, string.digits)}-{self.s(24)}"

    def gitlab(self) -> str:
        return "glpat-" + self.s(20, ALNUM + "_-")

    def google(self) -> str:
        return "AIza" + self.s(35, ALNUM + "_-")

    def sendgrid(self) -> str:
        return f"SG.{self.s(22, ALNUM + '_-')}.{self.s(43, ALNUM + '_-')}"

    def jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part({"sub": self.s(8), "iat": 1700000000 + self.rng.randrange(10**6)})
        sig = base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")
        return f"{header}.{payload}.{sig}"

    def pem(self, label: str = "RSA PRIVATE KEY", lines: int = 12) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * lines)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def basic(self) -> str:
        return base64.b64encode(f"{self.pick(self.users)}:{self.password()}".encode()).decode()

    def bearer(self) -> str:
        return self.s(40, ALNUM + "-_")

    def nkey(self) -> str:
        raw = bytes([(18 << 3) | (160 >> 5), 0]) + self.rng.randbytes(32)
        raw += binascii.crc_hqx(raw, 0).to_bytes(2, "little")
        return base64.b32encode(raw).decode().rstrip("=")

    def jwk_d(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")

    # -- positives first used by the second held-out part (eval_heldout2.py) --------
    def passphrase(self) -> str:
        words = [self.pick(self.words) for _ in range(3)]
        return "-".join(words) + "-" + str(self.rng.randrange(10, 99))

    def leet_password(self) -> str:
        word = self.pick(self.words).capitalize()
        return word.replace("o", "0").replace("a", "@").replace("i", "1") + self.s(3, string.digits)

    def b64_password(self) -> str:
        return base64.b64encode(self.password().encode()).decode()

    def b64_api_key(self) -> str:
        return base64.b64encode(self.s(32).encode()).decode()

    def openai(self) -> str:
        tail = ALNUM + "_-"
        return f"sk-proj-{self.s(58, tail)}T3BlbkFJ{self.s(58, tail)}"

    def anthropic(self) -> str:
        return f"sk-ant-api03-{self.s(93, ALNUM + '_-')}AA"

    def huggingface(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(70, ALNUM + "_-")

    def shopify(self) -> str:
        return "shpat_" + self.s(32, "0123456789abcdef")

    def digitalocean(self) -> str:
        return "dop_v1_" + self.s(64, "0123456789abcdef")

    def telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 10**10)}:AA{self.s(33, ALNUM + '_-')}"

    def slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, string.ascii_uppercase + string.digits)}"
            f"/B{self.s(10, string.ascii_uppercase + string.digits)}/{self.s(24)}"
        )

    def azure_key(self) -> str:
        return base64.b64encode(self.rng.randbytes(64)).decode()

    def gcp_private_key(self) -> str:
        return self.pem("PRIVATE KEY", 16).replace("\n", "\\n") + "\\n"

    def vault_token(self) -> str:
        return "hvs." + self.s(24)

    def age_key(self) -> str:
        return "AGE-SECRET-KEY-1" + self.s(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")

    def tfc_token(self) -> str:
        return f"{self.s(14)}.atlasv1.{self.s(67, ALNUM)}"

    def databricks(self) -> str:
        return "dapi" + self.s(32, "0123456789abcdef")

    def github_fine(self) -> str:
        return f"github_pat_11{self.s(20, string.ascii_uppercase + string.digits)}_{self.s(59)}"

    def square(self) -> str:
        return "sq0atp-" + self.s(22, ALNUM + "_-")

    def openssh_key(self) -> str:
        return self.pem("OPENSSH PRIVATE KEY", 7)

    def ec_key(self) -> str:
        return self.pem("EC PRIVATE KEY", 3)

    def sentry_user(self) -> str:
        return "sntryu_" + self.s(64, "0123456789abcdef")

    def launchdarkly(self) -> str:
        return "sdk-" + str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- positives first used by the tune part's round-4 templates ----------------------
    def hex_secret(self) -> str:
        return self.s(128, "0123456789abcdef")

    def tune4_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + string.digits + "!@#$%^&*(-_=+)")

    def nats_account_seed(self) -> str:
        raw = bytes([18 << 3, 0]) + self.rng.randbytes(32)  # "SA...": an account seed
        raw += binascii.crc_hqx(raw, 0).to_bytes(2, "little")
        return base64.b32encode(raw).decode().rstrip("=")

    def tune4_mailgun(self) -> str:
        return "key-" + self.s(32, "0123456789abcdef")

    # -- negatives first used by the tune part's round-4 templates ----------------------
    def tune4_i18n3(self) -> str:
        return self.pick(
            [
                "Οι κωδικοί πρόσβασης δεν ταιριάζουν",  # noqa: RUF001
                "הסיסמאות אינן תואמות",
                "รหัสผ่านไม่ตรงกัน",
                "पासवर्ड मेल नहीं खाते",
                "Пароли не совпадают",
                "パスワードを入力してください",
            ]
        )

    def error_code(self) -> str:
        return self.pick(
            [
                "E" + self.s(4, string.digits),
                "AUTH-" + self.s(3, string.digits),
                "ERR_PW_" + self.s(3, string.digits),
                "invalid_grant",
                "token_expired",
                self.s(4, string.digits),
            ]
        )

    def hash_marker(self) -> str:
        name = self.pick(["DB_PASSWORD", "SMTP_PASS", "API_TOKEN", "SECRET_KEY", "ADMIN_PW"])
        return f"###{name}###"

    # -- negatives first used by the second held-out part ---------------------------------
    def placeholder2(self) -> str:
        return self.pick(
            [
                "your-api-key-here",
                "<insert token>",
                "${env:SMTP_PASS}",
                "$(cat /run/secrets/db)",
                "%DB_PASSWORD%",
                "{{password}}",
                "[REDACTED]",
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                "TODO",
                "null",
                "<%= ENV['PASSWORD'] %>",
                "__SECRET__",
            ]
        )

    def duration(self) -> str:
        return str(self.pick(["3600", "86400", "900", '"15m"', '"24h"']))

    def secret_path(self) -> str:
        return self.pick(["/run/secrets/db_password", "/etc/app/db.pass", "./secrets/pg.txt"])

    def b64_username(self) -> str:
        return base64.b64encode(self.pick([*self.users, "json", "text"]).encode()).decode()

    def git_sha(self) -> str:
        return self.s(40, "0123456789abcdef")

    def encrypted_key(self) -> str:
        return self.pem("ENCRYPTED PRIVATE KEY", 10)

    def certificate(self) -> str:
        return self.pem("CERTIFICATE", 14)

    def ssh_public(self) -> str:
        body = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + self.rng.randbytes(36)).decode()
        return f"ssh-ed25519 {body} {self.pick(self.users)}@laptop"

    def env_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DB_PASSWORD"]',
                'os.getenv("DB_PASSWORD")',
                "process.env.API_KEY",
                'config.get("api_key")',
                "settings.SECRET_KEY",
            ]
        )

    def header_name(self) -> str:
        return self.pick(["X-Auth-Token", "Authorization", "X-Api-Key", "Proxy-Authorization"])

    def i18n2(self) -> str:
        return self.pick(
            [
                "Das Passwort ist zu kurz",
                "La contraseña no es válida",
                "Hasło jest nieprawidłowe",
                "Il token è scaduto",
                "Senha incorreta, tente novamente",
                "Invalid password or username",
                "Ungültiges Token",
            ]
        )

    def stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_test_"]) + self.s(24)

    def aws_example(self) -> str:
        return self.pick(["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"])

    def google_client_id(self) -> str:
        digits = self.s(12, string.digits)
        return f"{digits}-{self.s(32, string.ascii_lowercase + string.digits)}.apps.googleusercontent.com"

    def bcrypt(self) -> str:
        return "$2b$12$" + self.s(53, ALNUM + "./")

    def number_words(self) -> str:
        return self.pick(["at least 12", "between 8 and 64", "12 or more", "no fewer than 10"])

    def prose_neg(self) -> str:
        return self.pick(["zu kurz.", "ungültig.", "abgelaufen.", "falsch."])

    def sri(self) -> str:
        return "sha512-" + base64.b64encode(self.rng.randbytes(64)).decode()

    # -- negatives ------------------------------------------------------------------
    def placeholder(self) -> str:
        return self.pick(
            [
                "<your-password>",
                "${DB_PASSWORD}",
                "{{ .Values.db.password }}",
                "###DB_PASSWORD###",
                "changeme",
                "xxxxxxxxxxxx",
                "********",
                "REPLACE_ME",
                "%(password)s",
                "<PASSWORD>",
                "{{ vault_db_password }}",
                "${{ secrets.API_TOKEN }}",
            ]
        )

    def request_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def digest(self) -> str:
        return hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    def i18n(self) -> str:
        return self.pick(
            [
                "パスワードが一致しません",
                "Пароль слишком короткий",
                "密码不正确",
                "كلمة المرور غير صحيحة",
                "비밀번호가 일치하지 않습니다",
                "Mot de passe incorrect",
            ]
        )

    def example_host(self) -> str:
        return self.pick(
            ["db.example.com", "cache.example.org", "mq.test", "api.invalid", "db.example"]
        )

    def bad_github(self) -> str:
        token = self.github()
        return token[:-1] + ("A" if token[-1] != "A" else "B")


#: A template: (path, text with one {V} slot, value generator name, is a credential).
Template = tuple[str, str, str, bool]


def _fill(v: Values, kind: str) -> str:
    fn: Callable[[], str] = getattr(v, kind)
    return fn()


def build(out: Path, part: str, copies: int = 6) -> dict[str, int]:
    """Write ``out/files/...`` and ``out/labels.json`` for ``part`` (tune or heldout)."""
    if part == "tune":
        import eval_tune as templates_module

        seed = 1201
    elif part == "heldout2":
        import eval_heldout2 as templates_module  # type: ignore[no-redef]

        seed = 4451
    else:
        import eval_heldout as templates_module  # type: ignore[no-redef]

        seed = 9907
    templates: list[Template] = templates_module.TEMPLATES
    v = Values(seed, part)
    if out.exists():
        shutil.rmtree(out)
    files = out / "files"
    labels: list[dict[str, object]] = []
    for copy in range(copies):
        for index, (path, text, kind, positive) in enumerate(templates):
            value = _fill(v, kind)
            rel = f"p{copy}/t{index:03d}/{path}"
            head, _, _tail = text.partition("{V}")
            first = head.count("\n") + 1
            body = text.replace("{V}", value)
            last = first + value.count("\n")
            target = files / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            labels.append(
                {"path": rel, "first": first, "last": last, "positive": positive, "kind": kind}
            )
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    return {
        "files": len(labels),
        "positives": sum(1 for x in labels if x["positive"]),
        "negatives": sum(1 for x in labels if not x["positive"]),
    }


if __name__ == "__main__":
    for name in ("tune", "heldout", "heldout2"):
        print(name, build(HERE / ".corpus" / f"eval-{name}", name))
