"""Blind part ``tune24``: a hotel chain with its own online travel agency, Orsolune Hotels &
Travel (resorts and city hotels in Portugal, Greece, Turkey and Thailand, plus the
orsolune.travel OTA). Files are property-management system (PMS) integration code and config
(OPERA-style interfaces in Java/Kotlin and C#, night-audit jobs, SQL Server and PostgreSQL
schemas and seed scripts), channel-manager and GDS connectors (Amadeus/Sabre-style SOAP and REST
clients in Go, Python and PHP, XML partner configs, recorded HTTP cassettes), the booking engine
(Node/TypeScript, Rails, Swift iOS and Android apps, .env files, Kubernetes, Helm, Compose),
the loyalty programme (JWT signing, Rust and Go services), payment and fraud services (Stripe,
Adyen, Braintree-style configs, webhooks, HSM notes), hotel Wi-Fi and door-lock systems (RADIUS,
hostapd, UniFi, lock-server INI files, PowerShell and batch scripts on property servers),
call-centre telephony (Asterisk, Twilio, Genesys-style clients), the data warehouse (Snowflake,
BigQuery, Airflow, dbt profiles, notebooks), infrastructure (Terraform, Ansible, systemd, Nginx)
and CI (GitHub Actions, GitLab CI, Jenkins, Azure Pipelines), plus runbooks, wiki pages,
tickets, chat exports and i18n files in English, Portuguese, Greek, Turkish and Thai. Written
blind (without seeing the scanner, its rules or other parts' templates).

Positives are values that would grant access if live: passwords of every strength (dictionary
and seasonal words, vendor defaults on real property hosts, long random ones), RADIUS shared
secrets and WPA passphrases, service tokens in their real formats (GitHub and npm tokens with
their CRC-32 check, age secret keys with their bech32 checksum, GitLab, Slack, Stripe, Adyen,
Braintree, SendGrid, Twilio, Vault, Azure), webhook URLs carrying their secret, private keys
with real DER structure (PKCS#1, PKCS#8, SEC1 and OpenSSH, built with ``cryptography`` from
seeded material), signed JWTs, URI credentials, Basic-auth strings, credentials in prose in all
five languages, CLI arguments, comments, tests and lookup defaults.

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables, secret stores, CI secrets and template variables in every language and tool,
placeholders and redactions, password hashes (bcrypt, argon2, PBKDF2, MySQL and PostgreSQL
verifiers), values encrypted at rest (SOPS, Ansible Vault, Jasypt, KMS blobs, sealed secrets),
public keys and real self-signed certificates, identifiers shaped like secrets (UUIDs, commit
hashes, image digests, booking confirmation numbers, PNR locators, keycard UIDs, Twilio SIDs,
publishable and client keys), UI and i18n text about passwords, documented example credentials,
role-word pairs and test values that say they are fake.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import string
import uuid
import zlib

import evalset
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import NameOID

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PW_SYMBOLS = "!#%*-_=+.@"
CRYPT64 = "./" + ALNUM
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _bech32_polymod(values: list[int]) -> int:
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= gen[i] if ((top >> i) & 1) else 0
    return chk


def _bech32(hrp: str, data: bytes) -> str:
    acc, bits, five = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded + five + [0] * 6) ^ 1
    check = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32[d] for d in five + check)


def _ssh_str(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _armor(label: str, der: bytes, width: int = 64) -> str:
    body = base64.b64encode(der).decode()
    rows = [body[i : i + width] for i in range(0, len(body), width)]
    return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"


class Tune24Values(evalset.Values):
    """Value generators of the tune24 part; every slot generator's name starts with ``t24_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "azulejo",
            "sardinha",
            "alfama",
            "algarve",
            "santorini",
            "meltemi",
            "kalamata",
            "bosphorus",
            "kapadokya",
            "lokum",
            "simit",
            "phuket",
            "songkran",
            "tuktuk",
            "lagoa",
            "cabana",
            "concierge",
            "oliveira",
        ]
        self.users = [
            "pms_sync",
            "chmgr",
            "gds_link",
            "booking_api",
            "loyalty",
            "fraud_svc",
            "dwh_loader",
            "pbx",
            "radius",
            "doorlock",
            "frontdesk",
            "night_audit",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def _b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def _crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def _is_prime(self, n: int) -> bool:
        if any(n % p == 0 for p in SMALL_PRIMES):
            return n in SMALL_PRIMES
        d, r = n - 1, 0
        while d % 2 == 0:
            d //= 2
            r += 1
        for _ in range(24):
            a = self.rng.randrange(2, n - 2)
            x = pow(a, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    def _prime(self, bits: int) -> int:
        while True:
            cand = self.rng.getrandbits(bits) | (3 << (bits - 2)) | 1
            if cand % 65537 != 1 and self._is_prime(cand):
                return cand

    def _rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        e = 65537
        while True:
            p, q = self._prime(bits // 2), self._prime(bits // 2)
            if p == q:
                continue
            phi = (p - 1) * (q - 1)
            if phi % e:
                break
        if p < q:
            p, q = q, p
        d = pow(e, -1, phi)
        numbers = rsa.RSAPrivateNumbers(
            p=p,
            q=q,
            d=d,
            dmp1=d % (p - 1),
            dmq1=d % (q - 1),
            iqmp=pow(q, -1, p),
            public_numbers=rsa.RSAPublicNumbers(e, p * q),
        )
        return numbers.private_key()

    def _ec(self) -> ec.EllipticCurvePrivateKey:
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        return ec.derive_private_key(self.rng.randrange(1, order), ec.SECP256R1())

    def _ed(self) -> ed25519.Ed25519PrivateKey:
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))

    def _pem(self, key: object, fmt: serialization.PrivateFormat) -> str:
        return (
            key.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM, fmt, serialization.NoEncryption()
            )
            .decode()
            .strip()
        )

    def _pw_core(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Ors" + self.s(11, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(16, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    # ------------------------------------------------------------------ positives: passwords
    def t24_pw(self) -> str:
        return self._pw_core()

    def t24_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password1!",
                    "Orsolune1",
                    "Hotel2024!",
                    "Reception1",
                    "Qwerty123!",
                    "letmein1",
                    "Lisboa2023",
                    "Athina2024",
                    "Istanbul34",
                    "Bangkok123",
                ]
            )
        if shape == 1:
            return "Orsolune" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        if shape == 3:
            return (
                self.pick(["Verao", "Inverno", "Kalokairi", "Yaz", "Kis"])
                + str(self.rng.randrange(2019, 2026))
                + self.pick(["", "!"])
            )
        return (
            self.pick(["Summer", "Winter", "Spring", "Autumn"])
            + str(self.rng.randrange(2019, 2026))
            + self.pick(["", "!", "#"])
        )

    def t24_vendor_pw(self) -> str:
        return self.pick(
            ["ubnt", "calvin", "cisco", "admin123", "Admin@123", "1234", "manager", "Mitel123"]
        )

    def t24_long_pw(self) -> str:
        return self.s(self.rng.randrange(24, 41), ALNUM + "-_.~")

    def t24_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def t24_radius_secret(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.pick(self.words) + "-radius-" + self.s(3, DIGITS)
        return self.s(self.rng.randrange(18, 33), ALNUM)

    def t24_wpa_psk(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.pick(self.words).capitalize() + "Staff" + self.s(4, DIGITS)
        if shape == 1:
            return self.s(64, HEX)  # a raw 256-bit PSK
        return "-".join(self.pick(self.words) for _ in range(3))

    def t24_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "orsolune-deploy", "ws_314159@Company.Orsolune"])
        return base64.b64encode(f"{user}:{self._pw_core()}".encode()).decode()

    def t24_b64_pw(self) -> str:
        return base64.b64encode(self._pw_core().encode()).decode()

    # ------------------------------------------------------------------ positives: tokens
    def t24_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t24_npm(self) -> str:
        return self._crc_token("npm")

    def t24_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t24_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t24_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def t24_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://orsolune.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}/V2{self.s(43, URLSAFE)}1"
        )

    def t24_discord_webhook(self) -> str:
        ident = self.rng.randrange(10**17, 10**19)
        return f"https://discord.com/api/webhooks/{ident}/{self.s(68, URLSAFE)}"

    def t24_stripe(self) -> str:
        if self.rng.randrange(2):
            return "sk_live_51" + self.s(12, ALNUM) + self.s(87, ALNUM)
        return self.pick(["sk_live_", "rk_live_"]) + self.s(24, ALNUM)

    def t24_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def t24_adyen(self) -> str:
        return (
            "AQE"
            + self.s(1, "ruy")
            + self.s(97, ALNUM + "+/")
            + "==-"
            + self._b64(32)
            + "-"
            + self.s(16, ALNUM + "{=<;%(:[]")
        )

    def t24_adyen_hmac(self) -> str:
        return self.s(64, HEXU)

    def t24_braintree(self) -> str:
        return f"access_token$production${self.s(16, LOWNUM)}${self.s(32, HEX)}"

    def t24_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t24_hex32(self) -> str:
        return self.s(32, HEX)

    def t24_hex40(self) -> str:
        return self.s(40, HEX)

    def t24_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t24_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t24_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def t24_vault(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t24_azure_storage_key(self) -> str:
        return self._b64(64)

    def t24_azure_client_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t24_aws_env(self) -> str:
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}"

    def t24_aws_ini(self) -> str:
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def t24_jwt_secret(self) -> str:
        if self.rng.randrange(2):
            return self._b64(48)
        return self.s(self.rng.randrange(40, 65), ALNUM)

    def t24_jwt(self) -> str:
        def seg(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        iat = 1714000000 + self.rng.randrange(10**7)
        head = seg({"alg": "HS256", "typ": "JWT"})
        body = seg(
            {
                "iss": "https://auth.orsolune.com",
                "sub": self.pick(self.users),
                "aud": self.pick(["loyalty-api", "booking-engine", "pms-bridge"]),
                "scope": self.pick(["points:write", "reservations:rw", "admin"]),
                "iat": iat,
                "exp": iat + 31536000,
            }
        )
        key = self.rng.randbytes(32)
        sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}." + base64.urlsafe_b64encode(sig).decode().rstrip("=")

    def t24_age(self) -> str:
        return _bech32("age-secret-key-", self.rng.randbytes(32)).upper()

    def t24_django_key(self) -> str:
        return self.s(50, LOWNUM + "!@#%^&*(-_=+)")

    def t24_mailgun(self) -> str:
        return "key-" + self.s(32, HEX)

    def t24_client_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(16, ALNUM)  # Amadeus-style API secret
        if shape == 1:
            return self.s(43, URLSAFE)  # Genesys-style OAuth client secret
        return self._b64(30)

    # ------------------------------------------------------------------ positives: keys
    def t24_rsa_pem(self) -> str:
        return self._pem(self._rsa(), serialization.PrivateFormat.TraditionalOpenSSL)

    def t24_pkcs8_pem(self) -> str:
        key = self._rsa() if self.rng.randrange(2) else self._ec()
        return self._pem(key, serialization.PrivateFormat.PKCS8)

    def t24_ec_pem(self) -> str:
        return self._pem(self._ec(), serialization.PrivateFormat.TraditionalOpenSSL)

    def t24_gcp_key(self) -> str:
        pem = self._pem(self._rsa(), serialization.PrivateFormat.PKCS8)
        return pem.replace("\n", "\\n") + "\\n"

    def t24_openssh(self) -> str:
        key = self._ed()
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kind = b"ssh-ed25519"
        pub_blob = _ssh_str(kind) + _ssh_str(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.pick(self.users)}@orsolune".encode()
        priv = check + check + _ssh_str(kind) + _ssh_str(pub) + _ssh_str(seed + pub)
        priv += _ssh_str(comment)
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        blob = b"openssh-key-v1\x00" + _ssh_str(b"none") + _ssh_str(b"none") + _ssh_str(b"")
        blob += (1).to_bytes(4, "big") + _ssh_str(pub_blob) + _ssh_str(priv)
        return _armor("OPENSSH PRIVATE KEY", blob, 70)

    # ------------------------------------------------------------------ negatives: references
    def t24_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["PMS_DB_PASSWORD"]',
                'os.getenv("CHANNEL_API_KEY")',
                'settings.SECRETS["adyen_api_key"]',
                'Variable.get("snowflake_password")',
                'client.get_secret("stripe-secret").value',
            ]
        )

    def t24_jvm_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("OPERA_DB_PASSWORD")',
                "${OPERA_DB_PASSWORD}",
                'env.getProperty("gds.amadeus.secret")',
                'secrets.get("pms/interface").password',
            ]
        )

    def t24_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("LOCK_DB_PASSWORD")',
                'configuration["Vingcard:Password"]',
                '(await secretClient.GetSecretAsync("lock-db")).Value.Value',
                'ConfigurationManager.AppSettings["PmsPassword"]',
            ]
        )

    def t24_go_ref(self) -> str:
        return self.pick(
            ['os.Getenv("GDS_PASSWORD")', "cfg.GDS.Password", 'viper.GetString("sabre.secret")']
        )

    def t24_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                "process.env['SENDGRID_API_KEY']",
                "config.get('payments.adyen.apiKey')",
                "import.meta.env.VITE_BOOKING_API_KEY",
                "await getSecret('booking/stripe')",
            ]
        )

    def t24_php_ref(self) -> str:
        return self.pick(
            ["getenv('CHANNEL_PASSWORD')", "$_ENV['CHANNEL_PASSWORD']", "env('SITEMINDER_KEY')"]
        )

    def t24_ruby_ref(self) -> str:
        return self.pick(
            [
                'ENV["BOOKING_DB_PASSWORD"]',
                'ENV.fetch("STRIPE_SECRET_KEY")',
                "Rails.application.credentials.dig(:stripe, :secret_key)",
            ]
        )

    def t24_rust_ref(self) -> str:
        return self.pick(
            [
                'env::var("CIRCLE_JWT_SECRET")?',
                'std::fs::read_to_string("/run/secrets/circle_jwt")?',
                "CONFIG.jwt_secret.clone()",
            ]
        )

    def t24_tf_ref(self) -> str:
        return self.pick(
            [
                "var.pms_db_password",
                "random_password.pms.result",
                "data.aws_secretsmanager_secret_version.pms_db.secret_string",
                'jsondecode(data.vault_kv_secret_v2.pms.data_json)["password"]',
            ]
        )

    def t24_secret_path(self) -> str:
        return self.pick(
            [
                "/etc/orsolune/credentials/booking-db",
                "/run/secrets/booking_db_password",
                "/var/lib/orsolune/creds/db.pass",
            ]
        )

    def t24_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.NPM_TOKEN }}",
                "${{ secrets.REGISTRY_PASSWORD }}",
                "$CI_REGISTRY_PASSWORD",
                "$(ACR_PASSWORD)",
                "${DOCKERHUB_TOKEN}",
                "credentials('nexus-deploy')",
            ]
        )

    def t24_tpl_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.pms.password }}",
                "{{ vault_radius_secret }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret/data/wifi:psk') }}",
                "${var.db_password}",
                '{{ env "LOCK_API_KEY" }}',
                "<%= ENV['SMTP_PASSWORD'] %>",
            ]
        )

    def t24_shell_ref(self) -> str:
        return self.pick(
            [
                '"$PMS_DB_PASSWORD"',
                '"$(vault kv get -field=password secret/pms/db)"',
                '"$(cat /run/secrets/dwh_password)"',
                '"${SNOWFLAKE_PASSWORD:?set SNOWFLAKE_PASSWORD}"',
                '"$(aws ssm get-parameter --with-decryption --name /pms/db --query Parameter.Value --output text)"',
            ]
        )

    def t24_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:LOCK_SERVER_PASSWORD",
                "(Get-Secret -Name LockServer -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Read-Host -AsSecureString -Prompt 'Lock DB password')",
            ]
        )

    def t24_store_ref(self) -> str:
        return self.pick(
            [
                "op://Orsolune-Prod/Opera DB/password",
                "vault:secret/data/payments/adyen#api_key",
                "arn:aws:secretsmanager:eu-west-1:418276530914:secret:prod/booking/db-Xq3vLm",
                "@Microsoft.KeyVault(SecretUri=https://kv-orsolune-prod.vault.azure.net/secrets/pms-db/)",
                "projects/orsolune-dwh/secrets/snowflake-loader/versions/latest",
                "secretsmanager:prod/gds/amadeus:SecretString:client_secret",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def t24_placeholder(self) -> str:
        return self.pick(
            [
                "<password>",
                "CHANGE_ME",
                "your-api-key-here",
                "xxxxxxxxxxxxxxxx",
                "<ADYEN_API_KEY>",
                "REPLACE_WITH_SECRET",
                "********",
                "<insira a palavra-passe>",
                "TODO",
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                "<κωδικός>",
                "<şifre>",
            ]
        )

    def t24_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "****",
                "<redacted>",
                "***removed***",
                "[FILTERED]",
                "sk_live_****************Xq9f",
                "ghp_************************************",
                "[ocultado]",
            ]
        )

    def t24_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-key",
                "dummy_token_123",
                "test-secret-do-not-use",
                "FAKE_STRIPE_KEY",
                "unit-test-only",
                "fake_ghp_token_for_fixture",
                "insecure-test-password",
            ]
        )

    def t24_doc_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "xoxb-not-a-real-token-this-will-not-work",
                "SG.xxxxxxxx.yyyyyyyy",
                "postgres://user:password@localhost:5432/mydb",
            ]
        )

    def t24_doc_uri(self) -> str:
        return self.pick(
            [
                "postgresql+psycopg2://user:password@localhost/airflow",
                "postgresql://<user>:<password>@<host>:5432/<db>",
                "mysql://username:password@example.com:3306/airflow",
                "postgresql+psycopg2://airflow:airflow@postgres/airflow",
            ]
        )

    def t24_key_word(self) -> str:
        return self.pick(
            ["password", "client_secret", "api_key", "secret", "token", "passphrase", "pin"]
        )

    def t24_i18n_pt(self) -> str:
        return self.pick(
            [
                "A palavra-passe deve ter pelo menos 8 caracteres",
                "Esqueceu-se da palavra-passe?",
                "Palavra-passe incorreta. Tente novamente.",
                "Introduza a sua palavra-passe",
                "As palavras-passe não coincidem",
            ]
        )

    def t24_i18n_el(self) -> str:
        return self.pick(
            [
                "Ο κωδικός πρόσβασης πρέπει να έχει τουλάχιστον 8 χαρακτήρες",
                "Ξεχάσατε τον κωδικό πρόσβασης;",
                "Λανθασμένος κωδικός πρόσβασης",
                "Εισαγάγετε τον κωδικό σας",
                "Οι κωδικοί δεν ταιριάζουν",
            ]
        )

    def t24_i18n_tr(self) -> str:
        return self.pick(
            [
                "Şifrenizi mi unuttunuz?",
                "Parola en az 8 karakter olmalıdır",
                "Geçersiz erişim anahtarı",
                "Şifrenizi girin",
                "Şifreler eşleşmiyor",
            ]
        )

    def t24_i18n_th(self) -> str:
        return self.pick(
            [
                "ลืมรหัสผ่าน?",
                "รหัสผ่านต้องมีอย่างน้อย 8 ตัวอักษร",
                "กรุณากรอกรหัสผ่าน",
                "รหัสผ่านไม่ถูกต้อง",
                "รหัสผ่านไม่ตรงกัน",
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes
    def t24_bcrypt(self) -> str:
        return f"$2{self.pick(['a', 'b', 'y'])}$12$" + self.s(53, CRYPT64)

    def t24_argon2(self) -> str:
        salt = self._b64(16, pad=False)
        digest = self._b64(32, pad=False)
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${digest}"

    def t24_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self._b64(32)}"

    def t24_mysql_hash(self) -> str:
        return "*" + self.s(40, HEXU)

    def t24_pg_hash(self) -> str:
        if self.rng.randrange(2):
            return "md5" + self.s(32, HEX)
        return f"SCRAM-SHA-256$4096:{self._b64(16)}${self._b64(32)}:{self._b64(32)}"

    def t24_apr1(self) -> str:
        if self.rng.randrange(2):
            return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"
        return "{SHA}" + self._b64(20)

    def t24_h1_hash(self) -> str:
        return "h1:" + self._b64(32)

    def t24_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    # ------------------------------------------------------------------ negatives: encrypted
    def t24_sops(self) -> str:
        data = self._b64(self.rng.randrange(12, 40))
        return f"ENC[AES256_GCM,data:{data},iv:{self._b64(32)},tag:{self._b64(16)},type:str]"

    def t24_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(
            body[i : i + 80] for i in range(0, len(body), 80)
        )

    def t24_jasypt(self) -> str:
        return "ENC(" + self._b64(self.rng.choice([24, 32, 48])) + ")"

    def t24_kms_blob(self) -> str:
        return "AQICAHh" + self._b64(self.rng.choice([150, 168, 183]))[7:]

    def t24_rails_enc(self) -> str:
        return f"{self._b64(self.rng.choice([180, 243, 312]))}--{self._b64(12)}--{self._b64(16)}"

    def t24_sealed(self) -> str:
        return "AgB" + self._b64(self.rng.choice([300, 360, 420]))

    # ------------------------------------------------------------------ negatives: public material
    def t24_public_pem(self) -> str:
        key = self._ec() if self.rng.randrange(2) else self._ed()
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def t24_cert(self) -> str:
        key = self._ed()
        host = self.pick(
            [
                "pms.orsolune.com",
                "radius.lis.orsolune.net",
                "lock.ath.orsolune.net",
                "api.orsolune.travel",
            ]
        )
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, self.pick(["PT", "GR", "TR", "TH"])),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Orsolune Hotels & Travel"),
                x509.NameAttribute(NameOID.COMMON_NAME, host),
            ]
        )
        start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            days=self.rng.randrange(400)
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(120) + 1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, None)
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().strip()

    def t24_ssh_pub(self) -> str:
        pub = (
            self._ed()
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        )
        return pub.decode() + f" {self.pick(self.users)}@orsolune"

    def t24_age_public(self) -> str:
        key = x25519.X25519PrivateKey.from_private_bytes(self.rng.randbytes(32))
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return _bech32("age", raw)

    def t24_pub_client_key(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "pk_live_" + self.s(24, ALNUM)
        if shape == 1:
            return "live_" + self.s(32, UPNUM)  # Adyen client key, used in the browser
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    # ------------------------------------------------------------------ negatives: identifiers
    def t24_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t24_git_sha(self) -> str:
        return self.s(40, HEX)

    def t24_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def t24_booking_ref(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "ORS-" + self.s(8, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        if shape == 1:
            return self.s(6, "ABCDEFGHJKLMNPQRSTUVWXYZ")  # a GDS PNR record locator
        if shape == 2:
            return self.s(10, DIGITS)  # a channel confirmation number
        return "OHT" + self.s(3, UPNUM) + "-" + self.s(6, UPNUM)

    def t24_keycard_uid(self) -> str:
        return "04" + self.s(12, HEXU)

    def t24_twilio_sid(self) -> str:
        return self.pick(["AC", "PN", "MG"]) + self.s(32, HEX)

    def t24_account_id(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(12, DIGITS)
        if shape == 1:
            return "acct_1" + self.s(15, ALNUM)
        return "merchant_account:OrsoluneHotels" + self.pick(["PT", "GR", "TR", "TH"]) + "ECOM"


VALUES = Tune24Values


def _t(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    return (path, text.lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = []

# ---------------------------------------------------------------------- PMS interfaces
TEMPLATES += [
    _t(
        "pms-bridge/src/main/resources/application-prod.yml",
        "t24_pw",
        True,
        r"""
spring:
  application:
    name: pms-bridge
  datasource:
    url: jdbc:sqlserver://sql-pms01.lis.orsolune.net:1433;databaseName=OPERA_IFC;encrypt=true
    username: ifc_bridge
    password: {V}
    hikari:
      maximum-pool-size: 12
orsolune:
  pms:
    property-codes: [LISALF, LISBEL, FAOLAG]
    night-audit-cron: "0 30 2 * * *"
    interface:
      host: opera-ifc.lis.orsolune.net
      port: 5010
      user: IFC_ORS
      password: {V2}
""",
    ),
    _t(
        "pms-bridge/src/main/resources/application-staging.yml",
        "t24_jvm_ref",
        False,
        r"""
spring:
  application:
    name: pms-bridge
  datasource:
    url: jdbc:sqlserver://sql-pms-stg.lis.orsolune.net:1433;databaseName=OPERA_IFC
    username: ifc_bridge
    password: {V}
orsolune:
  pms:
    property-codes: [LISALF]
    interface:
      host: opera-ifc-stg.lis.orsolune.net
      user: IFC_ORS
      password: {V2}
""",
    ),
    _t(
        "pms-bridge/src/main/kotlin/com/orsolune/pms/OperaInterfaceClient.kt",
        "t24_pw",
        True,
        r"""
package com.orsolune.pms

import java.net.Socket

/**
 * FIAS-style link to the OPERA interface server. The credentials below were meant to be
 * temporary for the Belém go-live (ticket PMS-1182).
 */
class OperaInterfaceClient(
    private val host: String = "opera-ifc.lis.orsolune.net",
    private val port: Int = 5010,
) {
    private val user = System.getenv("OPERA_IFC_USER") ?: "IFC_ORS"
    private val password = System.getenv("OPERA_IFC_PASSWORD") ?: "{V}"

    fun connect(): Socket {
        val socket = Socket(host, port)
        val login = "LS|DA240101|TI120000|\u0003LA|IFC|$user|$password|"
        socket.getOutputStream().write(login.toByteArray())
        return socket
    }
}
""",
    ),
    _t(
        "pms-bridge/src/main/kotlin/com/orsolune/pms/PostingConfig.kt",
        "t24_jvm_ref",
        False,
        r"""
package com.orsolune.pms

import org.springframework.beans.factory.annotation.Value
import org.springframework.context.annotation.Configuration

@Configuration
class PostingConfig(
    @Value("\${orsolune.pms.interface.user}") val user: String,
) {
    // resolved at startup, never written to disk
    val password: String = {V}
    val postingAccount = "ROOM_CHARGE"
}
""",
    ),
    _t(
        "night-audit/src/main/java/com/orsolune/audit/AuditJob.java",
        "t24_pw",
        True,
        r"""
package com.orsolune.audit;

import java.sql.Connection;
import java.sql.DriverManager;

public final class AuditJob {
    private static final String URL =
        "jdbc:postgresql://pg-audit.ath.orsolune.net:5432/night_audit";

    public static void main(String[] args) throws Exception {
        String pw = System.getProperty("audit.password", "{V}");
        try (Connection c = DriverManager.getConnection(URL, "night_audit", pw)) {
            c.createStatement().execute("CALL close_business_day('ATHPLK')");
        }
    }
}
""",
    ),
    _t(
        "night-audit/src/test/java/com/orsolune/audit/AuditJobTest.java",
        "t24_fake",
        False,
        r"""
package com.orsolune.audit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.testcontainers.containers.PostgreSQLContainer;

class AuditJobTest {
    static PostgreSQLContainer<?> pg = new PostgreSQLContainer<>("postgres:16")
        .withUsername("night_audit")
        .withPassword("{V}");

    @Test
    void closesBusinessDay() {
        pg.start();
        System.setProperty("audit.password", "{V}");
        assertTrue(pg.isRunning());
    }
}
""",
    ),
    _t(
        "pms-sync/PmsSync/appsettings.Production.json",
        "t24_pw",
        True,
        r"""
{
  "Logging": { "LogLevel": { "Default": "Information" } },
  "ConnectionStrings": {
    "Pms": "Server=sql-pms01.ist.orsolune.net;Database=PMS_TR;User Id=pms_sync;Password={V};TrustServerCertificate=True",
    "Audit": "Server=sql-pms01.ist.orsolune.net;Database=AUDIT;Integrated Security=True"
  },
  "Opera": {
    "BaseUrl": "https://ohip.ist.orsolune.net/",
    "HotelId": "ISTBOS"
  }
}
""",
    ),
    _t(
        "pms-sync/PmsSync/appsettings.Development.json",
        "t24_placeholder",
        False,
        r"""
{
  "ConnectionStrings": {
    "Pms": "Server=localhost,1433;Database=PMS_TR;User Id=pms_sync;Password={V};TrustServerCertificate=True"
  },
  "Opera": {
    "BaseUrl": "https://ohip-sandbox.orsolune.net/",
    "HotelId": "ISTBOS",
    "ClientSecret": "{V2}"
  }
}
""",
    ),
    _t(
        "pms-sync/PmsSync/Services/OhipTokenService.cs",
        "t24_client_secret",
        True,
        r"""
using System.Net.Http.Headers;

namespace Orsolune.PmsSync.Services;

public sealed class OhipTokenService
{
    private const string TokenUrl = "https://ohip.ist.orsolune.net/oauth/v1/tokens";
    private const string ClientId = "orsolune_pms_sync_prod";
    // TODO(PMS-2210): move to Key Vault before the Kapadokya opening
    private const string ClientSecret = "{V}";

    public async Task<string> FetchAsync(HttpClient http)
    {
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = ClientId,
            ["client_secret"] = ClientSecret,
        };
        var res = await http.PostAsync(TokenUrl, new FormUrlEncodedContent(form));
        res.EnsureSuccessStatusCode();
        return await res.Content.ReadAsStringAsync();
    }
}
""",
    ),
    _t(
        "pms-sync/PmsSync/Services/LockDbFactory.cs",
        "t24_cs_ref",
        False,
        r"""
using Microsoft.Data.SqlClient;

namespace Orsolune.PmsSync.Services;

public static class LockDbFactory
{
    public static SqlConnection Create(IConfiguration configuration)
    {
        var builder = new SqlConnectionStringBuilder
        {
            DataSource = "sql-lock01.ist.orsolune.net",
            InitialCatalog = "VISIONLINE",
            UserID = "pms_sync",
            Password = {V},
        };
        return new SqlConnection(builder.ConnectionString);
    }
}
""",
    ),
    _t(
        "db/pms/2024_05_create_logins.sql",
        "t24_pw",
        True,
        r"""
-- Interface logins for the Thai properties (HKTPAT, CNXOLD)
USE master;
GO
CREATE LOGIN pms_sync WITH PASSWORD = N'{V}', CHECK_POLICY = ON;
CREATE LOGIN ifc_bridge WITH PASSWORD = N'{V2}', CHECK_POLICY = OFF;
GO
USE PMS_TH;
CREATE USER pms_sync FOR LOGIN pms_sync;
ALTER ROLE db_datareader ADD MEMBER pms_sync;
GO
""",
    ),
    _t(
        "db/pms/2024_06_users_export.sql",
        "t24_mysql_hash",
        False,
        r"""
-- Exported from mysql-crs01 for the audit (hashes only, no plaintext)
INSERT INTO mysql.user (Host, User, authentication_string, plugin) VALUES
  ('10.40.%', 'crs_app', '{V}', 'mysql_native_password'),
  ('10.40.%', 'crs_report', '{V2}', 'mysql_native_password'),
  ('localhost', 'backup', '{V3}', 'mysql_native_password');
FLUSH PRIVILEGES;
""",
    ),
    _t(
        "db/loyalty/V12__staff_accounts.sql",
        "t24_bcrypt",
        False,
        r"""
-- Back-office users of the Orsolune Circle loyalty console
INSERT INTO staff_user (email, display_name, password_hash, role) VALUES
  ('marta.silva@orsolune.com', 'Marta Silva', '{V}', 'supervisor'),
  ('eleni.pappa@orsolune.com', 'Ελένη Παππά', '{V2}', 'agent'),
  ('kaan.yilmaz@orsolune.com', 'Kaan Yılmaz', '{V3}', 'agent');
""",
    ),
    _t(
        "db/pms/pg_roles_dump.sql",
        "t24_pg_hash",
        False,
        r"""
--
-- Roles (pg_dumpall --roles-only, pg-audit.ath.orsolune.net)
--
CREATE ROLE night_audit;
ALTER ROLE night_audit WITH LOGIN NOSUPERUSER INHERIT PASSWORD '{V}';
CREATE ROLE report_ro;
ALTER ROLE report_ro WITH LOGIN NOSUPERUSER INHERIT PASSWORD '{V2}';
""",
    ),
    _t(
        "pms-bridge/src/main/resources/jasypt.properties",
        "t24_jasypt",
        False,
        r"""
# values encrypted with the pms-bridge master key (jasypt, PBEWITHHMACSHA512ANDAES_256)
opera.ifc.user=IFC_ORS
opera.ifc.password={V}
pms.db.password={V2}
jasypt.encryptor.password=${JASYPT_MASTER_KEY}
""",
    ),
    _t(
        "pms-bridge/build.gradle.kts",
        "t24_ci_ref",
        False,
        r"""
plugins {
    kotlin("jvm") version "1.9.24"
    id("org.springframework.boot") version "3.2.5"
}

repositories {
    mavenCentral()
    maven {
        url = uri("https://nexus.orsolune.net/repository/maven-releases/")
        credentials {
            username = "ci-gradle"
            password = System.getenv("NEXUS_PASSWORD") ?: "{V}"
        }
    }
}
""",
    ),
]

# ---------------------------------------------------------------------- channel manager and GDS
TEMPLATES += [
    _t(
        "channel-connector/internal/gds/amadeus.go",
        "t24_client_secret",
        True,
        r"""
package gds

import (
	"net/http"
	"net/url"
	"strings"
)

const (
	amadeusTokenURL = "https://api.amadeus.com/v1/security/oauth2/token"
	amadeusClientID = "Gk3rYt9PqLmZ2wXv8Nc5Hs1Ja7Ue4Db"
)

// amadeusSecret is the production secret of the Orsolune self-service app.
var amadeusSecret = "{V}"

func FetchToken(c *http.Client) (*http.Response, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {amadeusClientID},
		"client_secret": {amadeusSecret},
	}
	return c.Post(amadeusTokenURL, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}
""",
    ),
    _t(
        "channel-connector/internal/gds/sabre.go",
        "t24_go_ref",
        False,
        r"""
package gds

import "encoding/base64"

type SabreConfig struct {
	UserID   string
	Group    string
	Domain   string
	Password string
}

func LoadSabre() SabreConfig {
	return SabreConfig{
		UserID:   "V1:7ORS:8Q2B:AA",
		Group:    "8Q2B",
		Domain:   "AA",
		Password: {V},
	}
}

func (c SabreConfig) Basic() string {
	inner := base64.StdEncoding.EncodeToString([]byte(c.UserID))
	pw := base64.StdEncoding.EncodeToString([]byte(c.Password))
	return base64.StdEncoding.EncodeToString([]byte(inner + ":" + pw))
}
""",
    ),
    _t(
        "channel-connector/config/partners.xml",
        "t24_pw",
        True,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- OTA_HotelAvailNotif / OTA_HotelRateAmountNotif partners -->
<partners>
  <partner code="BKG" name="Booking.com">
    <endpoint>https://supply-xml.booking.com/hotels/ota/</endpoint>
    <username>orsolune-xml</username>
    <password>{V}</password>
  </partner>
  <partner code="EXP" name="Expedia EQC">
    <endpoint>https://services.expediapartnercentral.com/eqc/ar</endpoint>
    <username>EQCorsolune</username>
    <password>{V2}</password>
  </partner>
</partners>
""",
    ),
    _t(
        "channel-connector/config/partners.staging.xml",
        "t24_placeholder",
        False,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<partners>
  <partner code="BKG" name="Booking.com (test hotel 1337)">
    <endpoint>https://supply-xml.booking.com/hotels/ota/</endpoint>
    <username>orsolune-xml-test</username>
    <password>{V}</password>
  </partner>
  <partner code="EXP" name="Expedia EQC sandbox">
    <username>EQCorsolune_test</username>
    <password>{V2}</password>
  </partner>
</partners>
""",
    ),
    _t(
        "channel-connector/tests/cassettes/booking_avail_notif.yaml",
        "t24_basic_b64",
        True,
        r"""
interactions:
- request:
    body: '<OTA_HotelAvailNotifRQ Version="1.0"><AvailStatusMessages HotelCode="1184522"/></OTA_HotelAvailNotifRQ>'
    headers:
      Authorization:
      - Basic {V}
      Content-Type:
      - application/xml
    method: POST
    uri: https://supply-xml.booking.com/hotels/ota/OTA_HotelAvailNotif
  response:
    body:
      string: '<OTA_HotelAvailNotifRS><Success/></OTA_HotelAvailNotifRS>'
    headers:
      Content-Type:
      - text/xml
    status:
      code: 200
      message: OK
version: 1
""",
    ),
    _t(
        "channel-connector/tests/cassettes/expedia_ar.yaml",
        "t24_redacted",
        False,
        r"""
interactions:
- request:
    body: null
    headers:
      Authorization:
      - Basic {V}
      X-Request-Id:
      - 7e1d2c9a-45b1-4c3e-9a7f-0b1b3c9d2e11
    method: GET
    uri: https://services.expediapartnercentral.com/eqc/ar?hotelId=4477120
  response:
    body:
      string: '<AvailRateRetrievalRS/>'
    status:
      code: 200
      message: OK
version: 1
""",
    ),
    _t(
        "channel-connector/tests/cassettes/siteminder_pull.json",
        "t24_booking_ref",
        False,
        r"""
{
  "recorded_with": "betamax/0.8.1",
  "http_interactions": [
    {
      "request": {
        "method": "GET",
        "uri": "https://api.siteminder.example-partner.net/v2/reservations/{V}",
        "headers": {"Authorization": ["Bearer <scrubbed>"]}
      },
      "response": {
        "status": {"code": 200},
        "body": {"string": "{\"confirmation\":\"{V}\",\"pnr\":\"{V2}\",\"hotel\":\"LISALF\"}"}
      }
    }
  ]
}
""",
    ),
    _t(
        "channel-connector/connectors/siteminder.py",
        "t24_hex40",
        True,
        r"""
'''SiteMinder-style pull connector for the Greek properties.'''

import os

import requests

BASE = "https://cm.orsolune.net/api/v2"
# the partner key from the onboarding e-mail (Σεπτέμβριος 2023)
PARTNER_KEY = os.environ.get("CM_PARTNER_KEY", "{V}")


def pull_reservations(hotel_code: str) -> list[dict]:
    res = requests.get(
        f"{BASE}/hotels/{hotel_code}/reservations",
        headers={"X-Partner-Key": PARTNER_KEY},
        timeout=30,
    )
    res.raise_for_status()
    return res.json()["reservations"]
""",
    ),
    _t(
        "channel-connector/connectors/hotelbeds.py",
        "t24_py_ref",
        False,
        r"""
import hashlib
import os
import time

import requests

API_KEY = os.environ["HOTELBEDS_API_KEY"]
SECRET = {V}


def signature() -> str:
    raw = f"{API_KEY}{SECRET}{int(time.time())}"
    return hashlib.sha256(raw.encode()).hexdigest()


def get(path: str) -> dict:
    headers = {"Api-key": API_KEY, "X-Signature": signature()}
    return requests.get(f"https://api.hotelbeds.com{path}", headers=headers, timeout=20).json()
""",
    ),
    _t(
        "channel-connector/legacy/ChannelPush.php",
        "t24_url_pw",
        True,
        r"""
<?php
// Legacy rate push for the Bodrum property, still run by cron on cm-legacy01
$feed = 'ftp://bodrum_rates:{V}@ftp.ist.orsolune.net/outbound/rates_BJVORS.xml';
$xml = file_get_contents('/var/spool/rates/BJVORS.xml');
if (file_put_contents($feed, $xml) === false) {
    error_log('rate push failed for BJVORS');
}
""",
    ),
    _t(
        "channel-connector/legacy/config.php",
        "t24_php_ref",
        False,
        r"""
<?php
return [
    'db' => [
        'host' => 'mysql-cm01.ist.orsolune.net',
        'name' => 'channel',
        'user' => 'cm_app',
        'pass' => {V},
    ],
    'siteminder' => [
        'endpoint' => 'https://cm.orsolune.net/api/v2',
        'key' => {V2},
    ],
];
""",
    ),
    _t(
        "channel-connector/legacy/config.local.php",
        "t24_pw",
        True,
        r"""
<?php
// copied from cm-legacy01 so the cron job runs on the new box too
return [
    'db' => [
        'host' => 'mysql-cm01.ist.orsolune.net',
        'name' => 'channel',
        'user' => 'cm_app',
        'pass' => '{V}',
    ],
];
""",
    ),
    _t(
        "channel-connector/.env.example",
        "t24_placeholder",
        False,
        r"""
# copy to .env and fill in from 1Password (vault "Channel Manager")
CM_PARTNER_KEY={V}
AMADEUS_CLIENT_ID=
AMADEUS_CLIENT_SECRET={V2}
SABRE_PASSWORD={V3}
HOTELBEDS_API_KEY=
""",
    ),
    _t(
        "channel-connector/.env",
        "t24_client_secret",
        True,
        r"""
CM_PARTNER_KEY_FILE=/run/secrets/cm_partner_key
AMADEUS_CLIENT_ID=Gk3rYt9PqLmZ2wXv8Nc5Hs1Ja7Ue4Db
AMADEUS_CLIENT_SECRET={V}
HOTELBEDS_API_KEY_FILE=/run/secrets/hotelbeds_key
HOTELBEDS_SECRET={V2}
LOG_LEVEL=debug
""",
    ),
]

# ---------------------------------------------------------------------- booking engine and apps
TEMPLATES += [
    _t(
        "booking-engine/.env.production",
        "t24_stripe",
        True,
        r"""
NODE_ENV=production
PORT=8080
PUBLIC_URL=https://www.orsolune.travel
STRIPE_SECRET_KEY={V}
SENDGRID_FROM=reservas@orsolune.travel
""",
    ),
    _t(
        "booking-engine/.env.production.template",
        "t24_tpl_ref",
        False,
        r"""
NODE_ENV=production
PORT=8080
PUBLIC_URL=https://www.orsolune.travel
STRIPE_SECRET_KEY={V}
SENDGRID_API_KEY={V2}
""",
    ),
    _t(
        "booking-engine/src/payments/stripeClient.ts",
        "t24_stripe",
        True,
        r"""
import Stripe from 'stripe';

// fallback kept for the local demo of the checkout page; remove before release
const secretKey = process.env.STRIPE_SECRET_KEY ?? '{V}';

export const stripe = new Stripe(secretKey, {
  apiVersion: '2024-04-10',
  appInfo: { name: 'orsolune-booking-engine', version: '4.12.0' },
});

export async function createDeposit(amountCents: number, bookingRef: string) {
  return stripe.paymentIntents.create({
    amount: amountCents,
    currency: 'eur',
    metadata: { bookingRef },
  });
}
""",
    ),
    _t(
        "booking-engine/src/payments/adyenClient.ts",
        "t24_js_ref",
        False,
        r"""
import { Client, CheckoutAPI } from '@adyen/api-library';

const client = new Client({
  apiKey: {V},
  environment: 'LIVE',
  liveEndpointUrlPrefix: '1797a841fbb37ca7-OrsoluneHotels',
});

export const checkout = new CheckoutAPI(client);
""",
    ),
    _t(
        "booking-engine/src/config/frontend.ts",
        "t24_pub_client_key",
        False,
        r"""
// Values shipped to the browser. None of these are secrets: publishable and client keys
// only identify the account.
export const frontendConfig = {
  browserKeys: {
    checkout: '{V}',
    wallet: '{V2}',
    signIn: '{V3}',
  },
  supportedLocales: ['en', 'pt-PT', 'el', 'tr', 'th'],
};
""",
    ),
    _t(
        "booking-engine/src/mail/sendgrid.ts",
        "t24_sendgrid",
        True,
        r"""
import sgMail from '@sendgrid/mail';

sgMail.setApiKey('{V}');

export async function sendConfirmation(to: string, bookingRef: string, locale: string) {
  await sgMail.send({
    to,
    from: 'reservas@orsolune.travel',
    templateId: locale === 'el' ? 'd-4f1c0b6e9a2d4d8f' : 'd-9a7e3b1c5f2d4e6a',
    dynamicTemplateData: { bookingRef },
  });
}
""",
    ),
    _t(
        "booking-engine/test/fixtures/users.json",
        "t24_fake",
        False,
        r"""
[
  {"email": "guest.one@example.com", "password": "{V}", "tier": "silver"},
  {"email": "guest.two@example.com", "password": "{V2}", "tier": "gold"},
  {"email": "agent@example.com", "password": "{V3}", "role": "call_centre"}
]
""",
    ),
    _t(
        "booking-engine/test/e2e/login.spec.ts",
        "t24_pw",
        True,
        r"""
import { test, expect } from '@playwright/test';

// runs against production every night (synthetic monitoring account)
const USER = 'synthetic.monitor@orsolune.travel';
const PASS = '{V}';

test('guest can log in and see upcoming stays', async ({ page }) => {
  await page.goto('https://www.orsolune.travel/pt/entrar');
  await page.fill('#email', USER);
  await page.fill('#password', PASS);
  await page.click('button[type=submit]');
  await expect(page.getByText('As minhas estadias')).toBeVisible();
});
""",
    ),
    _t(
        "booking-engine/.npmrc",
        "t24_npm",
        True,
        r"""
@orsolune:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
save-exact=true
""",
    ),
    _t(
        "booking-engine/.npmrc.ci",
        "t24_ci_ref",
        False,
        r"""
@orsolune:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
save-exact=true
""",
    ),
    _t(
        "booking-engine/deploy/k8s/secret.yaml",
        "t24_b64_pw",
        True,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: booking-engine-db
  namespace: booking
type: Opaque
data:
  username: Ym9va2luZ19hcGk=
  password: {V}
""",
    ),
    _t(
        "booking-engine/deploy/k8s/sealed-secret.yaml",
        "t24_sealed",
        False,
        r"""
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: booking-engine-db
  namespace: booking
spec:
  encryptedData:
    username: {V}
    password: {V2}
  template:
    metadata:
      name: booking-engine-db
""",
    ),
    _t(
        "booking-engine/deploy/k8s/deployment.yaml",
        "t24_image_digest",
        False,
        r"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: booking-engine
  namespace: booking
spec:
  replicas: 4
  template:
    spec:
      containers:
        - name: api
          image: ghcr.io/orsolune/booking-engine@{V}
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: booking-engine-db
                  key: password
        - name: migrate
          image: ghcr.io/orsolune/booking-migrate@{V2}
""",
    ),
    _t(
        "booking-engine/deploy/helm/values-prod.yaml",
        "t24_pw",
        True,
        r"""
image:
  repository: ghcr.io/orsolune/booking-engine
  tag: 4.12.0
postgresql:
  auth:
    username: booking_api
    password: {V}
    postgresPassword: {V2}
redis:
  auth:
    password: {V3}
ingress:
  host: www.orsolune.travel
""",
    ),
    _t(
        "booking-engine/deploy/helm/values-prod.enc.yaml",
        "t24_sops",
        False,
        r"""
postgresql:
    auth:
        username: booking_api
        password: {V}
        postgresPassword: {V2}
redis:
    auth:
        password: {V3}
sops:
    kms:
        - arn: arn:aws:kms:eu-west-1:418276530914:key/5b1d7c2e-8f3a-4e61-9c0d-2a7b6e4f1d93
          created_at: "2024-05-14T09:12:44Z"
    lastmodified: "2024-05-14T09:12:45Z"
    version: 3.8.1
""",
    ),
    _t(
        "booking-engine/docker-compose.yml",
        "t24_pw",
        True,
        r"""
services:
  api:
    build: .
    environment:
      DATABASE_URL: postgres://booking_api:${DB_PASSWORD:-{V}}@db:5432/booking
      REDIS_URL: redis://cache:6379/0
    depends_on: [db, cache]
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: booking_api
      POSTGRES_PASSWORD: ${DB_PASSWORD:-{V}}
  cache:
    image: redis:7
""",
    ),
    _t(
        "booking-engine/docker-compose.ci.yml",
        "t24_tpl_ref",
        False,
        r"""
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: booking_api
      POSTGRES_PASSWORD: {V}
  api:
    build: .
    environment:
      SMTP_PASSWORD: {V2}
""",
    ),
    _t(
        "booking-rails/config/database.yml",
        "t24_url_pw",
        True,
        r"""
default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

production:
  <<: *default
  url: postgres://orsolune_web:{V}@pg-web01.lis.orsolune.net:5432/orsolune_web
""",
    ),
    _t(
        "booking-rails/config/database.production.yml",
        "t24_ruby_ref",
        False,
        r"""
production:
  adapter: postgresql
  host: pg-web01.lis.orsolune.net
  database: orsolune_web
  username: orsolune_web
  password: <%= {V} %>
""",
    ),
    _t(
        "booking-rails/config/initializers/braintree.rb",
        "t24_braintree",
        True,
        r"""
# Braintree for the legacy packages checkout (Portugal only)
Braintree::Configuration.environment = :production
Braintree::Configuration.logger = Rails.logger

BRAINTREE_GATEWAY = Braintree::Gateway.new(
  access_token: ENV.fetch("BRAINTREE_ACCESS_TOKEN", "{V}")
)
""",
    ),
    _t(
        "booking-rails/config/credentials.yml.enc",
        "t24_rails_enc",
        False,
        r"""
{V}
""",
    ),
    _t(
        "booking-ios/Orsolune/Config/Secrets.swift",
        "t24_google_api",
        True,
        r"""
import Foundation

enum Secrets {
    // Places API key for the "hotels near me" search, restricted to nothing yet
    static let placesApiKey = "{V}"
    static let bookingApiBase = URL(string: "https://api.orsolune.travel/v3")!
}
""",
    ),
    _t(
        "booking-ios/Orsolune/Networking/AuthClient.swift",
        "t24_key_word",
        False,
        r"""
import Foundation

struct LoginRequest: Encodable {
    let email: String
    let secret: String
    let grantType = "{V}"
}

final class AuthClient {
    let tokenKeychainKey = "{V2}"

    func login(email: String, secret: String) async throws -> Data {
        var req = URLRequest(url: URL(string: "https://auth.orsolune.com/oauth/token")!)
        req.httpMethod = "POST"
        req.httpBody = try JSONEncoder().encode(LoginRequest(email: email, secret: secret))
        let (data, _) = try await URLSession.shared.data(for: req)
        return data
    }
}
""",
    ),
    _t(
        "booking-android/app/src/main/res/values-el/strings.xml",
        "t24_i18n_el",
        False,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="login_title">Σύνδεση στο Orsolune Circle</string>
    <string name="password_hint">{V}</string>
    <string name="password_error">{V2}</string>
    <string name="password_forgot">{V3}</string>
</resources>
""",
    ),
    _t(
        "booking-android/local.properties",
        "t24_pw",
        True,
        r"""
sdk.dir=/Users/tiago.ferreira/Library/Android/sdk
RELEASE_STORE_FILE=../keys/orsolune-release.jks
RELEASE_STORE_PASSWORD={V}
RELEASE_KEY_ALIAS=orsolune
RELEASE_KEY_PASSWORD={V2}
""",
    ),
    _t(
        "booking-engine/src/i18n/th.json",
        "t24_i18n_th",
        False,
        r"""
{
  "auth": {
    "password": "รหัสผ่าน",
    "passwordHint": "{V}",
    "passwordInvalid": "{V2}",
    "forgot": "{V3}"
  },
  "booking": { "confirm": "ยืนยันการจอง" }
}
""",
    ),
    _t(
        "booking-engine/src/i18n/pt-PT.json",
        "t24_i18n_pt",
        False,
        r"""
{
  "auth": {
    "password": "Palavra-passe",
    "passwordHint": "{V}",
    "passwordInvalid": "{V2}"
  },
  "booking": { "confirm": "Confirmar reserva" }
}
""",
    ),
]

# ---------------------------------------------------------------------- loyalty programme
TEMPLATES += [
    _t(
        "loyalty/circle-points/src/config.rs",
        "t24_jwt_secret",
        True,
        r"""
use std::env;

pub struct Config {
    pub database_url: String,
    pub jwt_secret: String,
    pub points_per_euro: u32,
}

impl Config {
    pub fn from_env() -> Self {
        Self {
            database_url: env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://loyalty@pg-loyalty01:5432/circle".into()),
            // shared with the booking engine to verify member tokens
            jwt_secret: env::var("CIRCLE_JWT_SECRET")
                .unwrap_or_else(|_| "{V}".to_string()),
            points_per_euro: 10,
        }
    }
}
""",
    ),
    _t(
        "loyalty/circle-points/src/auth.rs",
        "t24_rust_ref",
        False,
        r"""
use jsonwebtoken::{decode, DecodingKey, Validation, Algorithm};

pub fn verify(token: &str) -> anyhow::Result<Claims> {
    let secret = {V};
    let key = DecodingKey::from_secret(secret.as_bytes());
    let data = decode::<Claims>(token, &key, &Validation::new(Algorithm::HS256))?;
    Ok(data.claims)
}
""",
    ),
    _t(
        "loyalty/circle-points/Cargo.lock",
        "t24_sha256",
        False,
        r"""
# This file is automatically @generated by Cargo.
version = 3

[[package]]
name = "jsonwebtoken"
version = "9.3.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"

[[package]]
name = "sqlx"
version = "0.7.4"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"
""",
    ),
    _t(
        "loyalty/partner-gateway/main.go",
        "t24_jwt",
        True,
        r"""
package main

import (
	"log"
	"net/http"
)

// Long-lived service token for the airline partner earn feed (expires in a year).
const partnerToken = "{V}"

func main() {
	req, _ := http.NewRequest("POST", "https://loyalty.orsolune.com/api/v1/earn/batch", nil)
	req.Header.Set("Authorization", "Bearer "+partnerToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	log.Println(res.Status)
}
""",
    ),
    _t(
        "loyalty/partner-gateway/README.md",
        "t24_doc_example",
        False,
        r"""
# partner-gateway

Posts partner earn batches to the Circle API.

```bash
export PARTNER_TOKEN=...   # from the partner portal
go run . -batch ./earn.csv
```

The sample config on the old wiki used `{V}`; that is the documented example value from
the provider's docs and never worked against our accounts.
""",
    ),
    _t(
        "loyalty/console/settings/production.py",
        "t24_django_key",
        True,
        r"""
from .base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["circle-admin.orsolune.com"]
SECRET_KEY = "{V}"
CSRF_TRUSTED_ORIGINS = ["https://circle-admin.orsolune.com"]
SESSION_COOKIE_SECURE = True
""",
    ),
    _t(
        "loyalty/console/settings/base.py",
        "t24_py_ref",
        False,
        r"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = {V}
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "pg-loyalty01.lis.orsolune.net",
        "NAME": "circle_admin",
        "USER": "circle_admin",
        "PASSWORD": os.environ.get("CIRCLE_DB_PASSWORD", ""),
    }
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
""",
    ),
    _t(
        "loyalty/console/fixtures/admin_users.json",
        "t24_pbkdf2",
        False,
        r"""
[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {
      "username": "circle-admin",
      "password": "{V}",
      "is_superuser": true,
      "email": "circle-admin@orsolune.com"
    }
  },
  {
    "model": "auth.user",
    "pk": 2,
    "fields": {"username": "support-th", "password": "{V2}", "is_superuser": false}
  }
]
""",
    ),
]

# ---------------------------------------------------------------------- payments and fraud
TEMPLATES += [
    _t(
        "payments/adyen-service/src/main/resources/application.properties",
        "t24_adyen",
        True,
        r"""
adyen.environment=LIVE
adyen.merchant-account=OrsoluneHotelsECOM
adyen.live-prefix=1797a841fbb37ca7-OrsoluneHotels
adyen.api-key={V}
adyen.webhook.path=/adyen/notifications
""",
    ),
    _t(
        "payments/adyen-service/src/main/resources/application-test.properties",
        "t24_account_id",
        False,
        r"""
adyen.environment=TEST
adyen.merchant-account={V}
adyen.api-key=${ADYEN_API_KEY}
adyen.webhook.hmac-key=${ADYEN_HMAC_KEY}
""",
    ),
    _t(
        "payments/adyen-service/src/main/java/com/orsolune/pay/WebhookVerifier.java",
        "t24_adyen_hmac",
        True,
        r"""
package com.orsolune.pay;

import com.adyen.util.HMACValidator;
import com.adyen.model.notification.NotificationRequestItem;

public class WebhookVerifier {
    // HMAC key from Customer Area > Webhooks > Standard notification (live)
    private static final String HMAC_KEY = "{V}";
    private final HMACValidator validator = new HMACValidator();

    public boolean valid(NotificationRequestItem item) throws Exception {
        return validator.validateHMAC(item, HMAC_KEY);
    }
}
""",
    ),
    _t(
        "payments/adyen-service/src/main/java/com/orsolune/pay/AdyenConfig.java",
        "t24_jvm_ref",
        False,
        r"""
package com.orsolune.pay;

import com.adyen.Client;
import com.adyen.enums.Environment;

public class AdyenConfig {
    public Client client() {
        String apiKey = {V};
        return new Client(apiKey, Environment.LIVE, "1797a841fbb37ca7-OrsoluneHotels");
    }
}
""",
    ),
    _t(
        "payments/stripe-webhooks/handler.py",
        "t24_stripe_whsec",
        True,
        r"""
import os

import stripe
from flask import Flask, abort, request

app = Flask(__name__)
stripe.api_key = os.environ["STRIPE_SECRET_KEY"]
ENDPOINT_SECRET = os.getenv("STRIPE_WEBHOOK_SECRET", "{V}")


@app.post("/stripe/webhook")
def webhook():
    try:
        event = stripe.Webhook.construct_event(
            request.data, request.headers["Stripe-Signature"], ENDPOINT_SECRET
        )
    except stripe.error.SignatureVerificationError:
        abort(400)
    return {"received": event["type"]}
""",
    ),
    _t(
        "payments/stripe-webhooks/test_handler.py",
        "t24_fake",
        False,
        r"""
import pytest

import handler


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "{V}")
    monkeypatch.setattr(handler, "ENDPOINT_SECRET", "{V2}")


def test_rejects_unsigned(client):
    assert client.post("/stripe/webhook", data=b"{}").status_code == 400
""",
    ),
    _t(
        "payments/stripe-webhooks/events/charge_succeeded.json",
        "t24_account_id",
        False,
        r"""
{
  "id": "evt_3PJ2xQ2eZvKYlo2C0cX1a9Lm",
  "object": "event",
  "account": "{V}",
  "api_version": "2024-04-10",
  "data": {
    "object": {
      "id": "ch_3PJ2xQ2eZvKYlo2C0W6gk2tP",
      "amount": 48600,
      "currency": "eur",
      "metadata": {"bookingRef": "ORS-7KQ4M2ZP"}
    }
  },
  "type": "charge.succeeded"
}
""",
    ),
    _t(
        "payments/fraud/riskscore/config.toml",
        "t24_hex32",
        True,
        r"""
[service]
listen = "0.0.0.0:8443"
model_path = "/opt/riskscore/models/gbm-2024-05.bin"

[provider.signifyd]
base_url = "https://api.signifyd.com/v3"
team_id = 58213
api_key = "{V}"

[provider.ipinfo]
token = "{V2}"
""",
    ),
    _t(
        "payments/fraud/riskscore/config.example.toml",
        "t24_placeholder",
        False,
        r"""
[service]
listen = "127.0.0.1:8443"

[provider.signifyd]
base_url = "https://api.signifyd.com/v3"
team_id = 0
api_key = "{V}"

[provider.ipinfo]
token = "{V2}"
""",
    ),
    _t(
        "payments/fraud/rules/velocity.sql",
        "t24_sha256",
        False,
        r"""
-- cards are stored as salted SHA-256 fingerprints only (PCI DSS 3.4)
SELECT card_fingerprint, COUNT(*) AS attempts
FROM payment_attempt
WHERE created_at > now() - interval '1 hour'
  AND card_fingerprint IN ('{V}', '{V2}')
GROUP BY card_fingerprint
HAVING COUNT(*) > 5;
""",
    ),
    _t(
        "payments/hsm/README.md",
        "t24_pw",
        True,
        r"""
# Payment HSM (Thales payShield) — Lisbon DC

* Console: `https://hsm-lis01.pay.orsolune.net` (only from the PCI jump host)
* Left key custodian card PIN is with Marta, right with Tiago.
* Web console login for the PCI engineers: `hsmadmin` / `{V}`
* Backup console user `hsmaudit`, password `{V2}` (rotated after the 2024 QSA visit)
""",
    ),
]

# ---------------------------------------------------------------------- Wi-Fi and door locks
TEMPLATES += [
    _t(
        "property-infra/radius/clients.conf",
        "t24_radius_secret",
        True,
        r"""
# FreeRADIUS clients for the Lisbon properties (guest + staff SSIDs)
client unifi-lisalf {
    ipaddr = 10.21.0.0/24
    secret = {V}
    shortname = LISALF-AP
}

client unifi-lisbel {
    ipaddr = 10.22.0.0/24
    secret = {V2}
    shortname = LISBEL-AP
}
""",
    ),
    _t(
        "property-infra/radius/clients.conf.j2",
        "t24_tpl_ref",
        False,
        r"""
# managed by ansible (role: radius), do not edit on the host
{% for site in radius_sites %}
client unifi-{{ site.code | lower }} {
    ipaddr = {{ site.cidr }}
    secret = {V}
    shortname = {{ site.code }}-AP
}
{% endfor %}
""",
    ),
    _t(
        "property-infra/radius/mods-config/files/authorize",
        "t24_pw",
        True,
        r"""
# local staff accounts (fallback when AD is down)
"frontdesk.lis"  Cleartext-Password := "{V}"
                 Reply-Message := "Bem-vindo, %{User-Name}"
"engineering.ath" Cleartext-Password := "{V2}"
                 Reply-Message := "Καλώς ήρθατε"
""",
    ),
    _t(
        "property-infra/hostapd/staff-ath.conf",
        "t24_wpa_psk",
        True,
        r"""
interface=wlan0
driver=nl80211
ssid=ORSOLUNE-STAFF-ATH
hw_mode=g
channel=6
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase={V}
""",
    ),
    _t(
        "property-infra/hostapd/staff.conf.template",
        "t24_shell_ref",
        False,
        r"""
#!/bin/sh
# rendered at boot by /usr/local/sbin/render-hostapd
cat > /etc/hostapd/hostapd.conf <<EOF
interface=wlan0
ssid=ORSOLUNE-STAFF-${SITE}
wpa=2
wpa_key_mgmt=WPA-PSK
wpa_passphrase=$(printf %s {V})
EOF
""",
    ),
    _t(
        "property-infra/unifi/site-export-HKTPAT.json",
        "t24_wpa_psk",
        True,
        r"""
{
  "site": "HKTPAT",
  "wlanconf": [
    {"name": "Orsolune Guest", "security": "open", "is_guest": true},
    {
      "name": "ORSOLUNE-STAFF-HKT",
      "security": "wpapsk",
      "wpa_mode": "wpa2",
      "x_passphrase": "{V}"
    },
    {"name": "ORS-POS", "security": "wpapsk", "x_passphrase": "{V2}"}
  ]
}
""",
    ),
    _t(
        "property-infra/unifi/controller-notes.txt",
        "t24_vendor_pw",
        True,
        r"""
UniFi controller, Chiang Mai (CNXOLD)
https://10.71.0.5:8443  (self-hosted on the NUC in the server cupboard)

Devices were adopted with the factory SSH login and never changed:
  ssh ubnt@10.71.0.21   password {V}
Controller admin is in 1Password (vault Property-IT).
""",
    ),
    _t(
        "doorlock/vingcard-bridge/LockServer.ini",
        "t24_pw",
        True,
        r"""
[LockServer]
Host=10.34.2.10
Port=3015
Site=ISTBOS

[Database]
Server=sql-lock01.ist.orsolune.net
Catalog=VISIONLINE
User=vl_service
Password={V}

[Encoder]
ComPort=COM3
OperatorCode=FRONT01
OperatorPassword={V2}
""",
    ),
    _t(
        "doorlock/vingcard-bridge/LockServer.sample.ini",
        "t24_placeholder",
        False,
        r"""
[LockServer]
Host=10.x.x.x
Port=3015
Site=XXXXXX

[Database]
Server=sql-lock01
Catalog=VISIONLINE
User=vl_service
Password={V}

[Encoder]
OperatorCode=FRONT01
OperatorPassword={V2}
""",
    ),
    _t(
        "doorlock/vingcard-bridge/Install-LockBridge.ps1",
        "t24_ps_ref",
        False,
        r"""
param(
    [Parameter(Mandatory)] [string] $Site
)

$servicePassword = {V}
$secure = ConvertTo-SecureString $servicePassword -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ("ORSOLUNE\svc-lockbridge", $secure)

New-Service -Name "OrsoluneLockBridge" `
    -BinaryPathName "C:\Orsolune\LockBridge\LockBridge.exe --site $Site" `
    -Credential $cred -StartupType Automatic
""",
    ),
    _t(
        "doorlock/vingcard-bridge/Install-LockBridge-BJV.ps1",
        "t24_pw",
        True,
        r"""
# quick install for Bodrum, run as local admin on LOCK-BJV01
$secure = ConvertTo-SecureString "{V}" -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ("ORSOLUNE\svc-lockbridge", $secure)
New-Service -Name "OrsoluneLockBridge" `
    -BinaryPathName "C:\Orsolune\LockBridge\LockBridge.exe --site BJVORS" `
    -Credential $cred -StartupType Automatic
Start-Service OrsoluneLockBridge
""",
    ),
    _t(
        "doorlock/scripts/encode_master.bat",
        "t24_vendor_pw",
        True,
        r"""
@echo off
REM Encode a master key card on the reception encoder (Salto ProAccess SPACE)
set SALTO_HOST=10.52.4.30
set SALTO_USER=admin
set SALTO_PASS={V}
"C:\Program Files\SALTO\ProAccess SPACE\tools\encoder.exe" /host %SALTO_HOST% /user %SALTO_USER% /pass %SALTO_PASS% /card master /room ALL
""",
    ),
    _t(
        "doorlock/scripts/encode_guest.bat",
        "t24_keycard_uid",
        False,
        r"""
@echo off
REM re-encode a lost guest card; UID of the card being replaced goes into the audit log
set OLD_UID={V}
set NEW_UID={V2}
"C:\Orsolune\LockBridge\lockcli.exe" replace --old %OLD_UID% --new %NEW_UID% --operator %USERNAME%
""",
    ),
    _t(
        "doorlock/lock-api/app/settings.py",
        "t24_hex40",
        True,
        r"""
'''Mobile key service (BLE keys in the Orsolune app).'''

LOCK_VENDOR_BASE = "https://mobilekey.lock-vendor.net/api/v4"
LOCK_VENDOR_ACCOUNT = "orsolune-hotels"
LOCK_VENDOR_TOKEN = "{V}"
KEY_TTL_SECONDS = 3600 * 24
""",
    ),
    _t(
        "doorlock/lock-api/app/settings_prod.py",
        "t24_store_ref",
        False,
        r"""
from .secrets import fetch

LOCK_VENDOR_BASE = "https://mobilekey.lock-vendor.net/api/v4"
LOCK_VENDOR_ACCOUNT = "orsolune-hotels"
LOCK_VENDOR_TOKEN = fetch("{V}")
DATABASE_PASSWORD = fetch("{V2}")
""",
    ),
]

# ---------------------------------------------------------------------- call-centre telephony
TEMPLATES += [
    _t(
        "telephony/asterisk/pjsip.conf",
        "t24_pw",
        True,
        r"""
[transport-tls]
type=transport
protocol=tls
bind=0.0.0.0:5061

[vodafone-pt-trunk]
type=auth
auth_type=userpass
username=351210000123
password={V}

[agent-1001]
type=auth
auth_type=userpass
username=1001
password={V2}
""",
    ),
    _t(
        "telephony/asterisk/pjsip_wizard.conf.j2",
        "t24_tpl_ref",
        False,
        r"""
[trunk-{{ carrier }}]
type=wizard
sends_auth=yes
remote_hosts={{ sip_host }}
outbound_auth/username={{ sip_user }}
outbound_auth/password={V}
""",
    ),
    _t(
        "telephony/asterisk/manager.conf",
        "t24_weak_pw",
        True,
        r"""
[general]
enabled = yes
port = 5038
bindaddr = 10.80.0.10

[crm-popup]
secret = {V}
deny=0.0.0.0/0.0.0.0
permit=10.80.0.0/255.255.0.0
read = call,agent
write = originate
""",
    ),
    _t(
        "telephony/ivr/twilio_ivr.py",
        "t24_hex32",
        True,
        r"""
from twilio.rest import Client

ACCOUNT_SID = "AC6f1e0d9b8c7a6f5e4d3c2b1a0f9e8d7c"
AUTH_TOKEN = "{V}"

client = Client(ACCOUNT_SID, AUTH_TOKEN)


def callback(guest_phone: str, lang: str) -> str:
    call = client.calls.create(
        to=guest_phone,
        from_="+351211450900",
        url=f"https://ivr.orsolune.com/voice/{lang}/callback",
    )
    return call.sid
""",
    ),
    _t(
        "telephony/ivr/numbers.yaml",
        "t24_twilio_sid",
        False,
        r"""
# Twilio resources per market (identifiers only; the auth token is in Vault)
account_sid: {V}
numbers:
  pt: {V2}
  gr: {V3}
  tr: {V4}
messaging_service: {V5}
""",
    ),
    _t(
        "telephony/genesys/export_queues.py",
        "t24_client_secret",
        True,
        r"""
import PureCloudPlatformClientV2 as gc

gc.configuration.host = "https://api.mypurecloud.de"
api_client = gc.api_client.ApiClient().get_client_credentials_token(
    "7d3c1a9e-5b42-4f8e-a0c6-2e9d8b7f1a34",
    "{V}",
)
routing = gc.RoutingApi(api_client)
for q in routing.get_routing_queues(page_size=100).entities:
    print(q.id, q.name)
""",
    ),
    _t(
        "telephony/genesys/oauth-clients.md",
        "t24_uuid",
        False,
        r"""
# Genesys Cloud OAuth clients

| Name | Client ID | Grant | Owner |
|---|---|---|---|
| queue-export | `{V}` | client credentials | Contact-centre BI |
| wfm-sync | `{V2}` | client credentials | WFM team |
| crm-embed | `{V3}` | implicit | CRM |

Secrets are in Vault under `secret/telephony/genesys/<name>`; client ids are not secret.
""",
    ),
    _t(
        "telephony/sms/notify_guest.sh",
        "t24_pw",
        True,
        r"""
#!/usr/bin/env bash
# Send the pre-arrival SMS through the Turkish SMS gateway (Bodrum, Istanbul)
set -euo pipefail
phone="$1"; msg="$2"
curl -sS "https://sms-gw.ist.orsolune.net/api/send" \
  -u "orsolune_tr:{V}" \
  --data-urlencode "to=${phone}" \
  --data-urlencode "text=${msg}"
""",
    ),
    _t(
        "telephony/sms/notify_guest_v2.sh",
        "t24_shell_ref",
        False,
        r"""
#!/usr/bin/env bash
set -euo pipefail
phone="$1"; msg="$2"
SMS_PASS={V}
curl -sS "https://sms-gw.ist.orsolune.net/api/send" \
  -u "orsolune_tr:${SMS_PASS}" \
  --data-urlencode "to=${phone}" \
  --data-urlencode "text=${msg}"
""",
    ),
]

# ---------------------------------------------------------------------- data warehouse
TEMPLATES += [
    _t(
        "dwh/dbt/profiles.yml",
        "t24_pw",
        True,
        r"""
orsolune_dwh:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: orsolune-eu1
      user: DBT_PROD
      password: {V}
      role: TRANSFORMER
      warehouse: TRANSFORM_WH
      database: ANALYTICS
      schema: marts
      threads: 8
""",
    ),
    _t(
        "dwh/dbt/profiles.ci.yml",
        "t24_tpl_ref",
        False,
        r"""
orsolune_dwh:
  target: ci
  outputs:
    ci:
      type: snowflake
      account: orsolune-eu1
      user: DBT_CI
      password: "{V}"
      role: TRANSFORMER_CI
      database: ANALYTICS_CI
      schema: "pr_{{ env_var('PR_NUMBER') }}"
""",
    ),
    _t(
        "dwh/snowflake/keys/dbt_prod_rsa_key.p8",
        "t24_pkcs8_pem",
        True,
        r"""
{V}
""",
    ),
    _t(
        "dwh/snowflake/keys/dbt_prod_rsa_key.pub",
        "t24_public_pem",
        False,
        r"""
{V}
""",
    ),
    _t(
        "dwh/snowflake/setup/users.sql",
        "t24_long_pw",
        True,
        r"""
USE ROLE SECURITYADMIN;
CREATE USER IF NOT EXISTS LOOKER_SVC
  PASSWORD = '{V}'
  DEFAULT_ROLE = REPORTER
  DEFAULT_WAREHOUSE = BI_WH
  MUST_CHANGE_PASSWORD = FALSE;
CREATE USER IF NOT EXISTS FIVETRAN_SVC
  PASSWORD = '{V2}'
  DEFAULT_ROLE = LOADER;
""",
    ),
    _t(
        "dwh/snowflake/setup/users_keypair.sql",
        "t24_public_pem",
        False,
        r"""
-- key-pair auth for the service users; only the public half goes into Snowflake
ALTER USER DBT_PROD SET RSA_PUBLIC_KEY = '{V}';
""",
    ),
    _t(
        "dwh/bigquery/sa-dwh-loader.json",
        "t24_gcp_key",
        True,
        r"""
{
  "type": "service_account",
  "project_id": "orsolune-dwh",
  "private_key_id": "3c9f0e1a7b5d4c2e8f6a1b0d9c7e5f3a2b1c0d9e",
  "private_key": "{V}",
  "client_email": "dwh-loader@orsolune-dwh.iam.gserviceaccount.com",
  "client_id": "104729385716203948571",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
    ),
    _t(
        "dwh/airflow/dags/pms_to_snowflake.py",
        "t24_py_ref",
        False,
        r"""
from datetime import datetime

from airflow import DAG
from airflow.models import Variable
from airflow.providers.snowflake.operators.snowflake import SnowflakeOperator

SNOWFLAKE_PASSWORD = {V}

with DAG("pms_to_snowflake", start_date=datetime(2024, 1, 1), schedule="@hourly") as dag:
    load = SnowflakeOperator(
        task_id="load_reservations",
        snowflake_conn_id="snowflake_loader",
        sql="CALL RAW.LOAD_RESERVATIONS('{{ ds }}')",
    )
""",
    ),
    _t(
        "dwh/airflow/airflow.env",
        "t24_url_pw",
        True,
        r"""
AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:{V}@pg-airflow01.lis.orsolune.net/airflow
AIRFLOW__CELERY__BROKER_URL=redis://:{V2}@redis-airflow01.lis.orsolune.net:6379/0
AIRFLOW__WEBSERVER__EXPOSE_CONFIG=False
""",
    ),
    _t(
        "dwh/airflow/airflow.env.example",
        "t24_doc_uri",
        False,
        r"""
AIRFLOW__CORE__EXECUTOR=LocalExecutor
# format, from the Airflow docs:
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN={V}
""",
    ),
    _t(
        "dwh/notebooks/occupancy_forecast.ipynb",
        "t24_pw",
        True,
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Previsão de ocupação — Algarve, verão 2024"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import snowflake.connector\n",
    "conn = snowflake.connector.connect(\n",
    "    account='orsolune-eu1', user='ANA_RIBEIRO',\n",
    "    password='{V}', warehouse='ANALYST_WH')\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "dwh/notebooks/revpar_by_market.ipynb",
        "t24_py_ref",
        False,
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os, snowflake.connector\n",
    "conn = snowflake.connector.connect(\n",
    "    account='orsolune-eu1', user=os.environ['SNOWFLAKE_USER'],\n",
    "    password={V}, warehouse='ANALYST_WH')\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
]

# ---------------------------------------------------------------------- infrastructure
TEMPLATES += [
    _t(
        "infra/terraform/envs/prod/providers.tf",
        "t24_aws_ini",
        True,
        r"""
terraform {
  required_version = ">= 1.6"
  backend "s3" {
    bucket = "orsolune-tfstate"
    key    = "prod/terraform.tfstate"
    region = "eu-west-1"
  }
}

# TEMP: pasted from ~/.aws/credentials while SSO was broken (INFRA-771)
# [orsolune-prod]
# {V}

provider "aws" {
  region = "eu-west-1"
}
""",
    ),
    _t(
        "infra/terraform/modules/pms-db/main.tf",
        "t24_tf_ref",
        False,
        r"""
resource "aws_db_instance" "pms" {
  identifier          = "pms-${var.market}"
  engine              = "sqlserver-se"
  instance_class      = "db.m6i.xlarge"
  username            = "pms_admin"
  password            = {V}
  storage_encrypted   = true
  deletion_protection = true
}
""",
    ),
    _t(
        "infra/terraform/envs/th/terraform.tfvars",
        "t24_pw",
        True,
        r"""
market           = "th"
region           = "ap-southeast-1"
pms_db_password  = "{V}"
lock_db_password = "{V2}"
vpn_cidr         = "10.70.0.0/16"
""",
    ),
    _t(
        "infra/terraform/envs/th/terraform.tfvars.example",
        "t24_placeholder",
        False,
        r"""
market           = "th"
region           = "ap-southeast-1"
pms_db_password  = "{V}"
lock_db_password = "{V2}"
""",
    ),
    _t(
        "infra/terraform/envs/prod/.terraform.lock.hcl",
        "t24_h1_hash",
        False,
        r"""
provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.49.0"
  constraints = "~> 5.40"
  hashes = [
    "{V}",
    "{V2}",
  ]
}
""",
    ),
    _t(
        "infra/ansible/group_vars/property_servers/vault.yml",
        "t24_ansible_vault",
        False,
        r"""
{V}
""",
    ),
    _t(
        "infra/ansible/group_vars/property_servers/vars.yml",
        "t24_radius_secret",
        True,
        r"""
radius_sites:
  - code: LISALF
    cidr: 10.21.0.0/24
  - code: ATHPLK
    cidr: 10.41.0.0/24
radius_shared_secret: "{V}"
lockbridge_user: svc-lockbridge
""",
    ),
    _t(
        "infra/ansible/group_vars/property_servers/vars.prod.yml",
        "t24_tpl_ref",
        False,
        r"""
radius_shared_secret: "{V}"
lockbridge_user: svc-lockbridge
lockbridge_password: "{V2}"
""",
    ),
    _t(
        "infra/ansible/roles/lockbridge/tasks/main.yml",
        "t24_pw",
        True,
        r"""
- name: Create the lockbridge service account
  ansible.windows.win_user:
    name: svc-lockbridge
    password: "{V}"
    password_never_expires: true
    groups: [Users]

- name: Install LockBridge
  ansible.windows.win_package:
    path: \\fs01.orsolune.net\installs\LockBridge-3.4.1.msi
    state: present
""",
    ),
    _t(
        "infra/systemd/channel-connector.service",
        "t24_pw",
        True,
        r"""
[Unit]
Description=Orsolune channel connector
After=network-online.target

[Service]
User=chmgr
Environment=CM_DB_USER=cm_app
Environment=CM_DB_PASSWORD={V}
ExecStart=/opt/channel-connector/bin/connector --config /etc/orsolune/cm.yaml
Restart=always

[Install]
WantedBy=multi-user.target
""",
    ),
    _t(
        "infra/systemd/booking-worker.service",
        "t24_secret_path",
        False,
        r"""
[Unit]
Description=Orsolune booking worker

[Service]
User=booking
LoadCredential=db-password:{V}
Environment=DB_PASSWORD_FILE=%d/db-password
ExecStart=/opt/booking/bin/worker
""",
    ),
    _t(
        "infra/nginx/extranet.conf",
        "t24_basic_b64",
        True,
        r"""
server {
    listen 443 ssl;
    server_name extranet.orsolune.travel;

    location /partner-api/ {
        proxy_pass https://10.40.3.12:8443/;
        # upstream expects the channel manager's service login
        proxy_set_header Authorization "Basic {V}";
    }
}
""",
    ),
    _t(
        "infra/nginx/htpasswd.extranet",
        "t24_apr1",
        False,
        r"""
marta.silva:{V}
eleni.pappa:{V2}
kaan.yilmaz:{V3}
""",
    ),
    _t(
        "infra/nginx/tls/extranet.orsolune.travel.crt",
        "t24_cert",
        False,
        r"""
{V}
""",
    ),
    _t(
        "infra/nginx/tls/extranet.orsolune.travel.key",
        "t24_rsa_pem",
        True,
        r"""
{V}
""",
    ),
    _t(
        "infra/ssh/deploy_ed25519",
        "t24_openssh",
        True,
        r"""
{V}
""",
    ),
    _t(
        "infra/ssh/authorized_keys",
        "t24_ssh_pub",
        False,
        r"""
{V}
{V2}
{V3}
""",
    ),
    _t(
        "infra/vpn/property-gw-ist.yaml",
        "t24_ec_pem",
        True,
        r"""
# strongSwan gateway, Istanbul office <-> eu-west-1
gateway:
  name: ist-gw01
  remote: vpn.eu-west-1.orsolune.net
  local_id: ist-gw01.orsolune.net
  private_key: |
    {IV}
""",
    ),
    _t(
        "infra/sops/.sops.yaml",
        "t24_age_public",
        False,
        r"""
creation_rules:
  - path_regex: envs/prod/.*\.enc\.yaml$
    age: {V}
  - path_regex: envs/th/.*\.enc\.yaml$
    age: {V2}
""",
    ),
    _t(
        "infra/sops/keys/ci.agekey",
        "t24_age",
        True,
        r"""
# created: 2024-03-02T10:14:55Z
# public key: see .sops.yaml (ci)
{V}
""",
    ),
]

# ---------------------------------------------------------------------- CI and deploy scripts
TEMPLATES += [
    _t(
        ".github/workflows/booking-engine-deploy.yml",
        "t24_github",
        True,
        r"""
name: booking-engine deploy
on:
  push:
    branches: [main]
jobs:
  image:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: Log in to GHCR
        run: echo "{V}" | docker login ghcr.io -u orsolune-bot --password-stdin
      - run: docker build -t ghcr.io/orsolune/booking-engine:${{ github.sha }} .
      - run: docker push ghcr.io/orsolune/booking-engine:${{ github.sha }}
""",
    ),
    _t(
        ".github/workflows/pms-bridge-ci.yml",
        "t24_git_sha",
        False,
        r"""
name: pms-bridge ci
on: [pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@{V}  # v4.1.6
      - uses: actions/setup-java@{V2}  # v4.2.1
        with:
          distribution: temurin
          java-version: "21"
      - run: ./gradlew test
        env:
          NEXUS_PASSWORD: ${{ secrets.NEXUS_PASSWORD }}
""",
    ),
    _t(
        ".github/workflows/ops-notify.yml",
        "t24_teams_webhook",
        True,
        r"""
name: notify property IT
on:
  workflow_run:
    workflows: ["booking-engine deploy"]
    types: [completed]
jobs:
  teams:
    runs-on: ubuntu-latest
    steps:
      - run: |
          curl -sS -H 'Content-Type: application/json' \
            -d '{"text": "booking-engine deployed: ${{ github.event.workflow_run.conclusion }}"}' \
            '{V}'
""",
    ),
    _t(
        ".gitlab-ci.yml",
        "t24_gitlab",
        True,
        r"""
stages: [test, package, mirror]

variables:
  GIT_DEPTH: "10"
  MIRROR_TOKEN: "{V}"

mirror-to-github:
  stage: mirror
  image: alpine/git
  script:
    - git push --mirror "https://oauth2:${MIRROR_TOKEN}@gitlab.orsolune.net/platform/channel-connector.git"
  only: [main]
""",
    ),
    _t(
        "dwh/.gitlab-ci.yml",
        "t24_ci_ref",
        False,
        r"""
stages: [build, deploy]

build-dbt-image:
  stage: build
  image: docker:24
  script:
    - echo "{V}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
    - docker build -t "$CI_REGISTRY_IMAGE/dbt:$CI_COMMIT_SHORT_SHA" .
    - docker push "$CI_REGISTRY_IMAGE/dbt:$CI_COMMIT_SHORT_SHA"
""",
    ),
    _t(
        "pms-bridge/Jenkinsfile",
        "t24_slack_webhook",
        True,
        r"""
pipeline {
    agent { label 'linux' }
    stages {
        stage('Build') {
            steps { sh './gradlew build' }
        }
    }
    post {
        failure {
            sh '''curl -X POST -H 'Content-type: application/json' \
              --data '{"text":"pms-bridge build failed: ${BUILD_URL}"}' \
              {V}'''
        }
    }
}
""",
    ),
    _t(
        "night-audit/Jenkinsfile",
        "t24_ci_ref",
        False,
        r"""
pipeline {
    agent any
    environment {
        NEXUS = {V}
    }
    stages {
        stage('Publish') {
            steps {
                sh 'mvn -B deploy -Dnexus.user=$NEXUS_USR -Dnexus.password=$NEXUS_PSW'
            }
        }
    }
}
""",
    ),
    _t(
        "pms-sync/azure-pipelines.yml",
        "t24_azure_client_secret",
        True,
        r"""
trigger: [main]
pool:
  vmImage: ubuntu-latest
steps:
  - script: |
      az login --service-principal \
        -u 5f0c2d7e-9a1b-4c3e-8d6f-1a2b3c4d5e6f \
        -p '{V}' \
        --tenant 0b7e6d5c-4a3b-4c2d-9e1f-0a9b8c7d6e5f
      az webapp deploy --resource-group rg-pms-sync --name pms-sync-prod --src-path out.zip
    displayName: Deploy pms-sync
""",
    ),
    _t(
        "doorlock/lock-api/azure-pipelines.yml",
        "t24_ci_ref",
        False,
        r"""
trigger: [main]
variables:
  - group: lock-api-prod
steps:
  - script: docker login orsolune.azurecr.io -u orsolune -p {V}
    displayName: ACR login
  - script: docker push orsolune.azurecr.io/lock-api:$(Build.BuildId)
""",
    ),
    _t(
        "infra/scripts/deploy-booking.sh",
        "t24_vault",
        True,
        r"""
#!/usr/bin/env bash
# deploy booking-engine to the EKS cluster, pulling secrets from Vault first
set -euo pipefail
export VAULT_ADDR=https://vault.orsolune.net
export VAULT_TOKEN={V}
db_pw=$(vault kv get -field=password secret/booking/db)
helm upgrade --install booking-engine ./deploy/helm \
  -f deploy/helm/values-prod.yaml \
  --set postgresql.auth.password="$db_pw"
""",
    ),
    _t(
        "infra/scripts/helm-upgrade-cm.sh",
        "t24_pw",
        True,
        r"""
#!/usr/bin/env bash
set -euo pipefail
helm upgrade --install channel-connector ./charts/channel-connector \
  --namespace channel \
  --set db.user=cm_app \
  --set db.password='{V}' \
  --set image.tag="${1:-latest}"
""",
    ),
    _t(
        "infra/scripts/backup-lockdb.ps1",
        "t24_azure_storage_key",
        True,
        r"""
# nightly backup of the Visionline database to Azure blob storage (ISTBOS)
$conn = "DefaultEndpointsProtocol=https;AccountName=orsolunebackups;AccountKey={V};EndpointSuffix=core.windows.net"
$ctx = New-AzStorageContext -ConnectionString $conn
$file = "D:\Backups\VISIONLINE_$(Get-Date -Format yyyyMMdd).bak"
Invoke-Sqlcmd -Query "BACKUP DATABASE VISIONLINE TO DISK = N'$file'" -ServerInstance "sql-lock01"
Set-AzStorageBlobContent -File $file -Container "lockdb" -Context $ctx
""",
    ),
    _t(
        "infra/scripts/upload-folios.env",
        "t24_aws_env",
        True,
        r"""
# used by the folio archiver on pms-util01 (Faro)
{V}
AWS_DEFAULT_REGION=eu-west-1
FOLIO_BUCKET=orsolune-folios-pt
""",
    ),
]

# ---------------------------------------------------------------------- docs, tickets, chat
TEMPLATES += [
    _t(
        "docs/runbooks/pt/pms-contingencia.md",
        "t24_pw",
        True,
        r"""
# Contingência do PMS — hotéis de Lisboa

Se o OPERA ficar indisponível durante o check-in:

1. Abrir o modo de contingência no posto `LISALF-FO01`.
2. Entrar com o utilizador de emergência `opera_sup` e a palavra-passe `{V}`.
3. Imprimir a lista de chegadas (relatório `arrivals_detailed`).
4. Avisar o duty manager e abrir ticket no Jira (projeto PMS).

> Depois de repor o serviço, mudar a palavra-passe e registar no cofre.
""",
    ),
    _t(
        "docs/runbooks/pt/wifi-hospedes.md",
        "t24_redacted",
        False,
        r"""
# Wi-Fi dos hóspedes e do pessoal

| Rede | Segurança | Palavra-passe |
|---|---|---|
| Orsolune Guest | portal cativo | (sem palavra-passe) |
| ORSOLUNE-STAFF-LIS | WPA2-PSK | `{V}` |
| ORS-POS | WPA2-PSK | `{V2}` |

As palavras-passe reais estão no cofre "Property-IT"; esta página não as mostra.
""",
    ),
    _t(
        "docs/wiki/el/santorini-it.md",
        "t24_wpa_psk",
        True,
        r"""
# Santorini (JTRORS) — σημειώσεις IT

* Δίκτυο προσωπικού: `ORSOLUNE-STAFF-JTR`
* Κωδικός Wi-Fi προσωπικού: `{V}`
* Ο διακομιστής κλειδαριών βρίσκεται στο γραφείο της ρεσεψιόν (LOCK-JTR01).
* Για βλάβες καλέστε τον Γιώργο (εσωτ. 4410).
""",
    ),
    _t(
        "docs/wiki/el/kodikoi-prosvasis.md",
        "t24_i18n_el",
        False,
        r"""
# Μηνύματα σύνδεσης της εφαρμογής

Τα μηνύματα που βλέπει ο επισκέπτης στην ελληνική έκδοση:

* `auth.password.hint` — «{V}»
* `auth.password.invalid` — «{V2}»
* `auth.password.forgot` — «{V3}»
""",
    ),
    _t(
        "docs/tickets/PMS-2291.md",
        "t24_pw",
        True,
        r"""
**PMS-2291** — Bodrum: gece denetimi (night audit) başarısız
Reporter: Kaan Yılmaz · Priority: High · Property: BJVORS

Merhaba, gece denetimi 02:30'da durdu. Sunucuya uzaktan bağlanmak için:
Kullanıcı: `bjv_fo_admin`
Şifre: `{V}`
Sabah vardiyasından önce çözülmesi lazım. Teşekkürler.
""",
    ),
    _t(
        "docs/tickets/PMS-2304.md",
        "t24_store_ref",
        False,
        r"""
**PMS-2304** — Rotate the Bodrum front-office admin password
Reporter: security@orsolune.com · Priority: High · Property: BJVORS

The password pasted in PMS-2291 was rotated. The new one is stored at `{V}`;
do not paste credentials into tickets again. Ask in #property-it for access.
""",
    ),
    _t(
        "docs/chat/property-it-th.json",
        "t24_pw",
        True,
        r"""
[
  {"ts": "1714540812.000100", "user": "U04SOMCHAI", "text": "ใครมีรหัสผ่าน VPN ของ Chiang Mai บ้างครับ"},
  {"ts": "1714540901.000200", "user": "U02NATTAYA", "text": "ผู้ใช้ cnx_it รหัสผ่าน {V} นะคะ อย่าแชร์ต่อ"},
  {"ts": "1714540955.000300", "user": "U04SOMCHAI", "text": "ขอบคุณครับ เข้าได้แล้ว"}
]
""",
    ),
    _t(
        "docs/chat/ops-alerts-export.txt",
        "t24_telegram",
        True,
        r"""
[2024-05-02 08:14] tiago.ferreira: the housekeeping bot for Lagoa is live
[2024-05-02 08:15] tiago.ferreira: token if anyone needs to redeploy: {V}
[2024-05-02 08:17] marta.silva: please move that to Vault 🙏
""",
    ),
    _t(
        "docs/runbooks/en/incident-2024-04-card-testing.md",
        "t24_booking_ref",
        False,
        r"""
# Incident: card-testing on the booking engine (April 2024)

Timeline (UTC):
* 02:10 Riskscore flags a burst of declines from a single ASN.
* 02:25 Affected bookings: `{V}`, `{V2}`, `{V3}` (cancelled, no stay).
* 03:00 Rate limit on `/api/v3/payments` lowered to 5/min per IP.

No credentials were exposed. Follow-up: OPS-3412.
""",
    ),
    _t(
        "docs/onboarding/en/api-auth.md",
        "t24_key_word",
        False,
        r"""
# Calling the Orsolune partner API

Request a token with the OAuth2 client-credentials grant. The form fields are:

| Field | Value |
|---|---|
| `grant_type` | `client_credentials` |
| `client_id` | your partner id |
| `{V}` | issued by the partner team, never by e-mail |

The response field `access_token` is valid for one hour.
""",
    ),
    _t(
        "docs/onboarding/tr/cagri-merkezi.md",
        "t24_weak_pw",
        True,
        r"""
# Çağrı merkezi — yeni temsilci kurulumu (İstanbul)

1. Softphone'u aç, sunucu `pbx.ist.orsolune.net`.
2. Dahili numara: 2xxx (ekip liderinden al).
3. İlk giriş için ortak şifre: `{V}` — ilk girişte değiştirmeyi unutma.
4. CRM açılır pencere otomatik gelir.
""",
    ),
    _t(
        "docs/onboarding/tr/mesajlar.po",
        "t24_i18n_tr",
        False,
        r"""
msgid ""
msgstr ""
"Language: tr\n"
"Content-Type: text/plain; charset=UTF-8\n"

msgid "auth.password.forgot"
msgstr "{V}"

msgid "auth.password.too_short"
msgstr "{V2}"
""",
    ),
    _t(
        "docs/concierge-bot/README.md",
        "t24_openai",
        True,
        r"""
# Concierge bot (pilot, Santorini and Patong)

Answers guest questions in the app chat (EN/EL/TH). Quick start on the dev box:

```bash
export OPENAI_API_KEY={V}
python -m concierge.serve --property JTRORS --lang el
```

The key above is the pilot's project key; billing goes to cost centre 4410.
""",
    ),
    _t(
        "docs/concierge-bot/SETUP.md",
        "t24_placeholder",
        False,
        r"""
# Concierge bot setup

```bash
export OPENAI_API_KEY={V}
export CONCIERGE_DB_PASSWORD={V2}
python -m concierge.serve --property <CODE>
```
""",
    ),
    _t(
        "housekeeping/notifier/notify.js",
        "t24_discord_webhook",
        True,
        r"""
// Posts room-ready events to the housekeeping Discord used by the Lagoa team
const fetch = require('node-fetch');

const WEBHOOK = '{V}';

async function roomReady(room, attendant) {
  await fetch(WEBHOOK, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ content: `Quarto ${room} pronto (${attendant})` }),
  });
}

module.exports = { roomReady };
""",
    ),
    _t(
        "housekeeping/notifier/README.md",
        "t24_doc_example",
        False,
        r"""
# housekeeping notifier

Set `WEBHOOK_URL` in the environment. Example from the vendor's docs (does not work):

    WEBHOOK_URL={V}

Never commit the real URL; it is in Vault at `secret/housekeeping/webhook`.
""",
    ),
    _t(
        "housekeeping/ops-bot/bot.py",
        "t24_slack_bot",
        True,
        r"""
from slack_bolt import App

app = App(
    token="{V}",
    signing_secret=__import__("os").environ["SLACK_SIGNING_SECRET"],
)


@app.command("/quarto")
def room_status(ack, command, say):
    ack()
    say(f"A verificar o quarto {command['text']}…")


if __name__ == "__main__":
    app.start(port=3000)
""",
    ),
    _t(
        "housekeeping/ops-bot/test_bot.py",
        "t24_fake",
        False,
        r"""
from unittest import mock

import bot


def test_room_status_acks():
    ack, say = mock.Mock(), mock.Mock()
    with mock.patch.dict("os.environ", {"SLACK_SIGNING_SECRET": "{V}"}):
        bot.room_status(ack, {"text": "214"}, say)
    ack.assert_called_once()
""",
    ),
    _t(
        "marketing/mailer/Mailer.php",
        "t24_mailgun",
        True,
        r"""
<?php
namespace Orsolune\Marketing;

use Mailgun\Mailgun;

final class Mailer
{
    private Mailgun $mg;

    public function __construct()
    {
        $this->mg = Mailgun::create(getenv('MAILGUN_KEY') ?: '{V}', 'https://api.eu.mailgun.net');
    }

    public function send(string $to, string $subject, string $html): void
    {
        $this->mg->messages()->send('mg.orsolune.travel', [
            'from' => 'Orsolune <ofertas@mg.orsolune.travel>',
            'to' => $to, 'subject' => $subject, 'html' => $html,
        ]);
    }
}
""",
    ),
    _t(
        "docs/security/certificates.md",
        "t24_cert",
        False,
        r"""
# Pinned certificates for the lock-vendor bridge

The mobile-key SDK pins the following self-signed certificate (public, safe to share):

```
{V}
```
""",
    ),
    _t(
        "docs/security/sso-users.csv",
        "t24_argon2",
        False,
        r"""
login,display_name,password_hash,mfa
marta.silva,Marta Silva,{V},totp
eleni.pappa,Eleni Pappa,{V2},webauthn
somchai.k,Somchai K.,{V3},totp
""",
    ),
    _t(
        "docs/security/kms-wrapped.yaml",
        "t24_kms_blob",
        False,
        r"""
# data keys wrapped by AWS KMS (alias/pms-fields); decrypt only inside the VPC
pms_guest_pii_dek: {V}
loyalty_export_dek: {V2}
""",
    ),
]
