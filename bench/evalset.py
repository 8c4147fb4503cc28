"""The evaluation corpus: files in the shapes of real repositories, in several parts (``PARTS``).

``tune`` is what the scanner may be tuned on (its misses are printed);
``heldout`` is built from *different* templates (``eval_heldout.py``, written
before any tuning on this corpus and never edited to fit results), another
seed and other value generators, and only its totals are ever reported; so are
``heldout2`` (``eval_heldout2.py``), ``heldout3`` (``eval_heldout3.py``, written
blind by a separate author: several values per file, see ``_render_slots``) and
``heldout4`` and ``heldout5`` (written blind the same way, with their own value
generators, ``VALUES``); ``tune8``-``tune11`` were written blind too, to be tuned on.
Each part is a directory of files plus ``labels.json``: one label per planted
value, with the line span it occupies and whether it is a credential.

Values are random (seeded) and synthetic; token formats carry valid checksums
where the format has one, so a scanner cannot tell them from real ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import json
import random
import re
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
        elif flavour == "heldout3":
            self.words = [
                "quartz",
                "marigold",
                "badger",
                "tangerine",
                "glacier",
                "bramble",
                "kestrel",
                "paprika",
                "lagoon",
            ]
            self.users = [
                "billing",
                "search",
                "payments",
                "inventory",
                "notifier",
                "scheduler",
                "sync",
                "ingest",
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

    # -- positives first used by the third held-out part (eval_heldout3.py) ---------------
    def hex32(self) -> str:
        return self.s(32, "0123456789abcdef")

    def hex64(self) -> str:
        return self.s(64, "0123456789abcdef")

    def hex128(self) -> str:
        return self.s(128, "0123456789abcdef")

    def url_password(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, string.digits)
        return self.s(self.rng.randrange(12, 20))

    def twitter_key(self) -> str:
        return self.s(25)

    def twitter_secret(self) -> str:
        return self.s(50)

    def wp_salt(self) -> str:
        return self.s(64, ALNUM + "!#$%&()*+,-./:;<=>?@[]^_`{|}~ ")

    def django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)")

    def azure_client_secret(self) -> str:
        return (
            self.s(3, ALNUM + "_~.") + self.s(1, string.digits) + "Q~" + self.s(34, ALNUM + "_~.-")
        )

    def crates_io(self) -> str:
        return "cio" + self.s(32)

    def stripe_restricted(self) -> str:
        return "rk_live_" + self.s(self.rng.choice([24, 99]))

    def stripe_whsec(self) -> str:
        return "whsec_" + self.s(32)

    def twilio_sk(self) -> str:
        return "SK" + self.hex32()

    def mailgun(self) -> str:
        if self.rng.randrange(2):
            return "key-" + self.hex32()
        return f"{self.hex32()}-{self.s(8, '0123456789abcdef')}-{self.s(8, '0123456789abcdef')}"

    def atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, ALNUM + "_-") + "=" + self.s(8, "0123456789ABCDEF")

    def heroku(self) -> str:
        return "HRKU-AA" + self.s(58, ALNUM + "_-")

    def discord_webhook(self) -> str:
        ident = self.rng.randrange(10**17, 10**19)
        return f"https://discord.com/api/webhooks/{ident}/{self.s(68, ALNUM + '_-')}"

    def teams_webhook(self) -> str:
        ids = [self.request_id() for _ in range(3)]
        return (
            f"https://{self.pick(self.users)}corp.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.hex32()}/{ids[2]}"
        )

    def slack_user(self) -> str:
        digits = string.digits
        return f"xoxp-{self.s(12, digits)}-{self.s(12, digits)}-{self.s(13, digits)}-{self.hex32()}"

    def postman(self) -> str:
        return f"PMAK-{self.s(24, '0123456789abcdef')}-{self.s(34, '0123456789abcdef')}"

    def grafana_sa(self) -> str:
        return f"glsa_{self.s(32)}_{self.s(8, '0123456789abcdef')}"

    def newrelic(self) -> str:
        return "NRAK-" + self.s(27, string.ascii_uppercase + string.digits)

    def mailchimp(self) -> str:
        return f"{self.hex32()}-us{self.rng.randrange(1, 22)}"

    def doppler(self) -> str:
        return "dp.pt." + self.s(43, string.ascii_lowercase + string.digits)

    def github_oauth(self) -> str:
        return self.github("gho")

    def github_app(self) -> str:
        return self.github("ghs")

    def aws_ini_pair(self) -> str:
        return f"aws_access_key_id = {self.aws_id()}\naws_secret_access_key = {self.aws_secret()}"

    def aws_env_pair(self) -> str:
        return f"AWS_ACCESS_KEY_ID={self.aws_id()}\nAWS_SECRET_ACCESS_KEY={self.aws_secret()}"

    def aws_yaml_pair(self) -> str:
        return f"AWS_ACCESS_KEY_ID: {self.aws_id()}\nAWS_SECRET_ACCESS_KEY: {self.aws_secret()}"

    def aws_tf_pair(self) -> str:
        return f'access_key = "{self.aws_id()}"\nsecret_key = "{self.aws_secret()}"'

    def aws_boto_args(self) -> str:
        return f'aws_access_key_id="{self.aws_id()}", aws_secret_access_key="{self.aws_secret()}"'

    def pkcs8_key(self) -> str:
        return self.pem("PRIVATE KEY", 13)

    def b64_pem(self) -> str:
        return base64.b64encode((self.pem("RSA PRIVATE KEY", 10) + "\n").encode()).decode()

    # -- negatives first used by the third held-out part ----------------------------------
    def i18n3(self) -> str:
        return self.pick(
            [
                "Ο κωδικός πρόσβασης είναι λανθασμένος",  # noqa: RUF001
                "הסיסמה שגויה",
                "पासवर्ड गलत है",
                "รหัสผ่านไม่ถูกต้อง",
                "Şifre en az 8 karakter olmalıdır",  # noqa: RUF001
                "Wachtwoord is onjuist",
                "Mật khẩu không khớp",
                "Пароль має містити щонайменше 8 символів",
                "Lösenordet är för svagt",
            ]
        )

    def placeholder3(self) -> str:
        return self.pick(
            [
                "YOUR_API_KEY",
                "<api-token>",
                "${SMTP_PASSWORD:?required}",
                "{{ .Env.DEPLOY_TOKEN }}",
                "%env(DATABASE_PASSWORD)%",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "****************",
                "<redacted>",
                "$API_KEY",
                "${{ secrets.REGISTRY_PASSWORD }}",
                "your-secret-here",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            ]
        )

    def nkey_public(self) -> str:
        raw = bytes([20 << 3]) + self.rng.randbytes(32)
        raw += binascii.crc_hqx(raw, 0).to_bytes(2, "little")
        return base64.b32encode(raw).decode().rstrip("=")

    def rsa_n(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(256)).decode().rstrip("=")

    def public_pem(self) -> str:
        return self.pem("PUBLIC KEY", 6)

    def pgp_public(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 10)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def age_public(self) -> str:
        return "age1" + self.s(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l")

    def b64_cert(self) -> str:
        return base64.b64encode((self.certificate() + "\n").encode()).decode()

    def legacy_encrypted_key(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 12)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        iv = self.s(32, "0123456789ABCDEF")
        return (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{iv}\n\n" + "\n".join(rows) + "\n-----END RSA PRIVATE KEY-----"
        )

    def ansible_vault(self) -> str:
        body = self.s(80 * 6, "0123456789abcdef")
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def sops_value(self) -> str:
        data = base64.b64encode(self.rng.randbytes(self.rng.randrange(12, 40))).decode()
        iv = base64.b64encode(self.rng.randbytes(32)).decode()
        tag = base64.b64encode(self.rng.randbytes(16)).decode()
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def sealed(self) -> str:
        return "AgB" + base64.b64encode(self.rng.randbytes(540)).decode()

    def apr1(self) -> str:
        crypt = ALNUM + "./"
        return f"$apr1${self.s(8, crypt)}${self.s(22, crypt)}"

    def pbkdf2_django(self) -> str:
        digest = base64.b64encode(self.rng.randbytes(32)).decode()
        return f"pbkdf2_sha256$600000${self.s(22)}${digest}"

    def argon2(self) -> str:
        salt = base64.b64encode(self.rng.randbytes(16)).decode().rstrip("=")
        digest = base64.b64encode(self.rng.randbytes(32)).decode().rstrip("=")
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${digest}"

    def sha512crypt(self) -> str:
        crypt = ALNUM + "./"
        return f"$6${self.s(16, crypt)}${self.s(86, crypt)}"

    def scram_verifier(self) -> str:
        def b64(n: int) -> str:
            return base64.b64encode(self.rng.randbytes(n)).decode()

        return f"SCRAM-SHA-256$4096:{b64(16)}${b64(32)}:{b64(32)}"

    def mosquitto_hash(self) -> str:
        salt = base64.b64encode(self.rng.randbytes(12)).decode()
        return f"$7$101${salt}${base64.b64encode(self.rng.randbytes(64)).decode()}"

    def gosum_hash(self) -> str:
        return "h1:" + base64.b64encode(self.rng.randbytes(32)).decode()

    def gpg_fpr(self) -> str:
        return self.s(40, "0123456789ABCDEF")

    def png_b64(self) -> str:
        return base64.b64encode(b"\x89PNG\r\n\x1a\n" + self.rng.randbytes(150)).decode()

    def secret_arn(self) -> str:
        region = self.pick(["us-east-1", "eu-west-1", "ap-southeast-2"])
        name = self.pick(["prod/db", "staging/api", "billing/stripe"])
        return (
            f"arn:aws:secretsmanager:{region}:{self.s(12, string.digits)}:secret:{name}-{self.s(6)}"
        )

    def secret_name(self) -> str:
        return self.pick(
            ["db-credentials", "postgres-auth", "app-secrets", "regcred", "smtp-creds", "api-keys"]
        )

    def op_ref(self) -> str:
        return self.pick(
            [
                "op://Production/Postgres/password",
                "op://CI/npm/token",
                "vault:secret/data/prod/db#password",
                "awssm://prod/db:password",
                "@Microsoft.KeyVault(SecretUri=https://kv-prod.vault.azure.net/secrets/db-pass/)",
            ]
        )

    def form_field(self) -> str:
        return self.pick(["password", "passwd", "new_password", "current_password", "pwd"])

    def grant_type(self) -> str:
        return self.pick(["password", "client_credentials", "authorization_code", "refresh_token"])

    def csp_nonce(self) -> str:
        return base64.b64encode(self.rng.randbytes(16)).decode()

    def small_int(self) -> str:
        return self.pick(["8", "10", "12", "16", "64", "128"])

    # -- values first used by the tune part's second pass (round 4f); ``tune6_`` names only ----
    def tune6_twilio_token(self) -> str:
        return self.s(32, "0123456789abcdef")

    def tune6_tf_ref(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.db.result",
                "data.aws_secretsmanager_secret_version.db.secret_string",
                "local.db_password",
                'jsondecode(data.vault_generic_secret.db.data_json)["password"]',
            ]
        )

    def tune6_tf_hash(self) -> str:
        return "h1:" + base64.b64encode(self.rng.randbytes(32)).decode()

    def tune6_key_name(self) -> str:
        return self.pick(["password", "db-password", "POSTGRES_PASSWORD", "token"])

    def tune6_php_ref(self) -> str:
        return self.pick(
            ["getenv('DB_PASSWORD')", "$_ENV['DB_PASSWORD']", "env('DB_PASSWORD')", "DB_PASS"]
        )

    def tune6_maven_ref(self) -> str:
        encrypted = "{" + base64.b64encode(self.rng.randbytes(24)).decode() + "}"  # mvn -ep
        return self.pick(["${env.NEXUS_PASSWORD}", "${nexus.password}", encrypted])

    def tune6_go_ref(self) -> str:
        return self.pick(
            ['os.Getenv("DB_PASSWORD")', "cfg.DBPassword", 'viper.GetString("db.password")']
        )

    def tune6_jenkins_secret(self) -> str:
        return "{AQAAABAAAAAQ" + base64.b64encode(self.rng.randbytes(36)).decode() + "}"

    def tune6_rails_enc(self) -> str:
        def b64(n: int) -> str:
            return base64.b64encode(self.rng.randbytes(n)).decode()

        return f"{b64(96)}--{b64(12)}--{b64(16)}"

    # -- values first used by the tune part's third pass (round 4g); ``tune7_`` names only -----
    def tune7_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.DB_PASSWORD",
                "config.get('db.password')",
                "process.env['REDIS_PASSWORD'] ?? ''",
                "import.meta.env.VITE_API_KEY",
                "secrets.dbPassword",
            ]
        )

    def tune7_ex_ref(self) -> str:
        return self.pick(
            [
                'System.get_env("DB_PASSWORD")',
                'System.fetch_env!("DATABASE_PASSWORD")',
                "Application.get_env(:shop, :db_password)",
            ]
        )

    def tune7_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:ARM_SECRET_FROM_VAULT",
                "(Get-Secret -Name ArmClientSecret -AsPlainText)",
                "$Credential.GetNetworkCredential().Password",
                "Read-Host -AsSecureString",
            ]
        )

    def tune7_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.NPM_TOKEN }}",
                "$CI_JOB_TOKEN",
                "$(NPM_TOKEN)",
                "%env.NPM_TOKEN%",
                "${NPM_TOKEN}",
                "$BITBUCKET_DEPLOY_PASSWORD",
            ]
        )

    def tune7_iac_ref(self) -> str:
        return self.pick(
            [
                "${ssm:/prod/stripe-key}",
                "'{{resolve:secretsmanager:prod/db:SecretString:password}}'",
                "!Ref DbPassword",
                "${file(./secrets.json):stripe}",
                "'{{resolve:ssm-secure:/prod/db/password:1}}'",
            ]
        )

    def tune7_spring_ref(self) -> str:
        return self.pick(
            [
                "${spring.datasource.password}",
                "${DB_PASSWORD:}",
                "#{environment.DB_PASSWORD}",
                "${vault.db.password}",
            ]
        )

    def tune7_i18n(self) -> str:
        return self.pick(
            [
                "パスワードを忘れた場合",
                "Introduzca su contraseña",
                "Passwort vergessen?",
                "Wprowadź hasło",
                "输入密码",
                "Введите токен доступа",
                "Mot de passe oublié ?",
                "Esqueceu a senha?",
            ]
        )

    def tune7_version(self) -> str:
        return self.pick(["2023-10-16", "v2.14.0", "1.4.2-rc1", "3.11.7", "2024-06-01.preview"])

    def tune7_doc_placeholder(self) -> str:
        return self.pick(
            [
                "sk-...",
                "<your-openai-key>",
                "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "YOUR_ACCESS_TOKEN",
                "<TOKEN>",
                "$TOKEN",
                "<password>",
                "...",
            ]
        )

    def tune7_alphabet(self) -> str:
        return self.pick(
            [
                "abcdefghijklmnopqrstuvwxyz0123456789",
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "0123456789abcdef",
                "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
                "!@#$%^&*()-_=+",
            ]
        )

    def tune7_apache_ref(self) -> str:
        return self.pick(
            ['"exec:/usr/local/bin/ldap-pass"', "${LDAP_BIND_PASSWORD}", '"env:LDAP_PW"']
        )

    def tune7_vb_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("DB_PASSWORD")',
                'ConfigurationManager.AppSettings("DbPassword")',
                "My.Settings.DbPassword",
            ]
        )

    def tune7_c_ref(self) -> str:
        return self.pick(['getenv("DB_PASSWORD")', "cfg->password", "password_buf"])

    def tune7_clj_ref(self) -> str:
        return self.pick(
            ["(env :db-password)", '(System/getenv "DB_PASSWORD")', "(:db-password config)"]
        )

    def tune7_sas_sig(self) -> str:
        from urllib.parse import quote

        return quote(base64.b64encode(self.rng.randbytes(32)).decode(), safe="")

    def tune7_doc_url_password(self) -> str:
        return self.pick(self.words) + self.s(2, string.digits)


#: A template: (path, text with one {V} slot, value generator name, is a credential).
Template = tuple[str, str, str, bool]


def _fill(v: Values, kind: str) -> str:
    fn: Callable[[], str] = getattr(v, kind)
    return fn()


#: A slot of the third held-out part's templates: ``{V}``, ``{V2}``, ... (each number a fresh
#: value of the template's kind, with its own label; a repeated slot repeats its value);
#: ``{IV}`` indents a multi-line value's later lines like the slot's line (YAML, HCL).
SLOT = re.compile(r"\{(I?)V(\d*)\}")


def _render_slots(
    v: Values, kind: str, text: str
) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]]]:
    """Fill every slot of ``text``; return the file body, each value's (first, last) line, and
    the lines where a value appears again (a repeated slot: the same credential twice)."""
    values: dict[str, str] = {}
    spans: list[tuple[int, int]] = []
    repeats: list[tuple[int, int]] = []
    out: list[str] = []
    pos = 0
    for match in SLOT.finditer(text):
        out.append(text[pos : match.start()])
        pos = match.end()
        slot = match.group(2) or "1"
        fresh = slot not in values
        if fresh:
            values[slot] = _fill(v, kind)
        value = values[slot]
        if match.group(1):
            line_start = "".join(out).rfind("\n") + 1
            line = "".join(out)[line_start:]
            indent = line[: len(line) - len(line.lstrip(" "))]
            value = value.replace("\n", "\n" + indent)
        first = "".join(out).count("\n") + 1
        (spans if fresh else repeats).append((first, first + value.count("\n")))
        out.append(value)
    out.append(text[pos:])
    return "".join(out), spans, repeats


#: Every part: its templates' module and its seed. A module may define ``VALUES`` (a
#: ``Values`` subclass with its own generators) and ``MULTI_SLOT = True`` (``_render_slots``).
PARTS: dict[str, tuple[str, int]] = {
    "tune": ("eval_tune", 1201),
    "heldout": ("eval_heldout", 9907),
    "heldout2": ("eval_heldout2", 4451),
    "heldout3": ("eval_heldout3", 7313),
    "heldout4": ("eval_heldout4", 8821),
    "heldout5": ("eval_heldout5", 5519),
    "tune8": ("eval_tune8", 6607),
    "tune9": ("eval_tune9", 6911),
    "tune10": ("eval_tune10", 7121),
    "tune11": ("eval_tune11", 7333),
    "tune12": ("eval_tune12", 7559),
    "heldout6": ("eval_heldout6", 9173),
    "tune13": ("eval_tune13", 7877),
    "heldout7": ("eval_heldout7", 9343),
    "heldout8": ("eval_heldout8", 9551),
    "tune14": ("eval_tune14", 8101),
    "tune15": ("eval_tune15", 8317),
    "heldout9": ("eval_heldout9", 9721),
    "tune16": ("eval_tune16", 8513),
    "tune17": ("eval_tune17", 8737),
    "heldout10": ("eval_heldout10", 9859),
    "tune18": ("eval_tune18", 8951),
    "heldout11": ("eval_heldout11", 9967),
    "heldout12": ("eval_heldout12", 9973),
    "heldout13": ("eval_heldout13", 9979),
    "heldout14": ("eval_heldout14", 9983),
    "tune19": ("eval_tune19", 8963),
    "tune20": ("eval_tune20", 8969),
    "tune21": ("eval_tune21", 8971),
    "tune22": ("eval_tune22", 8999),
    "tune23": ("eval_tune23", 9001),
    "heldout15": ("eval_heldout15", 9991),
    "tune24": ("eval_tune24", 9011),
    "tune25": ("eval_tune25", 9013),
    "heldout16": ("eval_heldout16", 9997),
    "heldout17": ("eval_heldout17", 10007),
    "tune26": ("eval_tune26", 9029),
    "heldout18": ("eval_heldout18", 10009),
    "tune27": ("eval_tune27", 9041),
    "heldout19": ("eval_heldout19", 10037),
    "tune28": ("eval_tune28", 9043),
    "heldout20": ("eval_heldout20", 10039),
    "heldout21": ("eval_heldout21", 10061),
    "tune29": ("eval_tune29", 9049),
    "tune30": ("eval_tune30", 9059),
    "tune31": ("eval_tune31", 9067),
    "heldout22": ("eval_heldout22", 10067),
    "tune32": ("eval_tune32", 9091),
    "heldout23": ("eval_heldout23", 10069),
    "heldout24": ("eval_heldout24", 10079),
    "tune33": ("eval_tune33", 9103),
    "heldout25": ("eval_heldout25", 10091),
    "heldout26": ("eval_heldout26", 10093),
    "tune34": ("eval_tune34", 9109),
    "heldout27": ("eval_heldout27", 10099),
    "heldout28": ("eval_heldout28", 10103),
}


def build(out: Path, part: str, copies: int = 6) -> dict[str, int]:
    """Write ``out/files/...`` and ``out/labels.json`` for ``part`` (a key of ``PARTS``)."""
    module_name, seed = PARTS[part]
    templates_module = importlib.import_module(module_name)
    templates: list[Template] = templates_module.TEMPLATES
    values_class: type[Values] = getattr(templates_module, "VALUES", Values)
    v = values_class(seed, part)
    multi_slot = getattr(templates_module, "MULTI_SLOT", False)
    if out.exists():
        shutil.rmtree(out)
    files = out / "files"
    labels: list[dict[str, object]] = []
    for copy in range(copies):
        for index, (path, text, kind, positive) in enumerate(templates):
            rel = f"p{copy}/t{index:03d}/{path}"
            if multi_slot:
                body, spans, repeats = _render_slots(v, kind, text)
                target = files / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(body)
                for first, last in spans:
                    labels.append(
                        {
                            "path": rel,
                            "first": first,
                            "last": last,
                            "positive": positive,
                            "kind": kind,
                        }
                    )
                # A credential's second appearance is neither a miss nor a false positive when
                # reported: it is scored as "don't care" (a look-alike's stays a look-alike).
                labels.extend(
                    {
                        "path": rel,
                        "first": first,
                        "last": last,
                        "positive": positive,
                        "kind": kind,
                        "repeat": True,
                    }
                    for first, last in repeats
                    if positive
                )
                continue
            value = _fill(v, kind)
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
        "files": sum(1 for x in labels if not x.get("repeat")),
        "positives": sum(1 for x in labels if x["positive"] and not x.get("repeat")),
        "negatives": sum(1 for x in labels if not x["positive"]),
    }


if __name__ == "__main__":
    for name in PARTS:
        print(name, build(HERE / ".corpus" / f"eval-{name}", name))
