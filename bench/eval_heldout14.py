"""Blind part ``heldout14``: Sunmere Foods, a fictional food producer and grocery retailer
(three factories, a central distribution centre and about 400 supermarkets in France, the
Netherlands and Sweden), with its suppliers, payment providers and integration partners.
Written blind (without seeing the scanner, its rules, its output or other parts' templates)
and held out: it is never tuned on, only its totals are reported.

Files are ERP and EDI code and config (SAP-adjacent ABAP snippets, Java JCo and IDoc bridges,
OpenAS2 and Mendelson AS2 partner configs, EDIFACT samples, SFTP supplier drops), the stores'
point-of-sale and back-office (C#/.NET appsettings and web.config, SQL Server logins and
agent jobs, store-server PowerShell and batch), the e-commerce site and loyalty app
(PHP/Symfony ``.env`` and ``services.yaml``, Node, React Native, Kotlin/Android Gradle, Swift),
factory OT (PLC gateways, OPC UA clients, Mosquitto, Node-RED ``settings.js`` and flows,
Telegraf, Grafana provisioning, InfluxDB), cold-chain IoT sensors (C firmware headers with
LoRaWAN keys, The Things Stack clients, Python uplink decoders), analytics (dbt profiles,
BigQuery service accounts, Looker ``looker.ini`` and LookML, Jupyter notebooks),
infrastructure on GCP and on-prem (Terraform, Ansible, Kubernetes, Helm values, Nginx),
CI (GitHub Actions, Jenkins, TeamCity Kotlin DSL and build parameters), and docs, runbooks,
tickets and chat exports in English, French, Dutch and Swedish.

Credentials (positive) are passwords of every strength (dictionary words, vendor defaults on
real hosts, Dutch/French/Swedish seasonal passwords, long random ones), service tokens in their
real formats (GitHub with CRC32 check, Slack, Teams and Slack webhooks, TeamCity, Jenkins,
NuGet, npm, GCP API keys and OAuth client secrets, InfluxDB, Grafana, The Things Stack,
Adyen, Mollie, Klarna, FCM, SendGrid, Algolia admin keys, dbt Cloud, Looker, Vault), LoRaWAN
AppKeys and session keys (hex strings and C byte arrays), private keys with real DER structure
(RSA PKCS#1 and PKCS#8 from seeded primes, P-256 SEC1 and APNs ``.p8`` keys, unencrypted
OpenSSH ed25519 keys built by hand), URI credentials, Basic-auth strings, and credentials in
prose, CLI arguments, tests, comments and ``${VAR:-x}`` / ``getenv("X", "x")`` defaults.

Look-alikes (negative) sit in the same kinds of files under the same key names: references to
environment variables and secret stores in every language and tool (TeamCity
``credentialsJSON:``, Symfony ``%env()%``, Helm, Ansible, Terraform, GitHub/Jenkins secrets),
placeholders (Symfony's ``!ChangeMe!``, localised ``<wachtwoord>``), redactions, hashes
(bcrypt, argon2, apr1, SQL Server ``0x0200``, Mosquitto ``$7$``), values encrypted at rest
(Ansible Vault, SOPS, sealed secrets, Jasypt, DPAPI blobs, Node-RED ``flows_cred.json``,
Jenkins ``{AQAAAB...}``, passphrase-protected OpenSSH keys), public material (real X.509
certificates, public keys, SSH public keys, host-key fingerprints, Adyen client keys, Algolia
search-only keys, APNs key ids), identifiers shaped like secrets (GLNs and GTINs with check
digits, LoRaWAN DevEUIs and JoinEUIs, EDI control numbers, UUIDs, commit hashes, image
digests, GCP numeric ids and ``private_key_id`` values), UI and i18n text about passwords in
four languages, documented example credentials on documentation hosts, role-word pairs and
test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import struct
import uuid
import zlib

import evalset

try:  # real DER structure when available; the fallback keeps the part buildable without it
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    HAVE_CRYPTO = True
except ImportError:  # pragma: no cover
    HAVE_CRYPTO = False

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B32 = string.ascii_uppercase + "234567"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
B64 = ALNUM + "+/"
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%*-_=+.@$"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1))]


def _wrap(body: str, width: int = 64) -> list[str]:
    return [body[i : i + width] for i in range(0, len(body), width)]


def _armor(label: str, der: bytes, width: int = 64) -> str:
    rows = _wrap(base64.b64encode(der).decode(), width)
    return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _check_digit_gs1(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return str((10 - total % 10) % 10)


class Heldout14Values(evalset.Values):
    """Value generators of the heldout14 part; every slot generator's name starts with ``h14_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "brioche",
            "gouda",
            "kanelbulle",
            "stroopwafel",
            "fika",
            "crouton",
            "rutabaga",
            "cloudberry",
            "pumpernickel",
            "mackerel",
            "endive",
            "sorrel",
            "quince",
            "barley",
            "hjortron",
            "raclette",
        ]
        self.users = [
            "pos_sync",
            "edi_in",
            "erp_rfc",
            "loyalty_api",
            "coldchain",
            "dbt_runner",
            "store_admin",
            "looker_svc",
            "ot_gateway",
            "webshop",
        ]
        self._ca_key: object | None = None

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
        for p in SMALL_PRIMES:
            if n % p == 0:
                return n == p
        d, s = n - 1, 0
        while d % 2 == 0:
            d //= 2
            s += 1
        for _ in range(8):
            a = self.rng.randrange(2, n - 2)
            x = pow(a, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
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

    def _rsa(self, bits: int = 2048) -> object:
        e = 65537
        while True:
            p, q = self._prime(bits // 2), self._prime(bits // 2)
            if p != q:
                break
        if p < q:
            p, q = q, p
        n = p * q
        d = pow(e, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, n)
        )
        return numbers.private_key()

    def _ec(self) -> object:
        return ec.derive_private_key(self.rng.randrange(1, P256_ORDER), ec.SECP256R1())

    def _pem_of(self, key: object, fmt: str) -> str:
        formats = {
            "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
            "pkcs8": serialization.PrivateFormat.PKCS8,
        }
        return (
            key.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM, formats[fmt], serialization.NoEncryption()
            )
            .decode()
            .strip()
        )

    def _ed25519_pair(self) -> tuple[bytes, bytes]:
        seed = self.rng.randbytes(32)
        if HAVE_CRYPTO:
            pub = (
                ed25519.Ed25519PrivateKey.from_private_bytes(seed)
                .public_key()
                .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            )
        else:  # pragma: no cover
            pub = hashlib.sha256(seed).digest()
        return seed, pub

    def _openssh(self, encrypted: bool) -> str:
        seed, pub = self._ed25519_pair()
        comment = f"{self.pick(self.users)}@{self.pick(['stsrv', 'edigw', 'jenkins', 'ot-gw'])}"
        pub_blob = _ssh_string(b"ssh-ed25519") + _ssh_string(pub)
        check = self.rng.randbytes(4)
        private = (
            check
            + check
            + _ssh_string(b"ssh-ed25519")
            + _ssh_string(pub)
            + _ssh_string(seed + pub)
            + _ssh_string(comment.encode())
        )
        pad = 1
        while len(private) % (16 if encrypted else 8):
            private += bytes([pad])
            pad += 1
        if encrypted:
            kdf = _ssh_string(self.rng.randbytes(16)) + struct.pack(">I", 16)
            head = (
                b"openssh-key-v1\x00"
                + _ssh_string(b"aes256-ctr")
                + _ssh_string(b"bcrypt")
                + _ssh_string(kdf)
            )
            private = self.rng.randbytes(len(private))  # ciphertext
        else:
            head = (
                b"openssh-key-v1\x00"
                + _ssh_string(b"none")
                + _ssh_string(b"none")
                + _ssh_string(b"")
            )
        blob = head + struct.pack(">I", 1) + _ssh_string(pub_blob) + _ssh_string(private)
        return _armor("OPENSSH PRIVATE KEY", blob, 70)

    def _cert_pem(self) -> str:
        if not HAVE_CRYPTO:  # pragma: no cover
            return self.certificate()
        import datetime

        if self._ca_key is None:
            self._ca_key = self._rsa(2048)
        subject_key = self._ec()
        cn = self.pick(
            [
                "as2.sunmere-foods.eu",
                "edi.sunmere.fr",
                "opcua-gw-03.factory.sunmere.local",
                "as2.fresco-partners.nl",
                "b2b.nordkyl.se",
                "mqtt.coldchain.sunmere.eu",
            ]
        )
        issuer = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sunmere Foods SAS"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Sunmere Internal Issuing CA 2"),
            ]
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sunmere Foods SAS"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        start = datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            days=self.rng.randrange(900)
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(subject_key.public_key())  # type: ignore[attr-defined]
            .serial_number(self.rng.getrandbits(120) | 1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=730))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(self._ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().strip()

    # ================================================================== positives: passwords
    def h14_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Sm" + self.s(11, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(20, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    def h14_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "admin123",
                    "Welkom01",
                    "Welkom2024!",
                    "Bienvenue1",
                    "Soleil123",
                    "kassa123",
                    "winkel01",
                    "magasin1",
                    "Password1!",
                    "Sunmere1",
                    "qwerty123",
                    "P@ssw0rd",
                    "letmein",
                    "fromage",
                    "Azerty123",
                ]
            )
        if shape == 1:
            return "Sunmere" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "*"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["", "1", "123", "2024", "!"])
        if shape == 3:
            season = self.pick(
                ["Sommar", "Vinter", "Zomer", "Winter", "Printemps", "Hiver", "Ete", "Herfst"]
            )
            return season + str(self.rng.randrange(2019, 2026)) + self.pick(["", "!"])
        return "Store" + self.s(4, DIGITS)

    def h14_vendor_default(self) -> str:
        return self.pick(
            [
                "guest",
                "admin",
                "prom-operator",
                "s3cret",
                "tomcat",
                "06071992",
                "19920706",
                "manager",
                "private",
                "1234",
                "password",
                "root",
                "raspberry",
                "Administrator",
                "masterkey",
            ]
        )

    def h14_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def h14_sap_pw(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "Init" + self.s(4, DIGITS) + self.pick(["!", "$", "#"])
        if shape == 1:
            return self.s(1, string.ascii_uppercase) + self.s(9, ALNUM) + self.s(1, "!$%#")
        return self.pick(self.words).upper()[:6] + self.s(2, DIGITS)

    def h14_sql_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.h14_weak_pw()
        return self.s(1, string.ascii_uppercase) + self.s(
            self.rng.randrange(11, 19), ALNUM + "!#%*+"
        )

    def h14_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(24, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(2, DIGITS)

    def h14_passphrase(self) -> str:
        words = [self.pick(self.words) for _ in range(4)]
        return " ".join(words) if self.rng.randrange(2) else "-".join(words)

    def h14_b64_pw(self) -> str:
        return base64.b64encode(self.h14_pw().encode()).decode()

    def h14_basic_b64(self) -> str:
        user = self.pick([*self.users, "sunmere-ci", "svc-edi"])
        return base64.b64encode(f"{user}:{self.h14_pw()}".encode()).decode()

    def h14_any_pw(self) -> str:
        roll = self.rng.randrange(4)
        if roll == 0:
            return self.h14_weak_pw()
        if roll == 1:
            return self.h14_vendor_default()
        return self.h14_pw()

    # ================================================================== positives: tokens
    def h14_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "ghp", "gho", "ghs"]))

    def h14_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h14_npm(self) -> str:
        return self._crc_token("npm")

    def h14_nuget(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def h14_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def h14_teamcity_token(self) -> str:
        ident = base64.b64encode(self.s(27, ALNUM).encode()).decode().rstrip("=")
        ref = base64.b64encode(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).encode())
        return "eyJ0eXAiOiAiVENWMiJ9." + ident + "." + ref.decode().rstrip("=")

    def h14_gcp_api_key(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h14_gcp_oauth_secret(self) -> str:
        return "GOCSPX-" + self.s(28, URLSAFE)

    def h14_gcp_sa_key(self) -> str:
        """A service account's ``private_key`` as it sits in the JSON key file (escaped)."""
        pem = self._pem_of(self._rsa(2048), "pkcs8") if HAVE_CRYPTO else self.pem("PRIVATE KEY", 26)
        return pem.replace("\n", "\\n") + "\\n"

    def h14_gcp_sa_key_nb(self) -> str:
        """The same key typed into a notebook cell's Python source (escaped once more)."""
        return self.h14_gcp_sa_key().replace("\\n", "\\\\n")

    def h14_looker_secret(self) -> str:
        return self.s(24, ALNUM)

    def h14_dbt_token(self) -> str:
        return "dbtc_" + self.s(43, URLSAFE)

    def h14_slack_token(self) -> str:
        if self.rng.randrange(3) == 0:
            return f"xoxp-{self.s(12, DIGITS)}-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(32, HEX)}"
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h14_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h14_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://sunmerefoods.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}/V2{self.s(44, URLSAFE)}"
        )

    def h14_influx_token(self) -> str:
        return self._b64(64, urlsafe=True)

    def h14_grafana_key(self) -> str:
        if self.rng.randrange(2):
            return f"glsa_{self.s(32, ALNUM)}_{self.s(8, HEX)}"
        body = {"k": self.s(32, ALNUM), "n": self.pick(["provisioner", "ci", "alerts"]), "id": 1}
        return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()

    def h14_ttn_key(self) -> str:
        return f"NNSXS.{self.s(39, B32)}.{self.s(52, B32)}"

    def h14_lora_key(self) -> str:
        return self.s(32, HEXU)

    def h14_lora_bytes(self) -> str:
        raw = self.rng.randbytes(16)
        return ", ".join(f"0x{b:02X}" for b in raw)

    def h14_nodered_secret(self) -> str:
        return self.pick([self.s(32, ALNUM), self.h14_passphrase(), self.s(64, HEX)])

    def h14_adyen_key(self) -> str:
        return (
            "AQE"
            + self.s(3, ALNUM)
            + "hmfx"
            + self.s(58, B64)
            + "==-"
            + self._b64(32)
            + "-"
            + self.s(16, ALNUM + "@#%^()[]")
        )

    def h14_adyen_hmac(self) -> str:
        return self.s(64, HEXU)

    def h14_mollie_key(self) -> str:
        return "live_" + self.s(30, ALNUM)

    def h14_klarna_secret(self) -> str:
        return self.s(16, ALNUM)

    def h14_fcm_key(self) -> str:
        return "AAAA" + self.s(7, URLSAFE) + ":APA91b" + self.s(134, URLSAFE)

    def h14_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h14_algolia_admin(self) -> str:
        return self.s(32, HEX)

    def h14_app_secret(self) -> str:
        return self.s(32, HEX)

    def h14_hex64(self) -> str:
        return self.s(64, HEX)

    def h14_vault_token(self) -> str:
        return (
            "hvs." + self.s(24, ALNUM)
            if self.rng.randrange(2)
            else "hvs.CAESI" + self.s(90, URLSAFE)
        )

    def h14_sentry_token(self) -> str:
        return "sntryu_" + self.s(64, HEX)

    def h14_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": "RS256", "typ": "JWT", "kid": self.s(8, HEX)})
        payload = part(
            {
                "iss": "https://auth.sunmere.eu",
                "sub": self.pick(self.users),
                "aud": "loyalty-api",
                "exp": 1790000000 + self.rng.randrange(10**7),
                "scope": "members:read members:write",
            }
        )
        return f"{header}.{payload}.{self._b64(256, urlsafe=True, pad=False)}"

    def h14_api_key(self) -> str:
        return self.pick([self.s(32, ALNUM), self.s(40, HEX), "smk_live_" + self.s(32, ALNUM)])

    # ================================================================== positives: keys
    def h14_rsa_key(self) -> str:
        if not HAVE_CRYPTO:  # pragma: no cover
            return self.pem("RSA PRIVATE KEY", 25)
        return self._pem_of(self._rsa(self.pick([2048, 2048, 1024])), "pkcs1")

    def h14_pkcs8_key(self) -> str:
        if not HAVE_CRYPTO:  # pragma: no cover
            return self.pem("PRIVATE KEY", 4)
        return self._pem_of(self._ec(), "pkcs8")

    def h14_ec_key(self) -> str:
        if not HAVE_CRYPTO:  # pragma: no cover
            return self.pem("EC PRIVATE KEY", 3)
        return self._pem_of(self._ec(), "pkcs1")

    def h14_openssh_key(self) -> str:
        return self._openssh(encrypted=False)

    # ================================================================== negatives: references
    def h14_ref_sh(self) -> str:
        name = self.pick(
            ["DB_PASSWORD", "SFTP_PASS", "MQTT_PASSWORD", "POS_SQL_PASSWORD", "API_KEY"]
        )
        return self.pick(
            [
                f"${name}",
                f"${{{name}}}",
                f"${{{name}:?missing}}",
                f'"$(cat /run/secrets/{name.lower()})"',
            ]
        )

    def h14_ref_php(self) -> str:
        return self.pick(
            [
                "%env(DATABASE_PASSWORD)%",
                "%env(resolve:ADYEN_API_KEY)%",
                "%env(file:MOLLIE_KEY_FILE)%",
                "$_ENV['KLARNA_SECRET']",
                "getenv('MAILER_PASSWORD')",
                "%env(secret:APP_SECRET)%",
            ]
        )

    def h14_ref_cs(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("POS_SQL_PASSWORD")',
                'configuration["Sql:Password"]',
                "_options.Value.Password",
                'ConfigurationManager.AppSettings["BackOfficePwd"]',
                'await _secrets.GetAsync("pos-sql")',
            ]
        )

    def h14_ref_java(self) -> str:
        return self.pick(
            [
                "${SAP_RFC_PASSWORD}",
                "${vault.sap.password}",
                "${as2.keystore.password:}",
                'System.getenv("JCO_PASSWD")',
                "${env:EDI_SFTP_PASSWORD}",
            ]
        )

    def h14_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["TTN_API_KEY"]',
                'os.getenv("INFLUX_TOKEN")',
                "secret_client.access_secret_version(name=SECRET_NAME).payload.data.decode()",
                "settings.mqtt_password",
                'keyring.get_password("coldchain", "mqtt")',
            ]
        )

    def h14_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.ALGOLIA_ADMIN_KEY",
                "process.env.LOYALTY_API_TOKEN",
                "Config.LOYALTY_API_KEY",
                "env.MQTT_PASSWORD",
                "await getSecret('sendgrid-api-key')",
            ]
        )

    def h14_ref_tf(self) -> str:
        return self.pick(
            [
                "var.pos_sql_password",
                "random_password.cloudsql.result",
                "data.google_secret_manager_secret_version.looker.secret_data",
                "sensitive(var.influx_token)",
                "module.secrets.mqtt_password",
            ]
        )

    def h14_ref_helm(self) -> str:
        return self.pick(
            [
                "{{ .Values.loyalty.dbPassword }}",
                '{{ required "adyen.apiKey is required" .Values.adyen.apiKey }}',
                "{{ .Values.global.mqtt.password | quote }}",
                '{{ include "sunmere.secretName" . }}',
                "{{ .Values.influx.token | b64enc }}",
            ]
        )

    def h14_ref_ansible(self) -> str:
        return self.pick(
            [
                "{{ vault_pos_sql_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/stores:sa_password') }}",
                "{{ lookup('env', 'MQTT_PASSWORD') }}",
                "{{ store_server_admin_password }}",
            ]
        )

    def h14_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:POS_SQL_PASSWORD",
                "(Get-Secret -Name PosSqlSa -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Read-Host -AsSecureString 'Mot de passe')",
                "(Get-StoredCredential -Target StoreServer).Password",
            ]
        )

    def h14_ref_gradle(self) -> str:
        return self.pick(
            [
                'System.getenv("KEYSTORE_PASSWORD")',
                'project.findProperty("sunmere.storePassword") as String?',
                'providers.gradleProperty("SUNMERE_STORE_PASSWORD").get()',
                'keystoreProperties["storePassword"] as String',
            ]
        )

    def h14_ref_swift(self) -> str:
        return self.pick(
            [
                'Bundle.main.object(forInfoDictionaryKey: "LOYALTY_API_KEY") as? String ?? ""',
                'ProcessInfo.processInfo.environment["LOYALTY_API_KEY"] ?? ""',
                'Keychain.shared.string(forKey: "loyaltyApiKey") ?? ""',
                'Bundle.main.infoDictionary?["RECEIPTS_KEY"] as? String ?? ""',
            ]
        )

    def h14_ref_npm(self) -> str:
        return self.pick(["${NPM_TOKEN}", "${NODE_AUTH_TOKEN}", "${GAR_NPM_TOKEN}", "$NPM_TOKEN"])

    def h14_ref_gha(self) -> str:
        return self.pick(
            [
                "${{ secrets.GCP_SA_KEY }}",
                "${{ secrets.ADYEN_API_KEY }}",
                "${{ steps.secrets.outputs.adyen_api_key }}",
                "${{ secrets.GOOGLE_CREDENTIALS }}",
            ]
        )

    def h14_ref_jenkins(self) -> str:
        return self.pick(
            [
                "credentials('sonar-token')",
                "credentials('sonarqube-edi')",
                "credentials('edi-sonar')",
            ]
        )

    def h14_ref_teamcity(self) -> str:
        return self.pick(
            [
                "credentialsJSON:" + str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "%vault:kv/data/teamcity!/nuget_api_key%",
                "%env.NUGET_API_KEY_FROM_AGENT%",
            ]
        )

    def h14_ref_ot(self) -> str:
        return self.pick(
            [
                "${MQTT_PASSWORD}",
                "$INFLUX_TOKEN",
                "${__file{/run/secrets/influx_token}}",
                "process.env.NODE_RED_CREDENTIAL_SECRET",
                "${OPCUA_PASSWORD}",
            ]
        )

    # ================================================================== negatives: placeholders
    def h14_placeholder(self) -> str:
        return self.pick(
            [
                "!ChangeMe!",
                "CHANGEME",
                "<mot-de-passe>",
                "<wachtwoord>",
                "<lösenord>",
                "<password>",
                "your-api-key-here",
                "REPLACE_ME",
                "xxxxxxxxxxxxxxxx",
                "TODO",
                "<secret>",
                "__FILL_ME__",
                "...",
                "<token>",
            ]
        )

    def h14_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "********",
                "<removed>",
                "***",
                "[verwijderd]",
                "[masqué]",
                "[borttaget]",
                "xxxx (zie 1Password)",
                "(voir Vault)",
                "•••••••••",
            ]
        )

    def h14_role_word(self) -> str:
        return self.pick(
            [
                "password",
                "secret",
                "wachtwoord",
                "lösenord",
                "motdepasse",
                "pass",
                "token",
                "passwd",
            ]
        )

    def h14_fake(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "not-a-real-password",
                "dummy-secret",
                "test-only-not-secret",
                "FAKE_API_KEY_DO_NOT_USE",
                "fake_" + self.s(6, LOWNUM),
                "dummy",
                "notsecret",
            ]
        )

    def h14_doc_pw(self) -> str:
        """A password shown on a documentation host or in a documented example."""
        return self.pick(self.words) + self.s(2, DIGITS)

    def h14_i18n(self) -> str:
        return self.pick(
            [
                "Mot de passe oublié ?",
                "Le mot de passe doit contenir au moins 12 caractères",
                "Mot de passe incorrect",
                "Wachtwoord vergeten?",
                "Uw wachtwoord is verlopen",
                "Voer uw wachtwoord in",
                "Glömt lösenordet?",
                "Lösenordet måste innehålla minst 12 tecken",
                "Fel lösenord",
                "Your password has expired",
                "Enter your loyalty card PIN",
                "Ange ditt lösenord",
            ]
        )

    # ================================================================== negatives: hashes/encrypted
    def h14_bcrypt(self) -> str:
        return self.pick(["$2b$10$", "$2a$12$", "$2y$13$"]) + self.s(53, CRYPT64)

    def h14_hash(self) -> str:
        roll = self.rng.randrange(5)
        if roll == 0:
            return self.h14_bcrypt()
        if roll == 1:
            salt = self._b64(16, pad=False)
            return f"$argon2id$v=19$m=65536,t=4,p=1${salt}${self._b64(32, pad=False)}"
        if roll == 2:
            return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"
        if roll == 3:
            return hashlib.sha256(self.rng.randbytes(16)).hexdigest()
        return f"pbkdf2_sha256$600000${self.s(22)}${self._b64(32)}"

    def h14_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def h14_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def h14_mosquitto_hash(self) -> str:
        return f"$7$101${self._b64(12)}${self._b64(64)}"

    def h14_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 32, HEX)
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(_wrap(body, 80))

    def h14_sops(self) -> str:
        data = self._b64(self.rng.randrange(12, 40))
        return f"ENC[AES256_GCM,data:{data},iv:{self._b64(32)},tag:{self._b64(16)},type:str]"

    def h14_sealed(self) -> str:
        return "AgB" + self._b64(self.rng.randrange(280, 420))

    def h14_jasypt(self) -> str:
        return f"ENC({self._b64(32)})"

    def h14_dpapi(self) -> str:
        return "01000000d08c9ddf0115d1118c7a00c04fc297eb0100000" + self.s(
            self.rng.randrange(300, 420), HEX
        )

    def h14_nodered_cred(self) -> str:
        return self.s(32, HEX) + self._b64(self.rng.randrange(60, 180))

    def h14_jenkins_secret(self) -> str:
        return "{AQAAABAAAAAQ" + self._b64(36) + "}"

    def h14_encrypted(self) -> str:
        roll = self.rng.randrange(4)
        if roll == 0:
            return self.h14_sops()
        if roll == 1:
            return self.h14_jasypt()
        if roll == 2:
            return self.h14_jenkins_secret()
        return "vault:v1:" + self._b64(self.rng.randrange(40, 70))

    def h14_maven_master(self) -> str:
        return "{" + self._b64(self.rng.choice([24, 32])) + "}"

    def h14_enc_ssh_key(self) -> str:
        return self._openssh(encrypted=True)

    def h14_enc_pem(self) -> str:
        rows = _wrap(self._b64(48 * 14), 64)
        iv = self.s(32, HEXU)
        return (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{iv}\n\n" + "\n".join(rows) + "\n-----END RSA PRIVATE KEY-----"
        )

    # ================================================================== negatives: public material
    def h14_cert(self) -> str:
        return self._cert_pem()

    def h14_public_pem(self) -> str:
        if not HAVE_CRYPTO:  # pragma: no cover
            return self.public_pem()
        key = self._ec().public_key()  # type: ignore[attr-defined]
        return (
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def h14_pgp(self) -> str:
        return self.pgp_public()

    def h14_ssh_pub(self) -> str:
        _seed, pub = self._ed25519_pair()
        blob = _ssh_string(b"ssh-ed25519") + _ssh_string(pub)
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {self.pick(self.users)}@sunmere"

    def h14_host_fp(self) -> str:
        return "SHA256:" + self._b64(32, pad=False)

    def h14_thumbprint(self) -> str:
        return self.s(40, HEXU)

    def h14_adyen_client_key(self) -> str:
        return "live_" + self.s(32, UPNUM)

    def h14_algolia_search(self) -> str:
        return self.s(32, HEX)

    def h14_apns_key_id(self) -> str:
        return self.s(10, UPNUM)

    # ================================================================== negatives: identifiers
    def h14_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h14_gln(self) -> str:
        body = self.pick(["376", "871", "735", "300"]) + self.s(9, DIGITS)
        return body + _check_digit_gs1(body)

    def h14_gtin(self) -> str:
        body = self.pick(["376", "871", "735", "540"]) + self.s(9, DIGITS)
        return body + _check_digit_gs1(body)

    def h14_dev_eui(self) -> str:
        return self.pick(["70B3D5", "A84041", "0004A3", "24E124"]) + self.s(10, HEXU)

    def h14_edi_ref(self) -> str:
        return self.s(9, DIGITS) if self.rng.randrange(2) else "SNM" + self.s(11, DIGITS)

    def h14_git_sha(self) -> str:
        return self.s(40, HEX)

    def h14_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    def h14_gcp_num(self) -> str:
        return self.s(1, "123456789") + self.s(20, DIGITS)

    def h14_key_id(self) -> str:
        return self.s(40, HEX)

    def h14_looker_client_id(self) -> str:
        return self.s(20, ALNUM)

    def h14_sri(self) -> str:
        return "sha512-" + self._b64(64)


VALUES = Heldout14Values

#: Templates: (path, text, value generator, is a credential); see ``evalset._render_slots``.
TEMPLATES: list[evalset.Template] = []


def _t(path: str, kind: str, positive: bool, text: str) -> None:
    """Add one template; ``text`` starts with a newline for readability (dropped)."""
    TEMPLATES.append((path, text.removeprefix("\n"), kind, positive))


# ====================================================================================== ERP / EDI
_t(
    "erp/abap/zsd_edi_outbound_push.abap",
    "h14_sap_pw",
    True,
    r"""
*&---------------------------------------------------------------------*
*& Report ZSD_EDI_OUTBOUND_PUSH
*&---------------------------------------------------------------------*
*& Pushes DESADV (despatch advice) IDocs to the EDI gateway over HTTPS.
*& Owner: ERP integration team (Lille)  -  ticket SUN-ERP-4471
*&---------------------------------------------------------------------*
REPORT zsd_edi_outbound_push.

CONSTANTS: gc_url  TYPE string VALUE 'https://edigw.sunmere.local:8443/api/desadv',
           gc_user TYPE string VALUE 'EDI_PUSH'.

DATA: lo_client TYPE REF TO if_http_client,
      lv_pass   TYPE string,
      lv_body   TYPE xstring,
      lv_code   TYPE i.

PARAMETERS: p_docnum TYPE edidc-docnum OBLIGATORY.

START-OF-SELECTION.
* TODO move to SM59 destination ZEDI_GW once basis has time (see SUN-ERP-4480)
  lv_pass = '{V}'.

  cl_http_client=>create_by_url(
    EXPORTING url    = gc_url
    IMPORTING client = lo_client ).

  lo_client->authenticate( username = gc_user password = lv_pass ).
  lo_client->request->set_method( if_http_request=>co_request_method_post ).
  lo_client->request->set_header_field( name = 'Content-Type' value = 'application/xml' ).

  PERFORM build_payload USING p_docnum CHANGING lv_body.
  lo_client->request->set_data( lv_body ).
  lo_client->send( ).
  lo_client->receive( ).
  lo_client->response->get_status( IMPORTING code = lv_code ).

  IF lv_code <> 200.
    MESSAGE e001(zedi) WITH p_docnum lv_code.
  ENDIF.
""",
)

_t(
    "erp/abap/zmm_supplier_portal_sync.abap",
    "h14_placeholder",
    False,
    r"""
*&---------------------------------------------------------------------*
*& Report ZMM_SUPPLIER_PORTAL_SYNC
*& Synchronises vendor master changes (LFA1/LFB1) with the supplier portal.
*& Credentials come from SM59 destination ZSUPPLIER_PORTAL (logon tab),
*& never from this program. The constant below only documents the format
*& expected by the portal team's test harness.
*&---------------------------------------------------------------------*
REPORT zmm_supplier_portal_sync.

CONSTANTS gc_dest TYPE rfcdest VALUE 'ZSUPPLIER_PORTAL'.
* Example for local test harness only:
*   lv_pass = '{V}'.

DATA: lt_lfa1   TYPE STANDARD TABLE OF lfa1,
      lo_client TYPE REF TO if_http_client.

SELECT-OPTIONS s_lifnr FOR lfa1-lifnr.

START-OF-SELECTION.
  SELECT * FROM lfa1 INTO TABLE lt_lfa1 WHERE lifnr IN s_lifnr AND loevm = space.

  cl_http_client=>create_by_destination(
    EXPORTING destination = gc_dest
    IMPORTING client      = lo_client ).

  LOOP AT lt_lfa1 ASSIGNING FIELD-SYMBOL(<ls_vendor>).
    PERFORM push_vendor USING lo_client <ls_vendor>.
  ENDLOOP.
""",
)

_t(
    "erp/jco-bridge/src/main/resources/sapjco-dest/SUN_PRD.jcoDestination",
    "h14_sap_pw",
    True,
    r"""
#for tests only !
#Mon Mar 04 10:12:44 CET 2024
jco.client.lang=EN
jco.client.client=100
jco.client.passwd={V}
jco.client.user=RFC_JCO_BRG
jco.client.sysnr=00
jco.client.ashost=sapprd-ci.erp.sunmere.local
jco.destination.pool_capacity=5
jco.destination.peak_limit=20
jco.client.trace=0
""",
)

_t(
    "erp/jco-bridge/src/main/resources/application-prod.yml",
    "h14_ref_java",
    False,
    r"""
spring:
  application:
    name: sap-jco-bridge
  datasource:
    url: jdbc:sqlserver://sql-erpbridge.sunmere.local:1433;databaseName=IdocStaging;encrypt=true
    username: jco_bridge
    password: {V}

sap:
  jco:
    destination: SUN_PRD
    ashost: sapprd-ci.erp.sunmere.local
    sysnr: "00"
    client: "100"
    user: RFC_JCO_BRG
    passwd: {V2}
  idoc:
    program-id: SUNMERE_IDOC_IN
    gateway-host: sapprd-ci.erp.sunmere.local
    gateway-service: sapgw00
    connection-count: 4

management:
  endpoints:
    web:
      exposure:
        include: health,info,prometheus
""",
)

_t(
    "erp/jco-bridge/src/test/java/eu/sunmere/erp/bridge/IdocRoundTripIT.java",
    "h14_sap_pw",
    True,
    r"""
package eu.sunmere.erp.bridge;

import static org.assertj.core.api.Assertions.assertThat;

import com.sap.conn.jco.JCoDestination;
import com.sap.conn.jco.JCoDestinationManager;
import java.util.Properties;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Runs against QAS (client 200). Needs VPN to erp.sunmere.local. */
@Tag("integration")
class IdocRoundTripIT {

    private static JCoDestination destination;

    @BeforeAll
    static void connect() throws Exception {
        Properties props = new Properties();
        props.setProperty("jco.client.ashost", "sapqas-ci.erp.sunmere.local");
        props.setProperty("jco.client.sysnr", "01");
        props.setProperty("jco.client.client", "200");
        props.setProperty("jco.client.user", "RFC_TEST_02");
        props.setProperty("jco.client.passwd", "{V}");
        props.setProperty("jco.client.lang", "EN");
        InMemoryDestinationProvider.register("SUN_QAS_IT", props);
        destination = JCoDestinationManager.getDestination("SUN_QAS_IT");
    }

    @Test
    void orders05IsAcceptedByQas() throws Exception {
        var result = new IdocSender(destination).send(Fixtures.orders05("4500123987"));
        assertThat(result.status()).isEqualTo("03");
    }
}
""",
)

_t(
    "erp/jco-bridge/src/test/java/eu/sunmere/erp/bridge/IdocMapperTest.java",
    "h14_fake",
    False,
    r"""
package eu.sunmere.erp.bridge;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class IdocMapperTest {

    // Unit tests never reach SAP: the destination is a stub and the values are fake.
    private static final String FAKE_PASSWORD = "{V}";
    private static final String FAKE_TOKEN = "{V2}";

    @Test
    void mapsOrdersHeader() {
        var stub = new StubDestination("RFC_STUB", FAKE_PASSWORD);
        var mapper = new IdocMapper(stub);
        var idoc = mapper.fromJson(Fixtures.read("orders05-header.json"));
        assertThat(idoc.getControl().getDocType()).isEqualTo("ORDERS05");
    }

    @Test
    void doesNotLogCredentials() {
        var logs = LogCapture.start();
        new PortalClient("https://portal.invalid", FAKE_TOKEN).ping();
        assertThat(logs.text()).doesNotContain(FAKE_TOKEN);
    }
}
""",
)

_t(
    "edi/openas2/config/partnerships.xml",
    "h14_pw",
    True,
    r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- Sunmere Foods AS2 partnerships. Certificates live in as2_certs.p12 (alias = partner id). -->
<partnerships>
    <partner name="SUNMERE" as2_id="SUNMERE-FOODS-AS2" x509_alias="sunmere2025" email="edi@sunmere-foods.eu"/>
    <partner name="FRESCO" as2_id="FRESCOPARTNERS-NL" x509_alias="fresco" email="edi@fresco-partners.nl"/>
    <partner name="NORDKYL" as2_id="NORDKYL-SE-PROD" x509_alias="nordkyl" email="b2b@nordkyl.se"/>

    <partnership name="SUNMERE-to-FRESCO">
        <sender name="SUNMERE"/>
        <receiver name="FRESCO"/>
        <attribute name="protocol" value="as2"/>
        <attribute name="subject" value="Sunmere ORDERS"/>
        <attribute name="as2_url" value="https://as2.fresco-partners.nl:4443/as2/HttpReceiver"/>
        <attribute name="as2_mdn_to" value="https://as2.sunmere-foods.eu/as2/mdn"/>
        <attribute name="encrypt" value="AES256_CBC"/>
        <attribute name="sign" value="SHA256"/>
        <attribute name="resend_max_retries" value="3"/>
        <!-- Fresco requires HTTP basic auth in front of their receiver since 2024-02 -->
        <attribute name="http_user" value="sunmere"/>
        <attribute name="http_password" value="{V}"/>
    </partnership>

    <partnership name="SUNMERE-to-NORDKYL">
        <sender name="SUNMERE"/>
        <receiver name="NORDKYL"/>
        <attribute name="protocol" value="as2"/>
        <attribute name="as2_url" value="https://b2b.nordkyl.se/as2"/>
        <attribute name="encrypt" value="AES128_CBC"/>
        <attribute name="sign" value="SHA256"/>
        <attribute name="http_user" value="SUNMERE01"/>
        <attribute name="http_password" value="{V2}"/>
    </partnership>
</partnerships>
""",
)

_t(
    "edi/openas2/config/config.xml",
    "h14_ref_java",
    False,
    r"""
<openas2>
    <properties
        storageBaseDir="%home%/../data"
        log_date_format="yyyy-MM-dd HH:mm:ss.SSS"
        sql_timestamp_format="yyyy-MM-dd HH:mm:ss.SSS"
        as2_message_id_format="OPENAS2-$date.ddMMyyyyHHmmssZ$-$rand.1234$@$msg.sender.as2_id$_$msg.receiver.as2_id$"
    />
    <certificates classname="org.openas2.cert.PKCS12CertificateFactory"
                  filename="%home%/as2_certs.p12"
                  password="{V}"
                  interval="300"/>
    <partnerships classname="org.openas2.partner.XMLPartnershipFactory"
                  filename="%home%/partnerships.xml"/>
    <commandProcessors>
        <commandProcessor classname="org.openas2.cmd.processor.RestCommandProcessor"
                          baseuri="http://localhost:8080"
                          userid="as2admin"
                          password="{V2}"/>
    </commandProcessors>
    <processor classname="org.openas2.processor.DefaultProcessor"
               pendingMDN="%home%/../data/pendingMDN3"
               pendingMDNinfo="%home%/../data/pendinginfoMDN3">
        <module classname="org.openas2.processor.receiver.AS2ReceiverModule"
                port="10080"
                errordir="%home%/../data/inbox/error"
                errorformat="$msg.sender.as2_id$, $msg.receiver.as2_id$, $msg.headers.message-id$"/>
    </processor>
</openas2>
""",
)

_t(
    "edi/openas2/certs/partners/fresco-partners-nl.pem",
    "h14_cert",
    False,
    r"""
# Fresco Partners B.V. AS2 encryption/signing certificate, received 2024-02-12 by e-mail
# from edi@fresco-partners.nl (verified by phone with J. de Vries). Import with:
#   keytool -importcert -alias fresco -file fresco-partners-nl.pem -keystore as2_certs.p12
{V}
""",
)

_t(
    "edi/openas2/certs/sunmere-as2-2025.key",
    "h14_rsa_key",
    True,
    r"""
{V}
""",
)

_t(
    "edi/sftp/suppliers.yaml",
    "h14_pw",
    True,
    r"""
# Supplier SFTP drops polled by edi-poller (every 10 min). One entry per supplier.
# Files land in gs://sunmere-edi-inbound/<code>/ and are archived after ack.
suppliers:
  - code: LAITERIE-NORMANDE
    host: sftp.laiterie-normande.fr
    port: 22
    user: sunmere_edi
    password: {V}
    remote_dir: /outbound/desadv
    pattern: "DESADV_*.edi"
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH4Wc1ULm0yqSdqj5wJ9m2c3c8VqvFzqfZ6lH0X1f4aK"
  - code: VAN-DIJK-GROENTEN
    host: ftp.vandijk-groenten.nl
    port: 2222
    user: SUNMERE
    password: {V2}
    remote_dir: /out
    pattern: "INVOIC*.txt"
  - code: NORRBAGERI
    host: sftp.norrbageri.se
    port: 22
    user: sunmere
    auth: key
    key_file: /etc/edi-poller/keys/norrbageri_ed25519
    remote_dir: /export/orders
    pattern: "*.xml"
""",
)

_t(
    "edi/sftp/suppliers.example.yaml",
    "h14_placeholder",
    False,
    r"""
# Copy to suppliers.yaml and fill in. Never commit the real file (it is in .gitignore).
suppliers:
  - code: SUPPLIER-CODE
    host: sftp.supplier.example.com
    port: 22
    user: sunmere_edi
    password: "{V}"
    remote_dir: /outbound
    pattern: "*.edi"
  - code: OTHER-SUPPLIER
    host: sftp.other.example.org
    port: 22
    user: SUNMERE
    password: "{V2}"
    remote_dir: /out
""",
)

_t(
    "edi/sftp/keys/norrbageri_ed25519",
    "h14_openssh_key",
    True,
    r"""
{V}
""",
)

_t(
    "edi/sftp/keys/legacy_metro_ed25519",
    "h14_enc_ssh_key",
    False,
    r"""
{V}
""",
)

_t(
    "edi/sftp/known_hosts.md",
    "h14_host_fp",
    False,
    r"""
# Supplier SFTP host keys (verified out of band)

| Supplier | Host | Key type | Fingerprint | Verified by |
|---|---|---|---|---|
| Laiterie Normande | sftp.laiterie-normande.fr | ed25519 | `{V}` | phone, 2024-01-09 |
| Van Dijk Groenten | ftp.vandijk-groenten.nl | rsa | `{V2}` | e-mail + phone, 2023-11-21 |
| Norrbageri AB | sftp.norrbageri.se | ed25519 | `{V3}` | Teams call, 2024-05-02 |

If the poller logs `HOST KEY CHANGED`, do **not** accept the new key: open a ticket with the
supplier and compare the fingerprint above with the one they read out over the phone.
""",
)

_t(
    "edi/poller/poll_suppliers.sh",
    "h14_pw",
    True,
    r"""
#!/usr/bin/env bash
# Legacy cron job on edi-util-01 (kept until the Go poller handles Metro's FTPS).
# 15 * * * * /opt/edi/poll_suppliers.sh >> /var/log/edi/poll.log 2>&1
set -euo pipefail

INBOX=/data/edi/inbox
ARCHIVE=/data/edi/archive/$(date +%Y/%m/%d)
mkdir -p "$INBOX" "$ARCHIVE"

# Metro Cash & Carry FR (FTPS, explicit TLS)
lftp -u "SUNMERE_FR,{V}" -e "set ftp:ssl-force true; set ssl:verify-certificate yes; \
  mirror --Remove-source-files /outbound/INVOIC $INBOX/metro; bye" ftps://edi.metro-fr.net

# Van Dijk (plain SFTP, password auth)
sshpass -p '{V2}' sftp -oBatchMode=no -oStrictHostKeyChecking=yes \
  -P 2222 SUNMERE@ftp.vandijk-groenten.nl <<SFTP
cd /out
mget INVOIC*.txt $INBOX/vandijk/
bye
SFTP

find "$INBOX" -type f -mmin +1 -exec cp {} "$ARCHIVE"/ \;
echo "$(date -Is) poll done"
""",
)

_t(
    "edi/poller/poll_suppliers_v2.sh",
    "h14_ref_sh",
    False,
    r"""
#!/usr/bin/env bash
# Same as poll_suppliers.sh but credentials come from the environment (systemd credentials).
set -euo pipefail

: "${METRO_FTPS_USER:?}"
INBOX=/data/edi/inbox

lftp -u "$METRO_FTPS_USER,{V}" -e "set ftp:ssl-force true; mirror /outbound/INVOIC $INBOX/metro; bye" \
  ftps://edi.metro-fr.net

SSHPASS={V2} sshpass -e sftp -P 2222 SUNMERE@ftp.vandijk-groenten.nl <<SFTP
cd /out
mget INVOIC*.txt $INBOX/vandijk/
bye
SFTP
""",
)

_t(
    "edi/samples/ORDERS_D96A_fresco.edi",
    "h14_gln",
    False,
    r"""
UNA:+.? '
UNB+UNOC:3+{V}:14+{V2}:14+240611:0930+SNM000482231++ORDERS'
UNH+1+ORDERS:D:96A:UN:EAN008'
BGM+220+4500123987+9'
DTM+137:20240611:102'
DTM+2:20240613:102'
NAD+BY+{V3}::9'
NAD+SU+{V2}::9'
NAD+DP+{V4}::9'
LIN+1++8710398527301:SRV'
QTY+21:48'
LIN+2++8710398527318:SRV'
QTY+21:24'
UNS+S'
CNT+2:2'
UNT+15+1'
UNZ+1+SNM000482231'
""",
)

_t(
    "edi/mapping/desadv_to_idoc.xslt",
    "h14_gtin",
    False,
    r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- DESADV (EANCOM D96A, parsed to XML by the gateway) to DELVRY07 IDoc. -->
<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" indent="yes"/>

  <!-- Test article numbers used by the mapping unit tests (real GTINs of our own brand). -->
  <xsl:variable name="test-gtins" select="('{V}', '{V2}', '{V3}')"/>

  <xsl:template match="/DESADV">
    <DELVRY07>
      <IDOC BEGIN="1">
        <EDI_DC40 SEGMENT="1">
          <TABNAM>EDI_DC40</TABNAM>
          <MESTYP>DESADV</MESTYP>
          <IDOCTYP>DELVRY07</IDOCTYP>
          <SNDPRT>LS</SNDPRT>
          <SNDPRN><xsl:value-of select="UNB/Sender"/></SNDPRN>
        </EDI_DC40>
        <xsl:for-each select="LIN">
          <E1EDL24 SEGMENT="1">
            <EAN11><xsl:value-of select="ItemNumber"/></EAN11>
            <LFIMG><xsl:value-of select="QTY[@qualifier='12']"/></LFIMG>
          </E1EDL24>
        </xsl:for-each>
      </IDOC>
    </DELVRY07>
  </xsl:template>
</xsl:stylesheet>
""",
)

_t(
    "edi/mendelson/partner_nordkyl.properties",
    "h14_pw",
    True,
    r"""
# mendelson AS2 partner export (Nordkyl AB, Sweden) - imported 2024-05-02
partner.name=NORDKYL
partner.as2id=NORDKYL-SE-PROD
partner.url=https://b2b.nordkyl.se/as2
partner.mdnurl=https://as2.sunmere-foods.eu/as2/mdn
partner.signalias=nordkyl-sign-2024
partner.cryptalias=nordkyl-crypt-2024
partner.encryption=AES256
partner.signature=SHA256
partner.compression=none
partner.httpauth.enabled=true
partner.httpauth.user=SUNMERE01
partner.httpauth.pass={V}
partner.httpauth.async.mdn.enabled=false
partner.comment=Kontakt: b2b-support@nordkyl.se, tel +46 31 700 12 00
""",
)

_t(
    "edi/gateway/src/main/resources/application.properties",
    "h14_ref_java",
    False,
    r"""
server.port=8443
server.ssl.key-store=classpath:edigw.p12
server.ssl.key-store-password={V}
server.ssl.key-store-type=PKCS12

edigw.sftp.host=sftp-in.sunmere-foods.eu
edigw.sftp.user=edigw
edigw.sftp.password={V2}

edigw.archive.bucket=sunmere-edi-archive
edigw.as2.own-id=SUNMERE-FOODS-AS2

spring.datasource.url=jdbc:postgresql://pg-edi.sunmere.local:5432/edigw
spring.datasource.username=edigw
spring.datasource.password={V3}
spring.jpa.hibernate.ddl-auto=validate
""",
)

_t(
    "edi/gateway/src/main/resources/application-local.properties",
    "h14_pw",
    True,
    r"""
# Local profile: points at the shared DEV stack (not docker). Ask #edi-dev before changing.
server.port=8080
server.ssl.enabled=false

edigw.sftp.host=sftp-dev.sunmere.local
edigw.sftp.user=edigw_dev
edigw.sftp.password={V}

spring.datasource.url=jdbc:postgresql://pg-dev-01.sunmere.local:5432/edigw
spring.datasource.username=edigw
spring.datasource.password={V2}
logging.level.eu.sunmere.edi=DEBUG
""",
)

_t(
    "edi/gateway/src/main/java/eu/sunmere/edi/gateway/VanClient.java",
    "h14_any_pw",
    True,
    r"""
package eu.sunmere.edi.gateway;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/** Client for the GXS/OpenText VAN mailbox used by two French suppliers still on X.400. */
public final class VanClient {

    private static final String MAILBOX_URL = "https://van-gw.sunmere.local/mailbox/SUNMERE01";
    private static final String USER = System.getenv().getOrDefault("VAN_USER", "SUNMERE01");
    private static final String PASSWORD = System.getenv().getOrDefault("VAN_PASSWORD", "{V}");

    private final HttpClient http = HttpClient.newHttpClient();

    public String fetchNext() throws Exception {
        String auth = Base64.getEncoder()
                .encodeToString((USER + ":" + PASSWORD).getBytes(StandardCharsets.UTF_8));
        HttpRequest req = HttpRequest.newBuilder(URI.create(MAILBOX_URL + "/next"))
                .header("Authorization", "Basic " + auth)
                .GET()
                .build();
        HttpResponse<String> res = http.send(req, HttpResponse.BodyHandlers.ofString());
        if (res.statusCode() == 204) {
            return null;
        }
        return res.body();
    }
}
""",
)

_t(
    "edi/gateway/src/main/java/eu/sunmere/edi/gateway/PartnerRegistry.java",
    "h14_uuid",
    False,
    r"""
package eu.sunmere.edi.gateway;

import java.util.Map;
import java.util.UUID;

/** Stable partner ids used as keys in the edigw database (never change them). */
final class PartnerRegistry {

    static final Map<String, UUID> PARTNERS = Map.of(
            "FRESCO", UUID.fromString("{V}"),
            "NORDKYL", UUID.fromString("{V2}"),
            "LAITERIE-NORMANDE", UUID.fromString("{V3}"),
            "VAN-DIJK-GROENTEN", UUID.fromString("{V4}"));

    private PartnerRegistry() {}
}
""",
)

_t(
    "edi/docs/onboarding-supplier-fr.md",
    "h14_placeholder",
    False,
    r"""
# Raccordement EDI d'un nouveau fournisseur

1. Demander au fournisseur son GLN, son identifiant AS2 et son certificat (PEM ou DER).
2. Créer l'entrée dans `edi/sftp/suppliers.yaml` **sans** le mot de passe :

   ```yaml
   - code: NOUVEAU-FOURNISSEUR
     host: sftp.fournisseur.example.com
     user: sunmere_edi
     password: "{V}"
   ```

3. Le mot de passe SFTP est saisi dans Secret Manager (`edi-sftp-<code>`), jamais dans Git.
4. Envoyer au fournisseur notre certificat public (`edi/openas2/certs/sunmere-as2-2025.pem`).
5. Faire un test ORDERS → DESADV avec le fournisseur en QAS avant la mise en production.

> Rappel : si le fournisseur envoie son mot de passe par e-mail, répondre en demandant
> un échange par téléphone et remplacer la valeur par `{V2}` dans le ticket.
""",
)

_t(
    "edi/docs/runbook-as2-nl.md",
    "h14_pw",
    True,
    r"""
# Runbook: AS2-verbinding Fresco Partners valt weg

**Symptoom:** `MDN not received` in de OpenAS2-log, berichten blijven in `pendingMDN3`.

1. Controleer of `https://as2.fresco-partners.nl:4443/as2/HttpReceiver` bereikbaar is vanaf
   `edigw-01` (`curl -v` met de basic-auth gegevens hieronder).
2. Sinds februari 2024 staat er basic auth voor hun receiver:
   gebruiker `sunmere`, wachtwoord `{V}`.
3. Als Fresco een nieuw certificaat heeft, importeer het in `as2_certs.p12`
   (wachtwoord van de keystore: `{V2}`) en herstart de service:
   `systemctl restart openas2`.
4. Stuur de berichten uit `pendingMDN3` opnieuw via de REST API.

Contact Fresco: edi@fresco-partners.nl, +31 30 200 44 10 (ma-vr 8:00-17:00).
""",
)


# ============================================================================ stores: POS / back-office
_t(
    "stores/backoffice/src/Sunmere.BackOffice.Api/appsettings.Production.json",
    "h14_sql_pw",
    True,
    r"""
{
  "Logging": {
    "LogLevel": {
      "Default": "Information",
      "Microsoft.AspNetCore": "Warning"
    }
  },
  "ConnectionStrings": {
    "StoreDb": "Server=localhost\\SQLEXPRESS;Database=StoreBO;User Id=bo_app;Password={V};TrustServerCertificate=True",
    "Central": "Server=sql-central.stores.sunmere.local,1433;Database=Retail;User Id=bo_sync;Password={V2};Encrypt=True"
  },
  "Pos": {
    "LaneCount": 8,
    "ReceiptPrinter": "EPSON TM-T88VI",
    "PriceSyncCron": "0 */15 * * * *"
  },
  "Loyalty": {
    "BaseUrl": "https://loyalty-api.sunmere.eu/v2/",
    "TimeoutSeconds": 5
  }
}
""",
)

_t(
    "stores/backoffice/src/Sunmere.BackOffice.Api/appsettings.json",
    "h14_placeholder",
    False,
    r"""
{
  "Logging": {
    "LogLevel": {
      "Default": "Information"
    }
  },
  "ConnectionStrings": {
    "StoreDb": "Server=localhost\\SQLEXPRESS;Database=StoreBO;User Id=bo_app;Password={V};TrustServerCertificate=True",
    "Central": "Server=sql-central.stores.sunmere.local,1433;Database=Retail;User Id=bo_sync;Password={V2};Encrypt=True"
  },
  "Loyalty": {
    "BaseUrl": "https://loyalty-api.sunmere.eu/v2/",
    "ApiKey": "{V3}"
  },
  "AllowedHosts": "*"
}
""",
)

_t(
    "stores/backoffice/src/Sunmere.BackOffice.Api/appsettings.Development.json",
    "h14_sql_pw",
    True,
    r"""
{
  "ConnectionStrings": {
    "StoreDb": "Data Source=(localdb)\\MSSQLLocalDB;Initial Catalog=StoreBO;Integrated Security=True",
    "Central": "Server=sql-central-tst.stores.sunmere.local;Database=Retail;User Id=bo_sync;Password={V};Encrypt=False"
  },
  "Loyalty": {
    "BaseUrl": "https://loyalty-api-tst.sunmere.eu/v2/"
  },
  "DetailedErrors": true
}
""",
)

_t(
    "stores/backoffice/src/Sunmere.BackOffice.Api/Program.cs",
    "h14_ref_cs",
    False,
    r"""
using Microsoft.Data.SqlClient;
using Sunmere.BackOffice.Api.Loyalty;
using Sunmere.BackOffice.Api.Pricing;

var builder = WebApplication.CreateBuilder(args);

builder.Configuration.AddJsonFile("/etc/sunmere/backoffice.json", optional: true);
builder.Services.AddControllers();
builder.Services.AddHostedService<PriceSyncWorker>();

var sql = new SqlConnectionStringBuilder(builder.Configuration.GetConnectionString("StoreDb"))
{
    Password = {V},
};
builder.Services.AddSingleton(sql);

builder.Services.AddHttpClient<LoyaltyClient>(client =>
{
    client.BaseAddress = new Uri(builder.Configuration["Loyalty:BaseUrl"]!);
    client.DefaultRequestHeaders.Add("X-Api-Key", {V2});
});

var app = builder.Build();
app.MapControllers();
app.MapGet("/healthz", () => Results.Ok(new { store = Environment.MachineName }));
app.Run();
""",
)

_t(
    "stores/backoffice/tests/Sunmere.BackOffice.Tests/LoyaltyClientTests.cs",
    "h14_api_key",
    True,
    r"""
using System.Net;
using FluentAssertions;
using Sunmere.BackOffice.Api.Loyalty;
using Xunit;

namespace Sunmere.BackOffice.Tests;

public class LoyaltyClientTests
{
    // Runs against the shared acceptance environment (loyalty-api-acc) in the nightly build.
    private const string AccApiKey = "{V}";

    [Fact(Skip = "Needs VPN; run manually or in nightly")]
    public async Task LooksUpMemberByCardNumber()
    {
        var http = new HttpClient { BaseAddress = new Uri("https://loyalty-api-acc.sunmere.eu/v2/") };
        http.DefaultRequestHeaders.Add("X-Api-Key", AccApiKey);
        var client = new LoyaltyClient(http);

        var member = await client.FindByCardAsync("2400012345678");

        member.Should().NotBeNull();
        member!.Tier.Should().Be("GOLD");
    }
}
""",
)

_t(
    "stores/backoffice/tests/Sunmere.BackOffice.Tests/PriceSyncWorkerTests.cs",
    "h14_fake",
    False,
    r"""
using FluentAssertions;
using NSubstitute;
using Sunmere.BackOffice.Api.Pricing;
using Xunit;

namespace Sunmere.BackOffice.Tests;

public class PriceSyncWorkerTests
{
    private const string FakeApiKey = "{V}";
    private const string FakeSqlPassword = "{V2}";

    [Fact]
    public async Task SkipsWhenCentralIsDown()
    {
        var central = Substitute.For<ICentralPriceSource>();
        central.FetchAsync(default).ReturnsForAnyArgs<Task<IReadOnlyList<PriceRow>>>(
            _ => throw new TimeoutException());
        var worker = new PriceSyncWorker(central, new InMemoryStoreDb(FakeSqlPassword), FakeApiKey);

        var result = await worker.RunOnceAsync(CancellationToken.None);

        result.Should().Be(SyncResult.Skipped);
    }
}
""",
)

_t(
    "stores/pos-lane/Sunmere.Pos.Lane/App.config",
    "h14_sql_pw",
    True,
    r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <startup>
    <supportedRuntime version="v4.0" sku=".NETFramework,Version=v4.8" />
  </startup>
  <connectionStrings>
    <add name="LaneDb"
         connectionString="Data Source=STSRV\POS;Initial Catalog=PosLane;User ID=pos_lane;Password={V};Connect Timeout=5"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="StoreNumber" value="0000" />
    <add key="LaneNumber" value="0" />
    <add key="PaymentTerminal" value="Ingenico Lane/3000" />
    <add key="EftHost" value="eft-gw.stores.sunmere.local" />
    <add key="EftMerchantPassword" value="{V2}" />
    <add key="ScaleComPort" value="COM3" />
  </appSettings>
</configuration>
""",
)

_t(
    "stores/backoffice/src/Sunmere.BackOffice.Web/Web.config",
    "h14_thumbprint",
    False,
    r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="ClientCertificateThumbprint" value="{V}" />
    <add key="LoyaltySigningCertThumbprint" value="{V2}" />
    <add key="webpages:Version" value="3.0.0.0" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <authentication mode="Windows" />
    <httpRuntime targetFramework="4.8" enableVersionHeader="false" />
  </system.web>
  <system.webServer>
    <security>
      <access sslFlags="Ssl, SslNegotiateCert" />
    </security>
  </system.webServer>
</configuration>
""",
)

_t(
    "stores/backoffice/src/Sunmere.BackOffice.Web/Web.Release.config",
    "h14_sql_pw",
    True,
    r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <connectionStrings>
    <add name="BackOffice"
         connectionString="Server=sql-central.stores.sunmere.local;Database=BackOfficeWeb;User ID=bo_web;Password={V}"
         xdt:Transform="SetAttributes" xdt:Locator="Match(name)" />
  </connectionStrings>
  <appSettings>
    <add key="SmtpPassword" value="{V2}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
  </appSettings>
  <system.web>
    <compilation xdt:Transform="RemoveAttributes(debug)" />
  </system.web>
</configuration>
""",
)

_t(
    "stores/sql/logins/create_store_logins.sql",
    "h14_sql_pw",
    True,
    r"""
-- Run once per store server (SQL Server 2019 Express) after imaging.
-- Ticket SUN-STORE-1187. Passwords rotated 2024-Q2 (see change CHG0043310).
USE [master];
GO

IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'pos_lane')
    CREATE LOGIN [pos_lane] WITH PASSWORD = N'{V}', CHECK_POLICY = OFF, DEFAULT_DATABASE = [PosLane];
GO

IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'bo_app')
    CREATE LOGIN [bo_app] WITH PASSWORD = N'{V2}', CHECK_POLICY = ON, DEFAULT_DATABASE = [StoreBO];
GO

ALTER LOGIN [sa] WITH PASSWORD = N'{V3}';
ALTER LOGIN [sa] DISABLE;
GO

USE [PosLane];
CREATE USER [pos_lane] FOR LOGIN [pos_lane];
ALTER ROLE db_datareader ADD MEMBER [pos_lane];
ALTER ROLE db_datawriter ADD MEMBER [pos_lane];
GO
""",
)

_t(
    "stores/sql/logins/migrate_logins_hashed.sql",
    "h14_mssql_hash",
    False,
    r"""
-- Generated by sp_help_revlogin on STSRV-0142 (2024-03-18). Moves logins with their
-- password HASHES to the new store server; no clear-text passwords in here.
USE [master];
GO
-- Login: pos_lane
CREATE LOGIN [pos_lane] WITH PASSWORD = {V} HASHED, SID = 0x5D1F0A3E9B2C4F7A8E6D1C0B9A8F7E6D, DEFAULT_DATABASE = [PosLane], CHECK_POLICY = OFF, CHECK_EXPIRATION = OFF;
GO
-- Login: bo_app
CREATE LOGIN [bo_app] WITH PASSWORD = {V2} HASHED, SID = 0x1A2B3C4D5E6F708192A3B4C5D6E7F801, DEFAULT_DATABASE = [StoreBO], CHECK_POLICY = ON, CHECK_EXPIRATION = OFF;
GO
-- Login: bo_sync
CREATE LOGIN [bo_sync] WITH PASSWORD = {V3} HASHED, SID = 0x99AA88BB77CC66DD55EE44FF33001122, DEFAULT_DATABASE = [StoreBO], CHECK_POLICY = ON, CHECK_EXPIRATION = OFF;
GO
""",
)

_t(
    "stores/sql/agent/job_central_price_pull.sql",
    "h14_sql_pw",
    True,
    r"""
USE [msdb];
GO
EXEC dbo.sp_add_job @job_name = N'Sunmere - Central price pull', @enabled = 1,
    @description = N'Pulls price changes from Retail central every 15 minutes.';

EXEC dbo.sp_add_jobstep @job_name = N'Sunmere - Central price pull', @step_name = N'pull',
    @subsystem = N'CmdExec',
    @command = N'sqlcmd -S sql-central.stores.sunmere.local -U bo_sync -P "{V}" -d Retail -i "C:\Sunmere\sql\pull_prices.sql" -o "C:\Sunmere\logs\pull_prices.log"',
    @retry_attempts = 2, @retry_interval = 1;

EXEC dbo.sp_add_schedule @schedule_name = N'every-15-min', @freq_type = 4, @freq_interval = 1,
    @freq_subday_type = 4, @freq_subday_interval = 15;
EXEC dbo.sp_attach_schedule @job_name = N'Sunmere - Central price pull', @schedule_name = N'every-15-min';
EXEC dbo.sp_add_jobserver @job_name = N'Sunmere - Central price pull';
GO
""",
)

_t(
    "stores/sql/seed/users_backoffice.sql",
    "h14_hash",
    False,
    r"""
-- Back-office web users for the pilot stores. Passwords are set by the users on first login;
-- these are the hashes of the one-time passwords the store managers received by SMS.
INSERT INTO dbo.BoUser (StoreNo, Login, DisplayName, PasswordHash, MustChange) VALUES
 (142, N'sm0142', N'Magasin Lille Centre', N'{V}', 1),
 (218, N'sm0218', N'Winkel Utrecht Oudegracht', N'{V2}', 1),
 (305, N'sm0305', N'Butik Göteborg Linné', N'{V3}', 1);
GO
""",
)

_t(
    "stores/scripts/Deploy-StoreServer.ps1",
    "h14_pw",
    True,
    r"""
<#
.SYNOPSIS
    Deploys a new back-office build to one store server.
.EXAMPLE
    .\Deploy-StoreServer.ps1 -StoreNumber 142 -Build 2024.6.3
#>
param(
    [Parameter(Mandatory)] [int] $StoreNumber,
    [Parameter(Mandatory)] [string] $Build
)

$ErrorActionPreference = 'Stop'
$server = 'STSRV-{0:D4}.stores.sunmere.local' -f $StoreNumber

# Local admin on every store server (same everywhere until LAPS rollout, see SUN-SEC-212)
$adminUser = "$server\sunmere_adm"
$adminPass = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($adminUser, $adminPass)

$session = New-PSSession -ComputerName $server -Credential $cred -UseSSL
try {
    Copy-Item "\\fs01\builds\backoffice\$Build\*" -Destination 'C:\Sunmere\BackOffice\' -ToSession $session -Recurse -Force
    Invoke-Command -Session $session -ScriptBlock {
        Restart-Service -Name 'SunmereBackOffice' -Force
        Get-Service -Name 'SunmereBackOffice'
    }
} finally {
    Remove-PSSession $session
}
""",
)

_t(
    "stores/scripts/Deploy-StoreServer.v2.ps1",
    "h14_ref_ps",
    False,
    r"""
param(
    [Parameter(Mandatory)] [int] $StoreNumber,
    [Parameter(Mandatory)] [string] $Build
)

$ErrorActionPreference = 'Stop'
Import-Module Microsoft.PowerShell.SecretManagement
$server = 'STSRV-{0:D4}.stores.sunmere.local' -f $StoreNumber

# LAPS password for this store server, read from the vault the service desk uses.
$plain = {V}
$cred = New-Object System.Management.Automation.PSCredential(
    "$server\sunmere_adm", (ConvertTo-SecureString $plain -AsPlainText -Force))

$session = New-PSSession -ComputerName $server -Credential $cred -UseSSL
Invoke-Command -Session $session -ScriptBlock { Restart-Service -Name 'SunmereBackOffice' -Force }
Remove-PSSession $session
""",
)

_t(
    "stores/scripts/Save-EftCredential.ps1",
    "h14_dpapi",
    False,
    r"""
# Stores the EFT merchant password for the lane service, protected with DPAPI (LocalMachine).
# The blob below is what this script wrote on the golden image; it only decrypts on that machine.
#   $secure = Read-Host -AsSecureString 'EFT merchant password'
#   $secure | ConvertFrom-SecureString | Set-Content C:\Sunmere\secure\eft.txt

$GoldenImageBlob = '{V}'

function Get-EftPassword {
    $blob = Get-Content 'C:\Sunmere\secure\eft.txt' -ErrorAction SilentlyContinue
    if (-not $blob) { $blob = $GoldenImageBlob }
    $secure = $blob | ConvertTo-SecureString
    return [Runtime.InteropServices.Marshal]::PtrToStringAuto(
        [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure))
}
""",
)

_t(
    "stores/scripts/map_drives.bat",
    "h14_weak_pw",
    True,
    r"""
@echo off
REM Mapped at logon on every store back-office PC (GPO "Store BO drives").
REM Kept as a batch file because the old Windows 7 tills do not run the PowerShell version.
net use P: /delete /y >nul 2>&1
net use S: /delete /y >nul 2>&1

net use P: \\STSRV\prices /user:STORE\bo_user {V} /persistent:no
net use S: \\fs01.stores.sunmere.local\stores$ /user:SUNMERE\svc_storeshare {V2} /persistent:no

if errorlevel 1 (
    echo Kan netwerkschijf niet koppelen / Impossible de connecter le lecteur >> C:\Sunmere\logs\drives.log
)
""",
)

_t(
    "stores/scripts/nightly_backup.cmd",
    "h14_sql_pw",
    True,
    r"""
@echo off
setlocal
set STAMP=%date:~-4%%date:~3,2%%date:~0,2%
set BK=D:\Backup\%STAMP%
mkdir "%BK%" 2>nul

REM SQL backups of the store databases (sa is disabled, use the backup operator)
sqlcmd -S STSRV\POS -U bk_operator -P {V} -Q "BACKUP DATABASE [PosLane] TO DISK='%BK%\PosLane.bak' WITH COMPRESSION, INIT"
sqlcmd -S STSRV\SQLEXPRESS -U bk_operator -P {V} -Q "BACKUP DATABASE [StoreBO] TO DISK='%BK%\StoreBO.bak' WITH COMPRESSION, INIT"

REM copy to the regional file server, keep 7 days locally
robocopy "%BK%" "\\fs-region-north\storebackups\%COMPUTERNAME%\%STAMP%" /E /R:2 /W:10 /NP
forfiles /p D:\Backup /d -7 /c "cmd /c if @isdir==TRUE rd /s /q @path"
endlocal
""",
)

_t(
    "stores/scripts/nightly_backup_v2.cmd",
    "h14_placeholder",
    False,
    r"""
@echo off
REM Windows authentication: the scheduled task runs as NT SERVICE\SunmereBackup.
REM Do not put a password here. The old -P argument was '{V}' in the template we copied.
setlocal
set BK=D:\Backup\%date:~-4%%date:~3,2%%date:~0,2%
mkdir "%BK%" 2>nul
sqlcmd -S STSRV\POS -E -Q "BACKUP DATABASE [PosLane] TO DISK='%BK%\PosLane.bak' WITH COMPRESSION, INIT"
sqlcmd -S STSRV\SQLEXPRESS -E -Q "BACKUP DATABASE [StoreBO] TO DISK='%BK%\StoreBO.bak' WITH COMPRESSION, INIT"
endlocal
""",
)

_t(
    "stores/scripts/Register-ScaleService.ps1",
    "h14_vendor_default",
    True,
    r"""
# Bizerba scales (K-class) in the fresh counters expose a web admin on :8080.
# The installer leaves the factory login in place; our image does not change it (yet).
$Scales = Import-Csv -Path 'C:\Sunmere\config\scales.csv'   # Store,Ip,Counter

foreach ($scale in $Scales) {
    $pair = "admin:{V}"
    $basic = [Convert]::ToBase64String([Text.Encoding]::ASCII.GetBytes($pair))
    $uri = "http://$($scale.Ip):8080/api/plu/sync"
    try {
        Invoke-RestMethod -Uri $uri -Method Post -Headers @{ Authorization = "Basic $basic" } -TimeoutSec 10
        Write-Host "OK  $($scale.Store) $($scale.Counter)"
    } catch {
        Write-Warning "FAIL $($scale.Store) $($scale.Counter): $_"
    }
}
""",
)

_t(
    "stores/pos-lane/Sunmere.Pos.Lane/Eft/EftSettings.cs",
    "h14_ref_cs",
    False,
    r"""
namespace Sunmere.Pos.Lane.Eft;

public sealed class EftSettings
{
    public string Host { get; init; } = "eft-gw.stores.sunmere.local";
    public int Port { get; init; } = 5203;
    public string MerchantId { get; init; } = string.Empty;

    /// <summary>Never hard-code: comes from the machine config written by the imaging tool.</summary>
    public string MerchantPassword { get; init; } = string.Empty;

    public static EftSettings FromEnvironment() => new()
    {
        MerchantId = Environment.GetEnvironmentVariable("EFT_MERCHANT_ID") ?? string.Empty,
        MerchantPassword = {V},
    };
}
""",
)

_t(
    "stores/pos-lane/Sunmere.Pos.Lane/Resources/Strings.resx",
    "h14_i18n",
    False,
    r"""
<?xml version="1.0" encoding="utf-8"?>
<root>
  <resheader name="resmimetype"><value>text/microsoft-resx</value></resheader>
  <resheader name="version"><value>2.0</value></resheader>
  <data name="Supervisor_PasswordPrompt" xml:space="preserve">
    <value>{V}</value>
  </data>
  <data name="Supervisor_PasswordWrong" xml:space="preserve">
    <value>{V2}</value>
  </data>
  <data name="Supervisor_PasswordExpired" xml:space="preserve">
    <value>{V3}</value>
    <comment>Shown on the lane display, max 40 characters.</comment>
  </data>
  <data name="Loyalty_ScanCard" xml:space="preserve">
    <value>Scannez votre carte fidélité</value>
  </data>
</root>
""",
)

_t(
    "stores/docs/store-server-rebuild.md",
    "h14_any_pw",
    True,
    r"""
# Store server rebuild (STSRV) - field engineer checklist

Use this when a store server has been replaced by the hardware vendor.

1. Boot from the USB stick labelled **STSRV-2024.2**, choose *Full image*.
2. Join the domain `STORES` with the engineer account; rename to `STSRV-<store number>`.
3. Log in locally as `.\sunmere_adm` (password: `{V}`) and run
   `C:\Sunmere\setup\Initialize-Store.ps1 -StoreNumber <n>`.
4. SQL Express is installed with `sa` enabled for the restore only. The temporary sa password
   is `{V2}`; the script disables sa at the end.
5. Restore `PosLane` and `StoreBO` from the regional file server.
6. Check that all lanes come online in the POS monitor (green), then call the service desk.

If the script fails at step 3, open a P2 ticket in ServiceNow, group *Store Infra*.
""",
)

_t(
    "stores/docs/store-server-rebuild-sv.md",
    "h14_redacted",
    False,
    r"""
# Återställning av butiksserver (STSRV)

1. Starta från USB-minnet **STSRV-2024.2** och välj *Full image*.
2. Anslut till domänen `STORES`, byt namn till `STSRV-<butiksnummer>`.
3. Logga in som `.\sunmere_adm`. Lösenordet: `{V}` (hämtas från LAPS av servicedesk).
4. Kör `C:\Sunmere\setup\Initialize-Store.ps1 -StoreNumber <n>`.
5. Tillfälligt sa-lösenord under återställningen: `{V2}`.
6. Kontrollera att alla kassor är gröna i POS-monitorn.

Vid fel: öppna ett P2-ärende i ServiceNow, grupp *Store Infra*.
""",
)

_t(
    "stores/monitoring/zabbix_agent2.conf",
    "h14_pw",
    True,
    r"""
# Zabbix agent 2 on store servers (pushed by Ansible role store_monitoring)
Server=zbx-proxy-north.stores.sunmere.local
ServerActive=zbx-proxy-north.stores.sunmere.local
Hostname=STSRV-0000
LogFile=C:\Program Files\Zabbix Agent 2\zabbix_agent2.log
TLSConnect=psk
TLSAccept=psk
TLSPSKIdentity=stores-psk-2024
TLSPSKFile=C:\Program Files\Zabbix Agent 2\stores.psk

Plugins.MSSQL.Sessions.PosLane.Uri=sqlserver://localhost\POS
Plugins.MSSQL.Sessions.PosLane.User=zbx_monitor
Plugins.MSSQL.Sessions.PosLane.Password={V}
""",
)

_t(
    "stores/monitoring/stores.psk",
    "h14_hex64",
    True,
    r"""
{V}
""",
)

_t(
    "stores/pos-lane/tools/ReceiptReplay/README.md",
    "h14_doc_pw",
    False,
    r"""
# ReceiptReplay

Replays journal files from a lane against a test back-office, for reproducing price bugs.

```
ReceiptReplay.exe --journal C:\Sunmere\journal\2024-06-11.jrn ^
  --backoffice https://bo.example.test/api ^
  --user demo --password {V}
```

`bo.example.test` is the docker-compose stack in `tools/devstack` (see its README); the
`demo` user and this password are created by its seed script and exist nowhere else.
The connection string in the docs uses `Server=sql.example.com;User Id=demo;Password={V2}`.
""",
)


# ============================================================================ e-commerce / loyalty
_t(
    "webshop/.env",
    "h14_placeholder",
    False,
    r"""
# In all environments, the following files are loaded if they exist,
# the latter taking precedence over the former:
#
#  * .env                contains default values for the environment variables needed by the app
#  * .env.local          uncommitted file with local overrides
#  * .env.$APP_ENV       committed environment-specific defaults
#  * .env.$APP_ENV.local uncommitted environment-specific overrides
#
# Real environment variables win over .env files.
#
# DO NOT DEFINE PRODUCTION SECRETS IN THIS FILE NOR IN ANY OTHER COMMITTED FILES.

###> symfony/framework-bundle ###
APP_ENV=dev
APP_SECRET=
###< symfony/framework-bundle ###

###> doctrine/doctrine-bundle ###
DATABASE_URL="postgresql://app:{V}@127.0.0.1:5432/webshop?serverVersion=16&charset=utf8"
###< doctrine/doctrine-bundle ###

###> symfony/messenger ###
MESSENGER_TRANSPORT_DSN=doctrine://default?auto_setup=0
###< symfony/messenger ###

###> lexik/jwt-authentication-bundle ###
JWT_SECRET_KEY=%kernel.project_dir%/config/jwt/private.pem
JWT_PUBLIC_KEY=%kernel.project_dir%/config/jwt/public.pem
JWT_PASSPHRASE={V2}
###< lexik/jwt-authentication-bundle ###

ADYEN_API_KEY={V3}
ADYEN_MERCHANT_ACCOUNT=SunmereFoodsECOM
""",
)

_t(
    "webshop/.env.prod",
    "h14_url_pw",
    True,
    r"""
###> symfony/framework-bundle ###
APP_ENV=prod
APP_DEBUG=0
###< symfony/framework-bundle ###

DATABASE_URL="postgresql://webshop:{V}@10.40.2.15:5432/webshop?serverVersion=16&charset=utf8"
REDIS_URL=redis://default:{V2}@10.40.2.20:6379/0
MAILER_DSN=smtp://shop%40sunmere.eu:{V3}@smtp-relay.sunmere.eu:587
MESSENGER_TRANSPORT_DSN=amqp://shop:{V4}@rabbitmq.shop.sunmere.internal:5672/%2f/messages
""",
)

_t(
    "webshop/.env.prod.local",
    "h14_app_secret",
    True,
    r"""
# generated by bin/console secrets:generate-keys? no - copied from the old server by hand
APP_SECRET={V}
ALGOLIA_APP_ID=K7Q2ZP4M1X
ALGOLIA_ADMIN_API_KEY={V2}
""",
)

_t(
    "webshop/.env.test",
    "h14_fake",
    False,
    r"""
# define your env variables for the test env here
KERNEL_CLASS='App\Kernel'
APP_SECRET='{V}'
SYMFONY_DEPRECATIONS_HELPER=999999
PANTHER_APP_ENV=panther
PANTHER_ERROR_SCREENSHOT_DIR=./var/error-screenshots
ADYEN_API_KEY={V2}
MOLLIE_API_KEY={V3}
KLARNA_PASSWORD={V4}
""",
)

_t(
    "webshop/config/packages/adyen.yaml",
    "h14_ref_php",
    False,
    r"""
# Adyen payments (cards, iDEAL, Bancontact, Swish). Keys live in Symfony secrets (prod vault).
adyen:
    environment: '%env(ADYEN_ENVIRONMENT)%'
    merchant_account: SunmereFoodsECOM
    api_key: '{V}'
    hmac_key: '{V2}'
    live_endpoint_prefix: 'a1b2c3d4e5f6a7b8-SunmereFoods'
    payment_methods:
        - scheme
        - ideal
        - bancontact_card
        - swish
        - klarna_paynow
""",
)

_t(
    "webshop/config/packages/prod/adyen.yaml",
    "h14_adyen_key",
    True,
    r"""
# TEMP while the secrets vault is broken on the new cluster (INC-20931), revert after!
adyen:
    environment: live
    merchant_account: SunmereFoodsECOM
    api_key: '{V}'
    live_endpoint_prefix: 'a1b2c3d4e5f6a7b8-SunmereFoods'
""",
)

_t(
    "webshop/config/packages/adyen_webhook.yaml",
    "h14_adyen_hmac",
    True,
    r"""
# HMAC key from Customer Area > Developers > Webhooks > "Sunmere ECOM standard notification".
adyen_webhook:
    path: /webhooks/adyen
    basic_auth:
        user: adyen_notify
    hmac_keys:
        SunmereFoodsECOM: '{V}'
        SunmereFoodsPOS: '{V2}'
""",
)

_t(
    "webshop/assets/checkout/adyen-dropin.js",
    "h14_adyen_client_key",
    False,
    r"""
import AdyenCheckout from '@adyen/adyen-web';
import '@adyen/adyen-web/dist/adyen.css';

// Client keys are public by design (they only work from the allowed origins below).
const CLIENT_KEYS = {
  'www.sunmere.fr': '{V}',
  'www.sunmere.nl': '{V2}',
  'www.sunmere.se': '{V3}',
};

export async function mountDropin(el, session) {
  const checkout = await AdyenCheckout({
    environment: 'live',
    clientKey: CLIENT_KEYS[window.location.hostname],
    session,
    locale: document.documentElement.lang,
    onPaymentCompleted: (result) => {
      window.location.assign(`/checkout/done?result=${result.resultCode}`);
    },
  });
  checkout.create('dropin').mount(el);
}
""",
)

_t(
    "webshop/src/Payment/MollieClientFactory.php",
    "h14_mollie_key",
    True,
    r"""
<?php

declare(strict_types=1);

namespace App\Payment;

use Mollie\Api\MollieApiClient;

/**
 * Mollie is only used for the Dutch shop (iDEAL fallback when Adyen is down).
 */
final class MollieClientFactory
{
    // FIXME: move to secrets before go-live NL (SHOP-1288)
    private const API_KEY = '{V}';

    public static function create(?string $apiKey = null): MollieApiClient
    {
        $client = new MollieApiClient();
        $client->setApiKey($apiKey ?? self::API_KEY);

        return $client;
    }
}
""",
)

_t(
    "webshop/src/Payment/KlarnaClient.php",
    "h14_ref_php",
    False,
    r"""
<?php

declare(strict_types=1);

namespace App\Payment;

use Symfony\Component\DependencyInjection\Attribute\Autowire;
use Symfony\Contracts\HttpClient\HttpClientInterface;

final class KlarnaClient
{
    public function __construct(
        private readonly HttpClientInterface $http,
        #[Autowire('%env(KLARNA_USERNAME)%')] private readonly string $username,
        #[Autowire('{V}')] private readonly string $password,
    ) {
    }

    public function createSession(array $order): array
    {
        return $this->http->request('POST', 'https://api.klarna.com/payments/v1/sessions', [
            'auth_basic' => [$this->username, $this->password],
            'json' => $order,
        ])->toArray();
    }
}
""",
)

_t(
    "webshop/config/services_klarna_se.yaml",
    "h14_klarna_secret",
    True,
    r"""
# Swedish shop: Klarna is the default payment method. Credentials from Klarna Merchant Portal
# (Settings > Klarna API credentials), created by Erik L. on 2024-04-17.
parameters:
    klarna.se.username: 'PK47711_9c2e0b1d4f3a'
    klarna.se.password: '{V}'

services:
    App\Payment\KlarnaClient $klarnaSe:
        class: App\Payment\KlarnaClient
        arguments:
            $username: '%klarna.se.username%'
            $password: '%klarna.se.password%'
""",
)

_t(
    "webshop/translations/security.fr.yaml",
    "h14_i18n",
    False,
    r"""
login:
    title: Connexion à votre espace
    email: Adresse e-mail
    password: '{V}'
    forgot: '{V2}'
    submit: Se connecter
reset:
    title: Réinitialiser le mot de passe
    too_short: '{V3}'
    mismatch: Les mots de passe ne correspondent pas
""",
)

_t(
    "webshop/translations/security.nl.yaml",
    "h14_i18n",
    False,
    r"""
login:
    title: Inloggen bij Mijn Sunmere
    email: E-mailadres
    password: Wachtwoord
    forgot: '{V}'
    submit: Inloggen
reset:
    title: Wachtwoord opnieuw instellen
    expired: '{V2}'
    mismatch: De wachtwoorden komen niet overeen
""",
)

_t(
    "webshop/tests/Functional/CheckoutTest.php",
    "h14_fake",
    False,
    r"""
<?php

namespace App\Tests\Functional;

use Symfony\Bundle\FrameworkBundle\Test\WebTestCase;

final class CheckoutTest extends WebTestCase
{
    private const CUSTOMER_EMAIL = 'checkout-test@sunmere.invalid';
    private const CUSTOMER_PASSWORD = '{V}';

    public function testGuestCanPayWithMockedAdyen(): void
    {
        $client = static::createClient();
        $client->getContainer()->set('adyen.api_key', '{V2}');

        $client->request('GET', '/fr/panier');
        self::assertResponseIsSuccessful();

        $client->submitForm('Payer', ['email' => self::CUSTOMER_EMAIL]);
        self::assertResponseRedirects('/fr/commande/confirmation');
    }
}
""",
)

_t(
    "webshop/tests/bootstrap_staging.php",
    "h14_pw",
    True,
    r"""
<?php
// Smoke tests against staging (run by the "smoke" GitHub workflow after each deploy).
$_SERVER['SMOKE_BASE_URL'] = 'https://staging.sunmere.fr';
$_SERVER['SMOKE_ADMIN_USER'] = 'smoke-admin@sunmere.eu';
$_SERVER['SMOKE_ADMIN_PASSWORD'] = $_ENV['SMOKE_ADMIN_PASSWORD'] ?? '{V}';
$_SERVER['SMOKE_BASIC_AUTH'] = 'staging:{V2}';

require dirname(__DIR__).'/vendor/autoload.php';
""",
)

_t(
    "webshop/docker-compose.yml",
    "h14_placeholder",
    False,
    r"""
services:
###> doctrine/doctrine-bundle ###
  database:
    image: postgres:${POSTGRES_VERSION:-16}-alpine
    environment:
      POSTGRES_DB: ${POSTGRES_DB:-app}
      # You should definitely change the password in production
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-{V}}
      POSTGRES_USER: ${POSTGRES_USER:-app}
    healthcheck:
      test: ["CMD", "pg_isready", "-d", "${POSTGRES_DB:-app}", "-U", "${POSTGRES_USER:-app}"]
      timeout: 5s
      retries: 5
      start_period: 60s
    volumes:
      - database_data:/var/lib/postgresql/data:rw
###< doctrine/doctrine-bundle ###

###> symfony/mailer ###
  mailer:
    image: axllent/mailpit
    ports:
      - "1025"
      - "8025"
###< symfony/mailer ###

volumes:
###> doctrine/doctrine-bundle ###
  database_data:
###< doctrine/doctrine-bundle ###
""",
)

_t(
    "webshop/docker-compose.override.yml",
    "h14_weak_pw",
    True,
    r"""
# Shared dev box (dev-shop-01.sunmere.local), reachable from the office network.
services:
  database:
    ports:
      - "5432:5432"
    environment:
      POSTGRES_PASSWORD: {V}
  rabbitmq:
    image: rabbitmq:3.13-management
    ports:
      - "5672:5672"
      - "15672:15672"
    environment:
      RABBITMQ_DEFAULT_USER: shop
      RABBITMQ_DEFAULT_PASS: {V2}
""",
)

_t(
    "webshop/public/.htpasswd",
    "h14_apr1",
    False,
    r"""
staging:{V}
agence-crea:{V2}
qa-nl:{V3}
""",
)

_t(
    "loyalty/api/.env",
    "h14_pw",
    True,
    r"""
NODE_ENV=production
PORT=8080
LOG_LEVEL=info

PGHOST=10.40.3.11
PGPORT=5432
PGDATABASE=loyalty
PGUSER=loyalty_api
PGPASSWORD={V}

REDIS_URL=rediss://:{V2}@loyalty-cache.sunmere.internal:6380

POINTS_EXPIRY_MONTHS=24
CARD_PREFIX=2400
""",
)

_t(
    "loyalty/api/.env.example",
    "h14_placeholder",
    False,
    r"""
NODE_ENV=development
PORT=8080
PGHOST=localhost
PGDATABASE=loyalty
PGUSER=loyalty_api
PGPASSWORD={V}
REDIS_URL=redis://:{V2}@localhost:6379
SENDGRID_API_KEY={V3}
FCM_SERVER_KEY=
""",
)

_t(
    "loyalty/api/src/notifications/push.ts",
    "h14_fcm_key",
    True,
    r"""
import fetch from 'node-fetch';
import { logger } from '../logger';

// Legacy FCM HTTP API (the v1 migration is tracked in LOY-412).
const FCM_URL = 'https://fcm.googleapis.com/fcm/send';
const FCM_SERVER_KEY = process.env.FCM_SERVER_KEY || '{V}';

export async function sendOfferPush(deviceToken: string, title: string, body: string): Promise<void> {
  const res = await fetch(FCM_URL, {
    method: 'POST',
    headers: {
      Authorization: `key=${FCM_SERVER_KEY}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({ to: deviceToken, notification: { title, body } }),
  });
  if (!res.ok) {
    logger.warn({ status: res.status }, 'fcm push failed');
  }
}
""",
)

_t(
    "loyalty/api/src/mail/sendgrid.ts",
    "h14_ref_js",
    False,
    r"""
import sgMail from '@sendgrid/mail';

sgMail.setApiKey({V});

const TEMPLATES: Record<string, string> = {
  fr: 'd-7f0c2b1e9a4d4c55b6a1e3f20c9d8e71',
  nl: 'd-2a9e4f6b8c0d4e1fa3b5c7d9e1f30a52',
  sv: 'd-5c1e3a7b9d2f4a6c8e0b1d3f5a7c9e13',
};

export async function sendWelcome(email: string, locale: 'fr' | 'nl' | 'sv', firstName: string) {
  await sgMail.send({
    to: email,
    from: { email: 'fidelite@sunmere.eu', name: 'Sunmere' },
    templateId: TEMPLATES[locale],
    dynamicTemplateData: { firstName },
  });
}
""",
)

_t(
    "loyalty/api/scripts/backfill_welcome_mails.js",
    "h14_sendgrid",
    True,
    r"""
#!/usr/bin/env node
// One-off: resend welcome mails for members created during the outage of 2024-05-14.
// Usage: node scripts/backfill_welcome_mails.js members.csv
const fs = require('fs');
const sgMail = require('@sendgrid/mail');

sgMail.setApiKey('{V}');

const rows = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').slice(1);
(async () => {
  for (const row of rows) {
    const [email, locale, firstName] = row.split(';');
    await sgMail.send({
      to: email,
      from: 'fidelite@sunmere.eu',
      templateId: 'd-7f0c2b1e9a4d4c55b6a1e3f20c9d8e71',
      dynamicTemplateData: { firstName, locale },
    });
    console.log('sent', email);
  }
})();
""",
)

_t(
    "loyalty/api/test/members.int.test.ts",
    "h14_jwt",
    True,
    r"""
import request from 'supertest';

// Integration tests against loyalty-api-acc; token issued for the QA service account,
// valid until end of the sprint (renew with `make qa-token`).
const BASE = 'https://loyalty-api-acc.sunmere.eu';
const TOKEN = '{V}';

describe('GET /v2/members/:card', () => {
  it('returns the member for a known card', async () => {
    const res = await request(BASE)
      .get('/v2/members/2400012345678')
      .set('Authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.body.tier).toBe('GOLD');
  });
});
""",
)

_t(
    "loyalty/api/test/points.test.ts",
    "h14_fake",
    False,
    r"""
import { computePoints } from '../src/points';
import { signToken } from './helpers/jwt';

const TEST_SIGNING_SECRET = '{V}';

describe('computePoints', () => {
  it('gives 1 point per euro rounded down', () => {
    expect(computePoints({ amountCents: 1999, tier: 'BASIC' })).toBe(19);
  });

  it('doubles points for GOLD members', () => {
    expect(computePoints({ amountCents: 1000, tier: 'GOLD' })).toBe(20);
  });

  it('accepts tokens signed with the test secret', () => {
    const token = signToken({ sub: 'test-member' }, TEST_SIGNING_SECRET);
    expect(token.split('.')).toHaveLength(3);
  });
});
""",
)

_t(
    "loyalty/app/.env.production",
    "h14_api_key",
    True,
    r"""
# react-native-config - production build (App Store / Play Store)
API_URL=https://loyalty-api.sunmere.eu/v2
LOYALTY_API_KEY={V}
SENTRY_ENVIRONMENT=production
FEATURE_DIGITAL_RECEIPTS=true
""",
)

_t(
    "loyalty/app/src/api/client.ts",
    "h14_ref_js",
    False,
    r"""
import axios from 'axios';
import Config from 'react-native-config';
import { getAccessToken } from '../auth/session';

export const api = axios.create({
  baseURL: Config.API_URL,
  timeout: 8000,
  headers: { 'X-Api-Key': {V} },
});

api.interceptors.request.use(async (config) => {
  const token = await getAccessToken();
  if (token) {
    config.headers.Authorization = `Bearer ${token}`;
  }
  return config;
});
""",
)

_t(
    "loyalty/app/src/i18n/sv.json",
    "h14_i18n",
    False,
    r"""
{
  "login": {
    "title": "Logga in på Sunmere Plus",
    "email": "E-postadress",
    "password": "Lösenord",
    "forgot": "{V}",
    "error": "{V2}"
  },
  "card": {
    "title": "Mitt kundkort",
    "points": "{{count}} poäng"
  }
}
""",
)

_t(
    "loyalty/app/android/app/build.gradle.kts",
    "h14_ref_gradle",
    False,
    r"""
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("com.google.gms.google-services")
}

android {
    namespace = "eu.sunmere.plus"
    compileSdk = 34

    defaultConfig {
        applicationId = "eu.sunmere.plus"
        minSdk = 26
        targetSdk = 34
        versionCode = 412
        versionName = "4.12.0"
    }

    signingConfigs {
        create("release") {
            storeFile = file("../keystores/sunmere-plus-upload.jks")
            storePassword = {V}
            keyAlias = "upload"
            keyPassword = {V2}
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            signingConfig = signingConfigs.getByName("release")
        }
    }
}
""",
)

_t(
    "loyalty/app/android/keystore.properties",
    "h14_pw",
    True,
    r"""
# Upload keystore for Google Play (Play App Signing holds the real app key)
storeFile=../keystores/sunmere-plus-upload.jks
storePassword={V}
keyAlias=upload
keyPassword={V2}
""",
)

_t(
    "loyalty/app/android/app/src/main/AndroidManifest.xml",
    "h14_gcp_api_key",
    True,
    r"""
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android">

    <uses-permission android:name="android.permission.INTERNET" />
    <uses-permission android:name="android.permission.ACCESS_FINE_LOCATION" />

    <application
        android:name=".MainApplication"
        android:label="@string/app_name"
        android:icon="@mipmap/ic_launcher"
        android:allowBackup="false"
        android:theme="@style/AppTheme">

        <!-- Store finder map -->
        <meta-data
            android:name="com.google.android.geo.API_KEY"
            android:value="{V}" />

        <activity
            android:name=".MainActivity"
            android:exported="true"
            android:launchMode="singleTask">
            <intent-filter>
                <action android:name="android.intent.action.MAIN" />
                <category android:name="android.intent.category.LAUNCHER" />
            </intent-filter>
        </activity>
    </application>
</manifest>
""",
)

_t(
    "loyalty/app/android/app/src/main/java/eu/sunmere/plus/receipts/ReceiptsRepository.kt",
    "h14_api_key",
    True,
    r"""
package eu.sunmere.plus.receipts

import okhttp3.OkHttpClient
import okhttp3.Request
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

class ReceiptsRepository(private val http: OkHttpClient) {

    // Digital receipts service (separate from the loyalty API, own key)
    private val receiptsKey = "{V}"

    suspend fun latest(cardNumber: String): String = withContext(Dispatchers.IO) {
        val req = Request.Builder()
            .url("https://receipts.sunmere.eu/v1/cards/$cardNumber/receipts?limit=20")
            .header("X-Receipts-Key", receiptsKey)
            .build()
        http.newCall(req).execute().use { it.body?.string().orEmpty() }
    }
}
""",
)

_t(
    "loyalty/app/ios/SunmerePlus/Config/Secrets.swift",
    "h14_ref_swift",
    False,
    r"""
import Foundation

/// Values injected at build time from the CI (xcconfig -> Info.plist). Nothing secret is
/// committed here; see docs/ios-build.md.
enum Secrets {
    static let loyaltyApiKey: String = {V}
    static let receiptsKey: String = {V2}
}
""",
)

_t(
    "loyalty/app/ios/SunmerePlus/Config/AppConfig.swift",
    "h14_api_key",
    True,
    r"""
import Foundation

enum AppConfig {
    static let apiBaseURL = URL(string: "https://loyalty-api.sunmere.eu/v2")!
    static let receiptsBaseURL = URL(string: "https://receipts.sunmere.eu/v1")!

    // TODO(LOY-377): read from Info.plist like Android does
    static let loyaltyApiKey = "{V}"
    static let receiptsKey = "{V2}"

    static let supportedLocales = ["fr_FR", "nl_NL", "sv_SE", "en_GB"]
}
""",
)

_t(
    "loyalty/app/ios/fastlane/AuthKey_apns.p8",
    "h14_pkcs8_key",
    True,
    r"""
{V}
""",
)

_t(
    "loyalty/app/ios/fastlane/Appfile",
    "h14_apns_key_id",
    False,
    r"""
app_identifier("eu.sunmere.plus")
apple_id("mobile-releases@sunmere.eu")
team_id("{V}")

# App Store Connect API key (the .p8 itself is in the CI secret store, not here)
ENV["APP_STORE_CONNECT_API_KEY_KEY_ID"] ||= "{V2}"
ENV["APP_STORE_CONNECT_API_KEY_ISSUER_ID"] ||= "69a6de7f-03e4-47e3-e053-5b8c7c11a4d1"
""",
)

_t(
    "loyalty/app/ios/fastlane/Fastfile",
    "h14_pw",
    True,
    r"""
default_platform(:ios)

platform :ios do
  desc "Build and upload to TestFlight"
  lane :beta do
    setup_ci
    match(
      type: "appstore",
      readonly: true,
      git_url: "git@github.com:sunmere-foods/ios-certificates.git",
      # match decrypts the certificates repo with this passphrase
      password: "{V}"
    )
    increment_build_number(xcodeproj: "SunmerePlus.xcodeproj")
    build_app(scheme: "SunmerePlus", export_method: "app-store")
    upload_to_testflight(skip_waiting_for_build_processing: true)
  end
end
""",
)

_t(
    "webshop/search/algolia-front.js",
    "h14_algolia_search",
    False,
    r"""
import algoliasearch from 'algoliasearch/lite';
import instantsearch from 'instantsearch.js';

// Search-only API key: safe to expose in the browser (ACL: search, indices: products_*).
const searchClient = algoliasearch('K7Q2ZP4M1X', '{V}');

const search = instantsearch({
  indexName: `products_${document.documentElement.lang}`,
  searchClient,
});

search.start();
""",
)

_t(
    "webshop/search/reindex.php",
    "h14_algolia_admin",
    True,
    r"""
<?php
// Nightly full reindex of the product catalogue (cron on shop-worker-01, 02:30).
require __DIR__.'/../vendor/autoload.php';

use Algolia\AlgoliaSearch\SearchClient;

$client = SearchClient::create('K7Q2ZP4M1X', '{V}');

foreach (['fr', 'nl', 'sv'] as $locale) {
    $index = $client->initIndex("products_{$locale}");
    $records = json_decode(file_get_contents("/var/exports/catalogue_{$locale}.json"), true);
    $index->replaceAllObjects($records, ['safe' => true]);
    echo "reindexed {$locale}: ".count($records)."\n";
}
""",
)


# ============================================================================ factory OT
_t(
    "factory/ot-gateway/mosquitto/mosquitto.conf",
    "h14_mqtt_pw",
    True,
    r"""
# Mosquitto on ot-gw-01 (Plant Rennes). Bridges line telemetry to the central broker.
per_listener_settings true

listener 1883 10.61.0.10
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl

listener 8883
certfile /etc/mosquitto/certs/ot-gw-01.crt
keyfile /etc/mosquitto/certs/ot-gw-01.key
cafile /etc/mosquitto/certs/sunmere-ot-ca.crt
require_certificate false
password_file /etc/mosquitto/passwd

connection central-bridge
address mqtt.ot.sunmere.eu:8883
bridge_protocol_version mqttv311
remote_clientid bridge-rennes-01
remote_username bridge_rennes
remote_password {V}
bridge_cafile /etc/mosquitto/certs/sunmere-ot-ca.crt
topic plant/rennes/# out 1
topic plant/rennes/cmd/# in 1
""",
)

_t(
    "factory/ot-gateway/mosquitto/passwd",
    "h14_mosquitto_hash",
    False,
    r"""
nodered:{V}
telegraf:{V2}
plc-bridge-l1:{V3}
plc-bridge-l2:{V4}
grafana-live:{V5}
""",
)

_t(
    "factory/ot-gateway/mosquitto/passwd.plain",
    "h14_mqtt_pw",
    True,
    r"""
# input for mosquitto_passwd -U (delete after running!)
nodered:{V}
telegraf:{V2}
plc-bridge-l1:{V3}
plc-bridge-l2:{V4}
""",
)

_t(
    "factory/ot-gateway/node-red/settings.js",
    "h14_nodered_secret",
    True,
    r"""
/**
 * Node-RED settings for ot-gw-01 (Plant Rennes). Only the values we changed from the
 * defaults are kept here; see https://nodered.org/docs/user-guide/runtime/configuration
 */
module.exports = {
    flowFile: 'flows.json',
    // Key used to encrypt flows_cred.json. If it changes, all node credentials are lost.
    credentialSecret: "{V}",

    uiPort: process.env.PORT || 1880,
    uiHost: "10.61.0.10",

    adminAuth: {
        type: "credentials",
        users: [
            {
                username: "otadmin",
                password: "$2b$08$wuAqPiKJlVN27eF5qJp.RuQYuy6ZYONW7a/UWYxDTtwKFCdB8F19y",
                permissions: "*"
            },
            {
                username: "viewer",
                password: "$2b$08$KzH1Gd0nF3mY8pQ2sV6tXeZ4rB7cL9aJ1uW5oE3iR8yT0vN6mP2Qq",
                permissions: "read"
            }
        ]
    },

    httpNodeAuth: { user: "line-hmi", pass: "$2b$08$Qm3nR8sT1vW4xY7zA0bC2dE5fG8hJ1kL4mN7pQ0rS3tU6vW9xY2zA" },

    logging: { console: { level: "info", metrics: false, audit: false } },
    editorTheme: { projects: { enabled: false } },
    functionGlobalContext: { plant: "rennes" }
};
""",
)

_t(
    "factory/ot-gateway/node-red/settings.local.js",
    "h14_bcrypt",
    False,
    r"""
module.exports = {
    flowFile: 'flows.json',
    credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET,
    adminAuth: {
        type: "credentials",
        users: [
            { username: "otadmin", password: "{V}", permissions: "*" },
            { username: "maintenance", password: "{V2}", permissions: ["flows.read", "nodes.read"] },
            { username: "viewer", password: "{V3}", permissions: "read" }
        ]
    },
    httpNodeAuth: { user: "line-hmi", pass: "{V4}" }
};
""",
)

_t(
    "factory/ot-gateway/node-red/flows_cred.json",
    "h14_nodered_cred",
    False,
    r"""
{"$":"{V}"}
""",
)

_t(
    "factory/ot-gateway/node-red/flows.json",
    "h14_mqtt_pw",
    True,
    r"""
[
    {
        "id": "a41f0c2e9b7d3a10",
        "type": "tab",
        "label": "Line 1 - filler telemetry",
        "disabled": false
    },
    {
        "id": "5c2e8f1a0b3d4e6f",
        "type": "mqtt-broker",
        "name": "central broker",
        "broker": "mqtt.ot.sunmere.eu",
        "port": "8883",
        "tls": "e1b0c9d8a7f6e5d4",
        "clientid": "nodered-rennes",
        "usetls": true,
        "protocolVersion": "4",
        "keepalive": "60",
        "cleansession": true,
        "credentials": {
            "user": "nodered",
            "password": "{V}"
        }
    },
    {
        "id": "9d8c7b6a5f4e3d2c",
        "type": "OpcUa-Endpoint",
        "endpoint": "opc.tcp://plc-l1-filler.factory.sunmere.local:4840",
        "secpol": "Basic256Sha256",
        "secmode": "SignAndEncrypt",
        "login": true,
        "credentials": {
            "user": "nodered",
            "password": "{V2}"
        }
    },
    {
        "id": "1f2e3d4c5b6a7980",
        "type": "OpcUa-Client",
        "z": "a41f0c2e9b7d3a10",
        "endpoint": "9d8c7b6a5f4e3d2c",
        "action": "subscribe",
        "time": "1",
        "timeUnit": "s",
        "name": "filler counters",
        "wires": [["3a4b5c6d7e8f9012"]]
    }
]
""",
)

_t(
    "factory/ot-gateway/opcua-client/config.yaml",
    "h14_pw",
    True,
    r"""
# opcua-collector: polls the line PLCs (Siemens S7-1500 with OPC UA server) every second
# and writes to InfluxDB. One entry per PLC.
influx:
  url: https://influx.ot.sunmere.eu:8086
  org: sunmere-ot
  bucket: plant-rennes
  token_file: /run/secrets/influx_token

plcs:
  - name: L1-filler
    endpoint: opc.tcp://plc-l1-filler.factory.sunmere.local:4840
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    username: opcua_collector
    password: "{V}"
    nodes:
      - ns=3;s="DB_Counters"."BottlesOk"
      - ns=3;s="DB_Counters"."BottlesReject"
  - name: L2-pasteuriser
    endpoint: opc.tcp://plc-l2-past.factory.sunmere.local:4840
    security_policy: Basic256Sha256
    security_mode: Sign
    username: opcua_collector
    password: "{V2}"
    nodes:
      - ns=3;s="DB_Temp"."OutletTemp"
""",
)

_t(
    "factory/ot-gateway/opcua-client/trusted/plc-l1-filler.der.txt",
    "h14_thumbprint",
    False,
    r"""
OPC UA application instance certificates trusted by opcua-collector (SHA-1 thumbprints, as
shown in TIA Portal > Security settings > Certificate manager):

plc-l1-filler    {V}   valid to 2027-03-01
plc-l2-past      {V2}  valid to 2027-03-01
opcua-collector  {V3}  valid to 2026-11-15
""",
)

_t(
    "factory/ot-gateway/opcua-client/collector.py",
    "h14_ref_py",
    False,
    r"""
import asyncio
import logging
import os

from asyncua import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

log = logging.getLogger("opcua-collector")

ENDPOINT = os.environ.get("OPCUA_ENDPOINT", "opc.tcp://plc-l1-filler.factory.sunmere.local:4840")
USERNAME = os.environ.get("OPCUA_USER", "opcua_collector")
PASSWORD = {V}


async def main() -> None:
    client = Client(url=ENDPOINT)
    client.set_user(USERNAME)
    client.set_password(PASSWORD)
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate="/etc/opcua/collector.der",
        private_key="/etc/opcua/collector.pem",
    )
    async with client:
        node = client.get_node('ns=3;s="DB_Counters"."BottlesOk"')
        while True:
            log.info("bottles ok: %s", await node.read_value())
            await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
""",
)

_t(
    "factory/ot-gateway/opcua-client/certs/collector.pem",
    "h14_rsa_key",
    True,
    r"""
{V}
""",
)

_t(
    "factory/ot-gateway/telegraf/telegraf.conf",
    "h14_influx_token",
    True,
    r"""
[agent]
  interval = "10s"
  round_interval = true
  flush_interval = "10s"
  hostname = "ot-gw-01"

[[outputs.influxdb_v2]]
  urls = ["https://influx.ot.sunmere.eu:8086"]
  token = "{V}"
  organization = "sunmere-ot"
  bucket = "plant-rennes"
  tls_ca = "/etc/telegraf/sunmere-ot-ca.crt"

[[inputs.mqtt_consumer]]
  servers = ["tcp://10.61.0.10:1883"]
  topics = ["plant/rennes/+/telemetry"]
  username = "telegraf"
  password = "{V2}"
  data_format = "json"
  json_time_key = "ts"
  json_time_format = "unix_ms"
""",
)

_t(
    "factory/ot-gateway/telegraf/telegraf.d/outputs.conf",
    "h14_ref_ot",
    False,
    r"""
[[outputs.influxdb_v2]]
  urls = ["https://influx.ot.sunmere.eu:8086"]
  ## token read from the environment file written by systemd-creds
  token = "{V}"
  organization = "sunmere-ot"
  bucket = "plant-${PLANT}"

[[inputs.mqtt_consumer]]
  servers = ["tcp://127.0.0.1:1883"]
  topics = ["plant/+/+/telemetry"]
  username = "telegraf"
  password = "{V2}"
""",
)

_t(
    "factory/grafana/provisioning/datasources/influx.yaml",
    "h14_influx_token",
    True,
    r"""
apiVersion: 1

datasources:
  - name: InfluxDB plants
    type: influxdb
    access: proxy
    url: https://influx.ot.sunmere.eu:8086
    jsonData:
      version: Flux
      organization: sunmere-ot
      defaultBucket: plant-rennes
      tlsSkipVerify: false
    secureJsonData:
      token: {V}
    isDefault: true
    editable: false
""",
)

_t(
    "factory/grafana/provisioning/datasources/sql.yaml",
    "h14_ref_ot",
    False,
    r"""
apiVersion: 1

datasources:
  - name: MES (SQL Server)
    type: mssql
    url: sql-mes.factory.sunmere.local:1433
    user: grafana_ro
    jsonData:
      database: MES
      encrypt: "true"
    secureJsonData:
      password: {V}
  - name: InfluxDB plants
    type: influxdb
    url: https://influx.ot.sunmere.eu:8086
    jsonData:
      version: Flux
      organization: sunmere-ot
    secureJsonData:
      token: {V2}
""",
)

_t(
    "factory/grafana/grafana.ini",
    "h14_vendor_default",
    True,
    r"""
[server]
protocol = http
http_port = 3000
domain = grafana.ot.sunmere.eu
root_url = https://grafana.ot.sunmere.eu/

[security]
admin_user = admin
admin_password = {V}
disable_gravatar = true
cookie_secure = true

[auth.anonymous]
enabled = true
org_name = Plant screens
org_role = Viewer

[smtp]
enabled = true
host = smtp-relay.sunmere.eu:587
from_address = grafana-ot@sunmere.eu
""",
)

_t(
    "factory/grafana/scripts/export_dashboards.sh",
    "h14_grafana_key",
    True,
    r"""
#!/usr/bin/env bash
# Exports all dashboards of the OT Grafana to git (run weekly by a Jenkins job).
set -euo pipefail
GRAFANA=https://grafana.ot.sunmere.eu
TOKEN="${GRAFANA_TOKEN:-{V}}"
OUT=dashboards

mkdir -p "$OUT"
for uid in $(curl -sf -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/search?type=dash-db" | jq -r '.[].uid'); do
  curl -sf -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/dashboards/uid/$uid" \
    | jq '.dashboard' > "$OUT/$uid.json"
done
git add "$OUT" && git commit -qm "dashboards: weekly export" || true
""",
)

_t(
    "factory/grafana/dashboards/line-oee.json",
    "h14_uuid",
    False,
    r"""
{
  "uid": "line-oee-rennes",
  "title": "Rennes - Line OEE",
  "tags": ["rennes", "oee"],
  "timezone": "Europe/Paris",
  "panels": [
    {
      "id": 1,
      "type": "stat",
      "title": "OEE L1",
      "datasource": { "type": "influxdb", "uid": "{V}" },
      "targets": [
        {
          "refId": "A",
          "query": "from(bucket: \"plant-rennes\") |> range(start: -8h) |> filter(fn: (r) => r._measurement == \"oee\" and r.line == \"L1\") |> last()"
        }
      ]
    },
    {
      "id": 2,
      "type": "timeseries",
      "title": "Pasteuriser outlet temperature",
      "datasource": { "type": "influxdb", "uid": "{V}" },
      "targets": [{ "refId": "A", "query": "from(bucket: \"plant-rennes\") |> range(start: -8h)" }]
    }
  ],
  "annotations": { "list": [{ "datasource": { "type": "grafana", "uid": "{V2}" }, "name": "Shift change" }] }
}
""",
)

_t(
    "factory/plc-gateway/kepware/project_notes.txt",
    "h14_vendor_default",
    True,
    r"""
KEPServerEX 6.14 - ot-gw-02 (Plant Oss, NL)
===========================================

Channels:
  CH_L3_Siemens    S7-1500, 10.62.3.20, rack 0 slot 1
  CH_L4_AB         ControlLogix 5580, 10.62.4.20, path 1,0
  CH_Utilities     Modbus TCP, 10.62.9.0/24

Admin (Settings > User Manager): Administrator / {V}
  -> never changed since commissioning by the integrator (Van Rijn Automation), see OT-233

OPC UA endpoint: opc.tcp://ot-gw-02.factory.sunmere.local:49320 (Basic256Sha256, Sign&Encrypt)
IoT Gateway agent "mqtt-central" publishes to mqtt.ot.sunmere.eu:8883 as bridge_oss
""",
)

_t(
    "factory/plc-gateway/s7-bridge/src/main.c",
    "h14_pw",
    True,
    r"""
/*
 * s7-bridge: reads DB100 from the line PLCs with snap7 and publishes to MQTT.
 * Runs on the Revolution Pi next to each line (Plant Skövde).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "snap7.h"
#include "MQTTClient.h"

#define MQTT_ADDRESS   "ssl://mqtt.ot.sunmere.eu:8883"
#define MQTT_CLIENTID  "s7-bridge-skovde-l1"
#define MQTT_USER      "plc-bridge-l1"
#define MQTT_PASS      "{V}"
#define PLC_ADDRESS    "10.63.1.20"

int main(void)
{
    S7Object plc = Cli_Create();
    MQTTClient client;
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;

    if (Cli_ConnectTo(plc, PLC_ADDRESS, 0, 1) != 0) {
        fprintf(stderr, "plc connect failed\n");
        return 1;
    }
    MQTTClient_create(&client, MQTT_ADDRESS, MQTT_CLIENTID, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    ssl.trustStore = "/etc/s7-bridge/sunmere-ot-ca.crt";
    opts.ssl = &ssl;
    opts.username = MQTT_USER;
    opts.password = MQTT_PASS;
    if (MQTTClient_connect(client, &opts) != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "mqtt connect failed\n");
        return 2;
    }
    for (;;) {
        unsigned char buf[64];
        Cli_DBRead(plc, 100, 0, sizeof buf, buf);
        MQTTClient_publish(client, "plant/skovde/l1/raw", sizeof buf, buf, 0, 0, NULL);
        sleep(1);
    }
}
""",
)

_t(
    "factory/docs/ot-network-sv.md",
    "h14_redacted",
    False,
    r"""
# OT-nätverk Skövde - översikt

| System | Adress | Konto | Lösenord |
|---|---|---|---|
| Revolution Pi L1 | 10.63.1.10 | pi | {V} |
| Revolution Pi L2 | 10.63.2.10 | pi | {V2} |
| HMI L1 (WinCC Unified) | 10.63.1.30 | operator | {V3} |
| Switch OT-core | 10.63.0.2 | admin | {V4} |

Alla lösenord finns i KeePass-filen `OT-Skovde.kdbx` på `\\fs-skovde\ot$` (nyckelfil hos
underhållschefen). Skriv aldrig in dem här.
""",
)

_t(
    "factory/docs/ot-network-nl.md",
    "h14_any_pw",
    True,
    r"""
# OT-netwerk Oss - overdracht van Van Rijn Automation (2023-09)

Opgeleverd door de integrator; nog niet alles is aangepast naar onze standaard.

- Revolution Pi lijn 3: `pi` / `{V}` (SSH aan, alleen vanaf het OT-beheer-VLAN)
- HMI lijn 3 (Siemens Comfort Panel): gebruiker `Service`, wachtwoord `{V2}`
- Kepware (ot-gw-02): `Administrator` / `{V3}`
- Moxa-switches: web-login `admin`, wachtwoord `{V4}`

Actiepunt OT-233: alle fabriekswachtwoorden wijzigen vóór de audit in Q4.
""",
)

# ============================================================================ cold chain IoT
_t(
    "coldchain/firmware/src/lorawan_keys.h",
    "h14_lora_bytes",
    True,
    r"""
/*
 * LoRaWAN 1.0.3 OTAA keys for the reefer sensor pilot batch (20 units, The Things Stack).
 * Generated in the TTS console; one header per device is produced by tools/gen_keys.py.
 * Device: sunmere-reefer-0007
 */
#ifndef LORAWAN_KEYS_H
#define LORAWAN_KEYS_H

#include <stdint.h>

/* DevEUI and JoinEUI are printed on the device label; LSB first for LMIC */
static const uint8_t DEVEUI[8]  = { 0x0E, 0x1A, 0x77, 0x00, 0x00, 0xD5, 0xB3, 0x70 };
static const uint8_t APPEUI[8]  = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };

/* AppKey is MSB first */
static const uint8_t APPKEY[16] = { {V} };

#endif /* LORAWAN_KEYS_H */
""",
)

_t(
    "coldchain/firmware/src/lorawan_abp.h",
    "h14_lora_bytes",
    True,
    r"""
/* ABP fallback for trucks that never see a gateway during join (Swedish northern routes). */
#ifndef LORAWAN_ABP_H
#define LORAWAN_ABP_H

#include <stdint.h>

#define ABP_DEVADDR 0x260B4C7Au

static const uint8_t NWKSKEY[16] = { {V} };
static const uint8_t APPSKEY[16] = { {V2} };

#endif
""",
)

_t(
    "coldchain/firmware/src/device_ids.h",
    "h14_dev_eui",
    False,
    r"""
/* Device identities of the pilot batch (public: printed on the label, registered in TTS). */
#ifndef DEVICE_IDS_H
#define DEVICE_IDS_H

#define JOIN_EUI_STR   "{V}"

static const char *const DEV_EUIS[] = {
    "{V2}",
    "{V3}",
    "{V4}",
    "{V5}",
};

#endif
""",
)

_t(
    "coldchain/firmware/src/wifi_config.h",
    "h14_pw",
    True,
    r"""
/* Wi-Fi provisioning for the DC (distribution centre) version with ESP32 gateway. */
#ifndef WIFI_CONFIG_H
#define WIFI_CONFIG_H

#define WIFI_SSID          "SUNMERE-IOT-DC1"
#define WIFI_PASSWORD      "{V}"
#define WIFI_FALLBACK_SSID "SUNMERE-IOT-DC1-B"
#define WIFI_FALLBACK_PASS "{V2}"

#define MQTT_HOST "mqtt.coldchain.sunmere.eu"
#define MQTT_PORT 8883

#endif
""",
)

_t(
    "coldchain/firmware/src/wifi_config.example.h",
    "h14_placeholder",
    False,
    r"""
/* Copy to wifi_config.h (ignored by git) and fill in for your site. */
#ifndef WIFI_CONFIG_H
#define WIFI_CONFIG_H

#define WIFI_SSID          "your-ssid"
#define WIFI_PASSWORD      "{V}"
#define WIFI_FALLBACK_SSID ""
#define WIFI_FALLBACK_PASS "{V2}"

#define MQTT_HOST "mqtt.coldchain.sunmere.eu"
#define MQTT_PORT 8883

#endif
""",
)

_t(
    "coldchain/devices/reefer-pilot.csv",
    "h14_lora_key",
    True,
    r"""
device_id,dev_eui,join_eui,app_key,truck,installed
sunmere-reefer-0001,70B3D57ED0051A01,0000000000000000,{V},TRK-FR-2231,2024-03-04
sunmere-reefer-0002,70B3D57ED0051A02,0000000000000000,{V2},TRK-FR-2232,2024-03-04
sunmere-reefer-0003,70B3D57ED0051A03,0000000000000000,{V3},TRK-NL-1107,2024-03-11
sunmere-reefer-0004,70B3D57ED0051A04,0000000000000000,{V4},TRK-SE-0412,2024-03-18
""",
)

_t(
    "coldchain/devices/reefer-pilot-public.csv",
    "h14_dev_eui",
    False,
    r"""
device_id,dev_eui,join_eui,truck,installed,notes
sunmere-reefer-0001,{V},0000000000000000,TRK-FR-2231,2024-03-04,
sunmere-reefer-0002,{V2},0000000000000000,TRK-FR-2232,2024-03-04,battery swapped 2024-05
sunmere-reefer-0003,{V3},0000000000000000,TRK-NL-1107,2024-03-11,
sunmere-reefer-0004,{V4},0000000000000000,TRK-SE-0412,2024-03-18,antenna moved to roof
""",
)

_t(
    "coldchain/uplink/ttn_client.py",
    "h14_ttn_key",
    True,
    r"""
"Pull stored uplinks from The Things Stack (Storage Integration) and write them to BigQuery."

import datetime as dt
import json

import requests
from google.cloud import bigquery

TTS = "https://sunmere.eu1.cloud.thethings.industries/api/v3"
APP_ID = "reefer-pilot"
API_KEY = "{V}"  # key "uplink-export", rights: application traffic read

bq = bigquery.Client(project="sunmere-analytics")


def fetch(since: dt.datetime) -> list[dict]:
    res = requests.get(
        f"{TTS}/as/applications/{APP_ID}/packages/storage/uplink_message",
        headers={"Authorization": f"Bearer {API_KEY}", "Accept": "text/event-stream"},
        params={"after": since.isoformat() + "Z"},
        timeout=60,
    )
    res.raise_for_status()
    return [json.loads(line)["result"] for line in res.text.splitlines() if line.strip()]


def main() -> None:
    rows = fetch(dt.datetime.utcnow() - dt.timedelta(hours=1))
    errors = bq.insert_rows_json("sunmere-analytics.coldchain.uplinks_raw", rows)
    if errors:
        raise SystemExit(errors)


if __name__ == "__main__":
    main()
""",
)

_t(
    "coldchain/uplink/ttn_client_v2.py",
    "h14_ref_py",
    False,
    r"""
"Same as ttn_client.py, but the API key comes from Secret Manager."

import requests

TTS = "https://sunmere.eu1.cloud.thethings.industries/api/v3"
APP_ID = "reefer-pilot"


def api_key() -> str:
    return {V}


def devices() -> list[dict]:
    res = requests.get(
        f"{TTS}/applications/{APP_ID}/devices",
        headers={"Authorization": f"Bearer {api_key()}"},
        timeout=30,
    )
    res.raise_for_status()
    return res.json()["end_devices"]
""",
)

_t(
    "coldchain/uplink/decoder.py",
    "h14_dev_eui",
    False,
    r"""
"Decode the 11-byte reefer payload (temperature x2, humidity, door, battery)."

import struct

# Units whose door sensor is mounted upside down (door bit inverted).
INVERTED_DOOR = {"{V}", "{V2}"}


def decode(dev_eui: str, payload: bytes) -> dict:
    t1, t2, rh, flags, batt = struct.unpack(">hhHBH", payload[:9])
    door_open = bool(flags & 0x01)
    if dev_eui.upper() in INVERTED_DOOR:
        door_open = not door_open
    return {
        "temp_supply_c": t1 / 100,
        "temp_return_c": t2 / 100,
        "humidity_pct": rh / 100,
        "door_open": door_open,
        "battery_mv": batt,
    }
""",
)

_t(
    "coldchain/uplink/mqtt_ingest.py",
    "h14_mqtt_pw",
    True,
    r"""
import json
import os
import ssl

import paho.mqtt.client as mqtt

from decoder import decode

BROKER = os.getenv("COLDCHAIN_BROKER", "mqtt.coldchain.sunmere.eu")
USER = os.getenv("COLDCHAIN_MQTT_USER", "ingest")
PASSWORD = os.getenv("COLDCHAIN_MQTT_PASSWORD", "{V}")


def on_message(client, userdata, msg):
    data = json.loads(msg.payload)
    print(decode(data["dev_eui"], bytes.fromhex(data["payload_hex"])))


client = mqtt.Client(client_id="coldchain-ingest-01")
client.username_pw_set(USER, PASSWORD)
client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
client.on_message = on_message
client.connect(BROKER, 8883)
client.subscribe("coldchain/+/uplink", qos=1)
client.loop_forever()
""",
)

_t(
    "coldchain/tests/test_decoder.py",
    "h14_fake",
    False,
    r"""
import pytest

from decoder import decode
from ttn_client import fetch

FAKE_TTN_KEY = "{V}"


def test_decodes_temperatures():
    payload = bytes.fromhex("FF9C00C81F400100E10000")
    out = decode("70B3D57ED0051A01", payload)
    assert out["temp_supply_c"] == -1.0
    assert out["temp_return_c"] == 2.0


@pytest.mark.usefixtures("responses_mock")
def test_fetch_sends_bearer(responses_mock, monkeypatch):
    monkeypatch.setattr("ttn_client.API_KEY", FAKE_TTN_KEY)
    fetch(__import__("datetime").datetime(2024, 1, 1))
    assert responses_mock.calls[0].request.headers["Authorization"] == f"Bearer {FAKE_TTN_KEY}"
""",
)

_t(
    "coldchain/docs/gateway-setup-fr.md",
    "h14_lora_key",
    True,
    r"""
# Installation d'une passerelle LoRaWAN en entrepôt (Kerlink iFemtoCell)

1. Brancher la passerelle sur le VLAN IoT (port bleu du switch de quai).
2. Dans la console TTS, application `reefer-pilot`, ajouter le capteur de test :
   - DevEUI : imprimé sur l'étiquette
   - JoinEUI : `0000000000000000`
   - AppKey : `{V}`
3. Vérifier dans *Live data* que le join passe (message `Join-accept`).
4. Pour le capteur de secours livré dans la valise, l'AppKey est `{V2}`.

En cas de problème : canal Teams *Chaîne du froid - IoT*.
""",
)


# ============================================================================ analytics
_t(
    "analytics/dbt/profiles.yml",
    "h14_gcp_sa_key",
    True,
    r"""
sunmere_analytics:
  target: prod
  outputs:
    prod:
      type: bigquery
      method: service-account-json
      project: sunmere-analytics
      dataset: marts
      location: EU
      threads: 8
      job_execution_timeout_seconds: 600
      keyfile_json:
        type: service_account
        project_id: sunmere-analytics
        private_key_id: 3f1c9a7e52b04d18a6e0c2f95b7d31e48a0c6f27
        private_key: "{V}"
        client_email: dbt-runner@sunmere-analytics.iam.gserviceaccount.com
        client_id: "108274619305827461923"
        auth_uri: https://accounts.google.com/o/oauth2/auth
        token_uri: https://oauth2.googleapis.com/token
        auth_provider_x509_cert_url: https://www.googleapis.com/oauth2/v1/certs
""",
)

_t(
    "analytics/dbt/profiles.ci.yml",
    "h14_ref_sh",
    False,
    r"""
sunmere_analytics:
  target: ci
  outputs:
    ci:
      type: bigquery
      method: service-account
      project: sunmere-analytics-ci
      dataset: "ci_{{ env_var('GITHUB_RUN_ID', 'local') }}"
      keyfile: "{{ env_var('DBT_KEYFILE', '/tmp/sa.json') }}"
      location: EU
      threads: 4
    snowflake_legacy:
      type: snowflake
      account: sunmere-eu.west-europe.azure
      user: DBT_CI
      password: "{{ env_var('SNOWFLAKE_PASSWORD') }}"
      # old form, kept for the migration notes: password: {V}
      role: TRANSFORMER
      database: LEGACY
      warehouse: DBT_XS
      schema: staging
""",
)

_t(
    "analytics/dbt/models/staging/stg_loyalty__members.sql",
    "h14_hash",
    False,
    r"""
{{ config(materialized='view') }}

-- Card numbers are pseudonymised with a salted SHA-256 before they reach the warehouse.
-- The values below are the hashes of the three internal test cards, excluded from reports.
with source as (
    select * from {{ source('loyalty', 'members') }}
),

renamed as (
    select
        member_id,
        card_hash,
        tier,
        cast(created_at as timestamp) as created_at,
        country_code
    from source
    where card_hash not in (
        '{V}',
        '{V2}',
        '{V3}'
    )
)

select * from renamed
""",
)

_t(
    "analytics/gcp/sa-looker-bq.json",
    "h14_gcp_sa_key",
    True,
    r"""
{
  "type": "service_account",
  "project_id": "sunmere-analytics",
  "private_key_id": "b7e20c4f9a1d83e6052f7c9b1a4e8d3c6f0a2b95",
  "private_key": "{V}",
  "client_email": "looker-bq@sunmere-analytics.iam.gserviceaccount.com",
  "client_id": "117395026481930264718",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
  "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/looker-bq%40sunmere-analytics.iam.gserviceaccount.com",
  "universe_domain": "googleapis.com"
}
""",
)

_t(
    "analytics/gcp/service-accounts.md",
    "h14_key_id",
    False,
    r"""
# Service accounts (sunmere-analytics)

| Account | Used by | Key id | Created | Rotation |
|---|---|---|---|---|
| dbt-runner@ | dbt Cloud / GitHub Actions | `{V}` | 2024-02-01 | 90 days |
| looker-bq@ | Looker connection `bq_prod` | `{V2}` | 2024-01-15 | 90 days |
| coldchain-ingest@ | coldchain uplink job | `{V3}` | 2024-03-20 | 90 days |

Keys are stored in Secret Manager (`sa-key-<name>`); this table only lists the key ids so
that a leaked key can be matched and disabled quickly (`gcloud iam service-accounts keys disable`).
""",
)

_t(
    "analytics/looker/looker.ini",
    "h14_looker_secret",
    True,
    r"""
[Looker]
# Base URL for API. Do not include /api/* in the url
base_url=https://sunmere.eu.looker.com:19999
# API client_id
client_id=Z8gq4HdKx2PmV7tR1nWc
# API client_secret
client_secret={V}
verify_ssl=True
timeout=120

[Looker_staging]
base_url=https://sunmere-staging.eu.looker.com:19999
client_id=Q3vB9nM2xK7cL1pT8rWz
client_secret={V2}
verify_ssl=True
""",
)

_t(
    "analytics/looker/looker.example.ini",
    "h14_looker_client_id",
    False,
    r"""
[Looker]
# Copy to looker.ini. Ask #data-platform for an API3 key pair; the secret is only shown once.
base_url=https://sunmere.eu.looker.com:19999
client_id={V}
client_secret=
verify_ssl=True

[Looker_staging]
base_url=https://sunmere-staging.eu.looker.com:19999
client_id={V2}
client_secret=
""",
)

_t(
    "analytics/looker/sunmere_sales.model.lkml",
    "h14_placeholder",
    False,
    r"""
connection: "bq_prod"

include: "/views/**/*.view.lkml"

datagroup: nightly_etl {
  sql_trigger: SELECT MAX(loaded_at) FROM marts.etl_runs ;;
  max_cache_age: "24 hours"
}

# The connection itself (Admin > Connections > bq_prod) uses the looker-bq service account.
# Its JSON key is uploaded in the UI; the "password" field there must stay "{V}".

explore: store_sales {
  label: "Ventes magasins / Winkelverkopen / Butiksförsäljning"
  join: stores {
    type: left_outer
    sql_on: ${store_sales.store_id} = ${stores.store_id} ;;
    relationship: many_to_one
  }
}
""",
)

_t(
    "analytics/notebooks/shrinkage_analysis.ipynb",
    "h14_gcp_sa_key_nb",
    True,
    r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": [
    "# Shrinkage fresh produce - Q2 (NL stores)\n",
    "Quick look for the category managers. Uses the dbt-runner SA because mine has no access to `marts`."
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "from google.cloud import bigquery\n",
    "from google.oauth2 import service_account\n",
    "\n",
    "info = {\n",
    "    \"type\": \"service_account\",\n",
    "    \"project_id\": \"sunmere-analytics\",\n",
    "    \"private_key\": \"{V}\",\n",
    "    \"client_email\": \"dbt-runner@sunmere-analytics.iam.gserviceaccount.com\",\n",
    "    \"token_uri\": \"https://oauth2.googleapis.com/token\",\n",
    "}\n",
    "creds = service_account.Credentials.from_service_account_info(info)\n",
    "bq = bigquery.Client(project=\"sunmere-analytics\", credentials=creds)"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "df = bq.query(\"SELECT store_id, category, SUM(shrink_eur) AS shrink FROM marts.fct_shrinkage WHERE country='NL' GROUP BY 1,2\").to_dataframe()\n",
    "df.sort_values('shrink', ascending=False).head(20)"
   ]
  }
 ],
 "metadata": {
  "kernelspec": { "display_name": "Python 3", "language": "python", "name": "python3" },
  "language_info": { "name": "python", "version": "3.11.6" }
 },
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
)

_t(
    "analytics/notebooks/promo_uplift_se.ipynb",
    "h14_gcp_num",
    False,
    r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "Authenticated as user credentials via google.auth.default()\n",
      "project number: {V}\n",
      "job id: bquxjob_5b1e0c7d_18f3a2c9d41\n"
     ]
    }
   ],
   "source": [
    "import google.auth\n",
    "from google.cloud import bigquery\n",
    "creds, project = google.auth.default()\n",
    "bq = bigquery.Client(project='sunmere-analytics', credentials=creds)\n",
    "print('project number:', bq.get_project().number)"
   ]
  },
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": [
    "## Kampanjeffekt vecka 23 (Sverige)\n",
    "Service account used by the scheduled version: client id {V2}"
   ]
  }
 ],
 "metadata": { "kernelspec": { "name": "python3", "display_name": "Python 3" } },
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
)

_t(
    "analytics/dbt/.github/workflows/dbt-cloud-trigger.yml",
    "h14_dbt_token",
    True,
    r"""
name: Trigger dbt Cloud job

on:
  workflow_dispatch:
  schedule:
    - cron: "15 4 * * *"

jobs:
  trigger:
    runs-on: ubuntu-latest
    steps:
      - name: Trigger nightly job
        env:
          DBT_CLOUD_ACCOUNT_ID: "70403"
          DBT_CLOUD_JOB_ID: "241187"
          # TODO use secrets.DBT_CLOUD_TOKEN, this is the token of the old service user
          DBT_CLOUD_TOKEN: {V}
        run: |
          curl -sf -X POST \
            -H "Authorization: Token $DBT_CLOUD_TOKEN" \
            -H "Content-Type: application/json" \
            -d '{"cause": "GitHub schedule"}' \
            "https://emea.dbt.com/api/v2/accounts/$DBT_CLOUD_ACCOUNT_ID/jobs/$DBT_CLOUD_JOB_ID/run/"
""",
)

_t(
    "analytics/airflow/dags/coldchain_export.py",
    "h14_pw",
    True,
    r"""
from datetime import datetime

from airflow import DAG
from airflow.providers.sftp.operators.sftp import SFTPOperator
from airflow.providers.ssh.hooks.ssh import SSHHook

# Nordkyl (transport partner) receives a daily CSV of reefer temperatures for their trucks.
nordkyl = SSHHook(
    remote_host="sftp.nordkyl.se",
    username="sunmere_coldchain",
    password="{V}",
    port=22,
)

with DAG(
    dag_id="coldchain_export_nordkyl",
    start_date=datetime(2024, 4, 1),
    schedule="30 5 * * *",
    catchup=False,
    tags=["coldchain", "partner"],
) as dag:
    SFTPOperator(
        task_id="upload",
        ssh_hook=nordkyl,
        local_filepath="/data/exports/coldchain/nordkyl_{{ ds_nodash }}.csv",
        remote_filepath="/inbound/sunmere/nordkyl_{{ ds_nodash }}.csv",
        operation="put",
    )
""",
)

# ============================================================================ infrastructure
_t(
    "infra/terraform/gcp/cloudsql.tf",
    "h14_pw",
    True,
    r"""
resource "google_sql_database_instance" "loyalty" {
  name             = "loyalty-pg16-prod"
  database_version = "POSTGRES_16"
  region           = "europe-west1"

  settings {
    tier              = "db-custom-4-16384"
    availability_type = "REGIONAL"
    ip_configuration {
      ipv4_enabled    = false
      private_network = data.google_compute_network.shared.id
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }
  }
}

resource "google_sql_user" "loyalty_api" {
  name     = "loyalty_api"
  instance = google_sql_database_instance.loyalty.name
  password = "{V}"
}

resource "google_sql_user" "looker_ro" {
  name     = "looker_ro"
  instance = google_sql_database_instance.loyalty.name
  password = "{V2}"
}
""",
)

_t(
    "infra/terraform/gcp/cloudsql_v2.tf",
    "h14_ref_tf",
    False,
    r"""
resource "random_password" "cloudsql" {
  length  = 32
  special = true
}

resource "google_sql_user" "loyalty_api" {
  name     = "loyalty_api"
  instance = google_sql_database_instance.loyalty.name
  password = {V}
}

resource "google_secret_manager_secret_version" "loyalty_db" {
  secret      = google_secret_manager_secret.loyalty_db.id
  secret_data = {V2}
}
""",
)

_t(
    "infra/terraform/gcp/terraform.tfvars",
    "h14_any_pw",
    True,
    r"""
project_id          = "sunmere-prod-platform"
region              = "europe-west1"
gke_cluster_name    = "gke-prod-ew1"
pos_sql_password    = "{V}"
influx_admin_token  = "{V2}"
looker_db_password  = "{V3}"
alert_email         = "platform-alerts@sunmere.eu"
""",
)

_t(
    "infra/terraform/gcp/variables.tf",
    "h14_placeholder",
    False,
    r"""
variable "pos_sql_password" {
  description = "Password of the POS central SQL login (set in terraform.tfvars, not in git)"
  type        = string
  sensitive   = true
  default     = "{V}"
}

variable "influx_admin_token" {
  description = "Operator token of the OT InfluxDB"
  type        = string
  sensitive   = true
}

variable "looker_db_password" {
  type      = string
  sensitive = true
  default   = "{V2}"
}
""",
)

_t(
    "infra/terraform/gcp/provider.tf",
    "h14_gcp_sa_key",
    True,
    r"""
terraform {
  required_version = ">= 1.6"
  backend "gcs" {
    bucket = "sunmere-tfstate-prod"
    prefix = "platform"
  }
  required_providers {
    google = { source = "hashicorp/google", version = "~> 5.30" }
  }
}

# Inline credentials while the workload identity federation for Jenkins is being set up.
provider "google" {
  project     = "sunmere-prod-platform"
  region      = "europe-west1"
  credentials = <<EOF
{
  "type": "service_account",
  "project_id": "sunmere-prod-platform",
  "private_key_id": "0c5e2a9f7b1d4c83e6a0f2b9d7c5e1a3f8b6d4c2",
  "private_key": "{V}",
  "client_email": "terraform@sunmere-prod-platform.iam.gserviceaccount.com",
  "client_id": "104928371650293847561",
  "token_uri": "https://oauth2.googleapis.com/token"
}
EOF
}
""",
)

_t(
    "infra/terraform/gcp/.terraform.lock.hcl",
    "h14_digest",
    False,
    r"""
# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/google" {
  version     = "5.30.0"
  constraints = "~> 5.30"
  hashes = [
    "zh:{V}",
    "zh:{V2}",
    "zh:{V3}",
  ]
}
""",
)

_t(
    "infra/terraform/onprem/vsphere.auto.tfvars",
    "h14_pw",
    True,
    r"""
vsphere_server   = "vcsa-dc1.sunmere.local"
vsphere_user     = "svc-terraform@vsphere.local"
vsphere_password = "{V}"
datacenter       = "DC1-Rennes"
cluster          = "CL-Prod-01"
datastore        = "vsanDatastore"
template_windows = "tpl-win2022-store"
""",
)

_t(
    "infra/ansible/group_vars/store_servers/vars.yml",
    "h14_ref_ansible",
    False,
    r"""
ansible_connection: winrm
ansible_winrm_transport: ntlm
ansible_winrm_server_cert_validation: ignore
ansible_user: STORES\svc_ansible
ansible_password: "{V}"

store_sql_instance: STSRV\POS
store_sql_sa_password: "{V2}"
store_backup_share: \\fs-region-north\storebackups
""",
)

_t(
    "infra/ansible/group_vars/store_servers/vault.yml",
    "h14_ansible_vault",
    False,
    r"""
{V}
""",
)

_t(
    "infra/ansible/group_vars/ot_gateways.yml",
    "h14_pw",
    True,
    r"""
# OT gateways (Debian 12 on industrial PCs). Managed from ansible-ot.factory.sunmere.local only.
ansible_user: otadmin
ansible_become: true
ansible_become_password: "{V}"

mosquitto_bridge_user: bridge_{{ plant }}
mosquitto_bridge_password: "{V2}"
node_red_version: "3.1.9"
telegraf_version: "1.30.2"
""",
)

_t(
    "infra/ansible/roles/store_monitoring/defaults/main.yml",
    "h14_encrypted",
    False,
    r"""
---
zabbix_agent_version: "6.4"
zabbix_server: zbx-proxy-north.stores.sunmere.local
zabbix_tls_psk_identity: stores-psk-2024
# Encrypted with the platform key (decrypted by the sops/vault lookup at runtime)
zabbix_tls_psk: "{V}"
zabbix_mssql_password: "{V2}"
""",
)

_t(
    "infra/ansible/inventory/hosts.ini",
    "h14_vendor_default",
    True,
    r"""
[store_servers]
STSRV-0142.stores.sunmere.local
STSRV-0218.stores.sunmere.local
STSRV-0305.stores.sunmere.local

[ot_gateways]
ot-gw-01.factory.sunmere.local plant=rennes
ot-gw-02.factory.sunmere.local plant=oss
ot-gw-03.factory.sunmere.local plant=skovde

[revpi]
# Revolution Pis next to the lines still have the image default login
revpi-l1.factory.sunmere.local ansible_user=pi ansible_password={V}
revpi-l2.factory.sunmere.local ansible_user=pi ansible_password={V2}
""",
)

_t(
    "infra/k8s/loyalty/secret.yaml",
    "h14_b64_pw",
    True,
    r"""
apiVersion: v1
kind: Secret
metadata:
  name: loyalty-api-db
  namespace: loyalty
  labels:
    app.kubernetes.io/name: loyalty-api
type: Opaque
data:
  PGUSER: bG95YWx0eV9hcGk=
  PGPASSWORD: {V}
  REDIS_PASSWORD: {V2}
""",
)

_t(
    "infra/k8s/loyalty/sealedsecret.yaml",
    "h14_sealed",
    False,
    r"""
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: loyalty-api-db
  namespace: loyalty
spec:
  encryptedData:
    PGPASSWORD: {V}
    REDIS_PASSWORD: {V2}
  template:
    metadata:
      name: loyalty-api-db
      namespace: loyalty
    type: Opaque
""",
)

_t(
    "infra/k8s/webshop/secret-adyen.yaml",
    "h14_adyen_key",
    True,
    r"""
apiVersion: v1
kind: Secret
metadata:
  name: webshop-payments
  namespace: webshop
type: Opaque
stringData:
  ADYEN_API_KEY: "{V}"
  ADYEN_MERCHANT_ACCOUNT: SunmereFoodsECOM
""",
)

_t(
    "infra/k8s/webshop/deployment.yaml",
    "h14_digest",
    False,
    r"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: webshop-php
  namespace: webshop
spec:
  replicas: 6
  selector:
    matchLabels: { app: webshop-php }
  template:
    metadata:
      labels: { app: webshop-php }
    spec:
      containers:
        - name: php
          image: europe-west1-docker.pkg.dev/sunmere-prod-platform/webshop/php@{V}
          envFrom:
            - secretRef: { name: webshop-payments }
          env:
            - name: DATABASE_PASSWORD
              valueFrom:
                secretKeyRef: { name: webshop-db, key: password }
        - name: nginx
          image: europe-west1-docker.pkg.dev/sunmere-prod-platform/webshop/nginx@{V2}
          ports:
            - containerPort: 8080
""",
)

_t(
    "infra/helm/loyalty-api/values-prod.yaml",
    "h14_sendgrid",
    True,
    r"""
replicaCount: 4

image:
  repository: europe-west1-docker.pkg.dev/sunmere-prod-platform/loyalty/api
  tag: "4.12.0"

ingress:
  enabled: true
  className: nginx
  hosts:
    - host: loyalty-api.sunmere.eu
      paths: [{ path: /, pathType: Prefix }]

env:
  NODE_ENV: production
  POINTS_EXPIRY_MONTHS: "24"

secrets:
  sendgridApiKey: "{V}"
  fcmServerKey: ""

resources:
  requests: { cpu: 250m, memory: 256Mi }
  limits: { memory: 512Mi }
""",
)

_t(
    "infra/helm/loyalty-api/templates/secret.yaml",
    "h14_ref_helm",
    False,
    r"""
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "loyalty-api.fullname" . }}
  labels:
    {{- include "loyalty-api.labels" . | nindent 4 }}
type: Opaque
stringData:
  PGPASSWORD: {V}
  SENDGRID_API_KEY: {V2}
  MQTT_PASSWORD: {V3}
""",
)

_t(
    "infra/helm/ot-stack/values.yaml",
    "h14_vendor_default",
    True,
    r"""
# OT observability stack on the on-prem k3s cluster in Plant Rennes.
grafana:
  adminUser: admin
  adminPassword: {V}
  ingress:
    enabled: true
    hosts: [grafana-rennes.factory.sunmere.local]

influxdb2:
  adminUser:
    organization: sunmere-ot
    bucket: plant-rennes
    user: admin
    password: {V2}
  persistence:
    size: 200Gi

rabbitmq:
  auth:
    username: guest
    password: {V3}
""",
)

_t(
    "infra/helm/ot-stack/values-secrets.sops.yaml",
    "h14_sops",
    False,
    r"""
grafana:
    adminPassword: {V}
influxdb2:
    adminUser:
        password: {V2}
        token: {V3}
sops:
    kms: []
    gcp_kms:
        - resource_id: projects/sunmere-prod-platform/locations/europe-west1/keyRings/sops/cryptoKeys/ot-stack
          created_at: "2024-04-09T08:12:55Z"
          enc: CiQA3f0c9Q7m1XkB2vW8sF4tR6yH0nJ5pL3aZ9eC1uD7gK2iM4oSSQBv
    lastmodified: "2024-04-09T08:12:57Z"
    mac: ENC[AES256_GCM,data:Q2V5pK8nR1tW4yZ7bC0eF3hJ6mN9qS2uX5zA8dG1jL4=,iv:7pM2sV5yB8eH1kN4qT7wZ0cF3iL6oR9uX2aD5gJ8mP1=,tag:yB4eH7kN0qT3wZ6cF9iL2o==,type:str]
    version: 3.8.1
""",
)

_t(
    "infra/nginx/sites-available/shop-staging.conf",
    "h14_basic_b64",
    True,
    r"""
upstream shop_staging {
    server 10.40.8.21:8080;
    server 10.40.8.22:8080;
}

server {
    listen 443 ssl http2;
    server_name staging.sunmere.fr staging.sunmere.nl staging.sunmere.se;

    ssl_certificate     /etc/nginx/tls/staging.sunmere.crt;
    ssl_certificate_key /etc/nginx/tls/staging.sunmere.key;

    auth_basic "Sunmere staging";
    auth_basic_user_file /etc/nginx/htpasswd/staging;

    location / {
        proxy_pass http://shop_staging;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }

    # The PIM behind us needs its own basic auth (the browser's header is replaced)
    location /pim/ {
        proxy_pass https://pim.sunmere.internal/;
        proxy_set_header Authorization "Basic {V}";
    }
}
""",
)

_t(
    "infra/nginx/htpasswd/staging",
    "h14_apr1",
    False,
    r"""
staging:{V}
qa:{V2}
agence-crea:{V3}
adyen-review:{V4}
""",
)

_t(
    "infra/nginx/tls/staging.sunmere.key",
    "h14_ec_key",
    True,
    r"""
{V}
""",
)

_t(
    "infra/nginx/tls/staging.sunmere.crt",
    "h14_cert",
    False,
    r"""
{V}
""",
)

_t(
    "infra/docker/edi-gateway/Dockerfile",
    "h14_pw",
    True,
    r"""
FROM eclipse-temurin:21-jre-jammy

ARG NEXUS_USER=ci-deploy
ARG NEXUS_PASSWORD={V}

RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN curl -fsSL -u "${NEXUS_USER}:${NEXUS_PASSWORD}" \
      -o /opt/edigw.jar \
      https://nexus.sunmere.local/repository/releases/eu/sunmere/edigw/3.4.1/edigw-3.4.1.jar

COPY config/application.properties /opt/config/application.properties
EXPOSE 8443
USER 10001
ENTRYPOINT ["java", "-jar", "/opt/edigw.jar", "--spring.config.additional-location=/opt/config/"]
""",
)

_t(
    "infra/docker/edi-gateway/Dockerfile.secure",
    "h14_ref_sh",
    False,
    r"""
# syntax=docker/dockerfile:1.7
FROM eclipse-temurin:21-jre-jammy

RUN --mount=type=secret,id=nexus \
    curl -fsSL -u "ci-deploy:{V}" -o /opt/edigw.jar \
      https://nexus.sunmere.local/repository/releases/eu/sunmere/edigw/3.4.1/edigw-3.4.1.jar

ENV EDIGW_SFTP_PASSWORD={V2}
EXPOSE 8443
USER 10001
ENTRYPOINT ["java", "-jar", "/opt/edigw.jar"]
""",
)

_t(
    "infra/vault/policies/README.md",
    "h14_vault_token",
    True,
    r"""
# Vault policies (on-prem Vault for the store estate)

Apply with:

```bash
export VAULT_ADDR=https://vault.sunmere.local:8200
export VAULT_TOKEN={V}   # platform-admin token, expires end of June (ask Karin for a new one)
vault policy write stores-read policies/stores-read.hcl
vault policy write ot-read policies/ot-read.hcl
```

The token above has `create`/`update` on `sys/policies/acl/*` only.
""",
)

# ============================================================================ CI
_t(
    ".github/workflows/webshop-deploy.yml",
    "h14_ref_gha",
    False,
    r"""
name: Deploy webshop

on:
  push:
    branches: [main]

permissions:
  contents: read
  id-token: write

jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: production
    steps:
      - uses: actions/checkout@v4
      - uses: google-github-actions/auth@v2
        with:
          credentials_json: {V}
      - uses: google-github-actions/get-gke-credentials@v2
        with:
          cluster_name: gke-prod-ew1
          location: europe-west1
      - name: Helm upgrade
        env:
          ADYEN_API_KEY: {V2}
        run: |
          helm upgrade --install webshop ./helm/webshop -n webshop \
            --set payments.adyenApiKey="$ADYEN_API_KEY" --wait
""",
)

_t(
    ".github/workflows/loyalty-app-release.yml",
    "h14_github",
    True,
    r"""
name: Loyalty app release

on:
  workflow_dispatch:
    inputs:
      track:
        description: Play track
        default: internal

jobs:
  android:
    runs-on: ubuntu-latest
    env:
      # PAT of the sunmere-release-bot, needed to push the version tag to the private repo
      RELEASE_BOT_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
        with:
          token: ${{ env.RELEASE_BOT_TOKEN }}
      - uses: actions/setup-node@v4
        with:
          node-version: 20
      - run: npm ci
      - run: cd android && ./gradlew bundleRelease
      - run: |
          git tag "android-$(jq -r .version package.json)"
          git push origin --tags
""",
)

_t(
    ".github/workflows/backoffice-nuget.yml",
    "h14_nuget",
    True,
    r"""
name: Publish back-office packages

on:
  push:
    tags: ["bo-v*"]

jobs:
  pack:
    runs-on: windows-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-dotnet@v4
        with:
          dotnet-version: 8.0.x
      - run: dotnet pack src/Sunmere.BackOffice.Contracts -c Release -o out
      - run: dotnet nuget push "out/*.nupkg" --api-key {V} --source https://api.nuget.org/v3/index.json --skip-duplicate
""",
)

_t(
    ".github/workflows/notify.yml",
    "h14_slack_webhook",
    True,
    r"""
name: Notify on failure

on:
  workflow_run:
    workflows: ["Deploy webshop", "Loyalty app release"]
    types: [completed]

jobs:
  slack:
    if: ${{ github.event.workflow_run.conclusion == 'failure' }}
    runs-on: ubuntu-latest
    steps:
      - run: |
          curl -sf -X POST -H 'Content-type: application/json' \
            --data "{\"text\":\"${{ github.event.workflow_run.name }} failed: ${{ github.event.workflow_run.html_url }}\"}" \
            {V}
""",
)

_t(
    "ci/jenkins/Jenkinsfile.edi",
    "h14_ref_jenkins",
    False,
    r"""
pipeline {
    agent { label 'linux' }
    environment {
        NEXUS = credentials('nexus-deploy')
        SONAR_TOKEN = {V}
    }
    stages {
        stage('Build') {
            steps { sh './mvnw -B -ntp verify' }
        }
        stage('Sonar') {
            steps { sh './mvnw -B sonar:sonar -Dsonar.token=$SONAR_TOKEN' }
        }
        stage('Publish') {
            when { branch 'main' }
            steps {
                sh './mvnw -B deploy -DaltDeploymentRepository=nexus::https://nexus.sunmere.local/repository/releases -Dnexus.password=$NEXUS_PSW'
            }
        }
    }
    post {
        failure { slackSend channel: '#edi-dev', message: "EDI build failed: ${env.BUILD_URL}" }
    }
}
""",
)

_t(
    "ci/jenkins/Jenkinsfile.stores",
    "h14_sql_pw",
    True,
    r"""
pipeline {
    agent { label 'windows' }
    parameters {
        string(name: 'STORE', defaultValue: '0142', description: 'Store number')
    }
    stages {
        stage('Build') {
            steps { bat 'dotnet publish src\\Sunmere.BackOffice.Api -c Release -o out' }
        }
        stage('DB migrate') {
            steps {
                bat "sqlcmd -S STSRV-${params.STORE}.stores.sunmere.local\\SQLEXPRESS -U bo_migrator -P {V} -i sql\\migrations\\latest.sql"
            }
        }
        stage('Deploy') {
            steps { powershell ".\\stores\\scripts\\Deploy-StoreServer.v2.ps1 -StoreNumber ${params.STORE} -Build ${env.BUILD_NUMBER}" }
        }
    }
}
""",
)

_t(
    "ci/jenkins/casc/jenkins.yaml",
    "h14_jenkins_secret",
    False,
    r"""
jenkins:
  systemMessage: "Sunmere Jenkins (EDI, stores, OT). Managed by JCasC - do not edit in the UI."
  numExecutors: 0
  securityRealm:
    ldap:
      configurations:
        - server: ldaps://ldap.sunmere.local
          rootDN: dc=sunmere,dc=local
          managerDN: cn=svc-jenkins,ou=services,dc=sunmere,dc=local
          managerPasswordSecret: "{V}"
credentials:
  system:
    domainCredentials:
      - credentials:
          - usernamePassword:
              scope: GLOBAL
              id: nexus-deploy
              username: ci-deploy
              password: "{V2}"
          - string:
              scope: GLOBAL
              id: sonar-token
              secret: "{V3}"
""",
)

_t(
    "ci/jenkins/scripts/trigger_remote.sh",
    "h14_jenkins_token",
    True,
    r"""
#!/bin/sh
# Called by the OT GitLab (factory network) to start the deploy job on the central Jenkins.
JENKINS=https://jenkins.sunmere.local
JOB=ot/deploy-node-red
curl -sf -X POST -u "svc-ot-trigger:{V}" \
  "$JENKINS/job/$JOB/buildWithParameters?PLANT=${1:-rennes}&REF=${2:-main}"
""",
)

_t(
    "ci/teamcity/.teamcity/settings.kts",
    "h14_ref_teamcity",
    False,
    r"""
import jetbrains.buildServer.configs.kotlin.*
import jetbrains.buildServer.configs.kotlin.buildSteps.dotnetBuild
import jetbrains.buildServer.configs.kotlin.buildSteps.script

version = "2024.03"

project {
    buildType(PosLaneBuild)
    params {
        password("env.NUGET_API_KEY", "{V}", display = ParameterDisplay.HIDDEN)
        password("env.SIGNTOOL_PFX_PASSWORD", "{V2}", display = ParameterDisplay.HIDDEN)
    }
}

object PosLaneBuild : BuildType({
    name = "POS lane - build & sign"
    steps {
        dotnetBuild { projects = "Sunmere.Pos.Lane.sln"; configuration = "Release" }
        script {
            scriptContent = "signtool sign /f build\\codesign.pfx /p %env.SIGNTOOL_PFX_PASSWORD% /tr http://timestamp.digicert.com /td sha256 out\\*.exe"
        }
    }
})
""",
)

_t(
    "ci/teamcity/.teamcity/settings.legacy.kts",
    "h14_pw",
    True,
    r"""
import jetbrains.buildServer.configs.kotlin.*
import jetbrains.buildServer.configs.kotlin.buildSteps.script

version = "2023.05"

project {
    buildType(ScaleImageBuild)
    params {
        // plain param, converted to a password param in the 2024 config (settings.kts)
        param("env.SIGNTOOL_PFX_PASSWORD", "{V}")
        param("env.STORE_SHARE_PASSWORD", "{V2}")
    }
}

object ScaleImageBuild : BuildType({
    name = "Scale PLU image"
    steps {
        script { scriptContent = "net use \\\\fs01\\plu /user:SUNMERE\\svc_plu %env.STORE_SHARE_PASSWORD%" }
    }
})
""",
)

_t(
    "ci/teamcity/tools/tc_artifacts.py",
    "h14_teamcity_token",
    True,
    r"""
"Download the latest POS lane build from TeamCity for the store imaging USB sticks."

import sys

import requests

TC = "https://teamcity.sunmere.local"
TOKEN = "{V}"  # access token of user svc-imaging (Profile > Access Tokens)


def latest_artifact(build_type: str, name: str, dest: str) -> None:
    url = f"{TC}/app/rest/builds/buildType:{build_type},status:SUCCESS,branch:default:true/artifacts/content/{name}"
    with requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, stream=True, timeout=120) as res:
        res.raise_for_status()
        with open(dest, "wb") as fh:
            for chunk in res.iter_content(1 << 20):
                fh.write(chunk)


if __name__ == "__main__":
    latest_artifact("PosLane_Build", "Sunmere.Pos.Lane.zip", sys.argv[1])
""",
)

_t(
    "ci/npm/.npmrc",
    "h14_npm",
    True,
    r"""
@sunmere:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
engine-strict=true
save-exact=true
""",
)

_t(
    "ci/npm/.npmrc.ci",
    "h14_ref_npm",
    False,
    r"""
@sunmere:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
//europe-west1-npm.pkg.dev/sunmere-prod-platform/npm/:_authToken={V2}
always-auth=true
""",
)

_t(
    "ci/maven/settings.xml",
    "h14_pw",
    True,
    r"""
<settings xmlns="http://maven.apache.org/SETTINGS/1.2.0">
  <servers>
    <server>
      <id>nexus</id>
      <username>ci-deploy</username>
      <password>{V}</password>
    </server>
    <server>
      <id>sap-jco-thirdparty</id>
      <username>erp-build</username>
      <password>{V2}</password>
    </server>
  </servers>
  <mirrors>
    <mirror>
      <id>nexus</id>
      <mirrorOf>*</mirrorOf>
      <url>https://nexus.sunmere.local/repository/maven-public/</url>
    </mirror>
  </mirrors>
</settings>
""",
)

_t(
    "ci/maven/settings-security.xml",
    "h14_maven_master",
    False,
    r"""
<!-- ~/.m2/settings-security.xml on the build agents; the master password is encrypted. -->
<settingsSecurity>
  <master>{V}</master>
</settingsSecurity>
""",
)


# ============================================================================ docs, tickets, chat
_t(
    "docs/chat-exports/2024-05-14_ot-rennes.txt",
    "h14_mqtt_pw",
    True,
    r"""
[2024-05-14 06:12] Yann Le Goff: broker central ne répond plus depuis 05:40, les lignes bufferisent
[2024-05-14 06:14] Sofia Lindqvist: I see it, the bridge from Rennes reconnects every 5 s with "not authorised"
[2024-05-14 06:15] Sofia Lindqvist: did someone rotate bridge_rennes yesterday?
[2024-05-14 06:21] Yann Le Goff: oui, Marc l'a changé pour l'audit. nouveau mot de passe: {V}
[2024-05-14 06:22] Yann Le Goff: mais ot-gw-01 a encore l'ancien dans mosquitto.conf
[2024-05-14 06:23] Sofia Lindqvist: ok updating remote_password on ot-gw-01 and restarting mosquitto
[2024-05-14 06:27] Sofia Lindqvist: bridge up, backlog draining (~40k msgs)
[2024-05-14 06:31] Yann Le Goff: merci ! je mets à jour le KeePass
""",
)

_t(
    "docs/chat-exports/2024-06-03_edi-support.json",
    "h14_redacted",
    False,
    r"""
{
  "channel": "edi-support",
  "exported_at": "2024-06-03T16:40:11Z",
  "messages": [
    {"ts": "1717414810.001200", "user": "U04KJ2M1Q", "name": "Pieter Bakker", "text": "Van Dijk krijgt een 530 op de SFTP, kan iemand het wachtwoord checken?"},
    {"ts": "1717414902.002300", "user": "U03LQ9Z7P", "name": "Camille Roux", "text": "le mot de passe dans suppliers.yaml est `{V}`, c'est le même que chez eux ?"},
    {"ts": "1717415011.003400", "user": "U04KJ2M1Q", "name": "Pieter Bakker", "text": "Zij hebben `{V2}` - ik vraag ze om te resetten"},
    {"ts": "1717415620.004500", "user": "U03LQ9Z7P", "name": "Camille Roux", "text": "ok, nouveau mot de passe mis dans Secret Manager (edi-sftp-vandijk)"}
  ]
}
""",
)

_t(
    "docs/chat-exports/2024-06-20_loyalty-incident.md",
    "h14_slack_token",
    True,
    r"""
# Export #loyalty-incident (2024-06-20)

**09:02 Anna Svensson:** push notifications från appen går inte ut sedan i morse
**09:05 Tom Jansen:** the FCM key is fine, it's the Slack alerting bot that died, we just didn't see the alert
**09:07 Tom Jansen:** new bot token for the alert relay, pasting here until I put it in the vault: `{V}`
**09:08 Anna Svensson:** 👍 lägger in den i loyalty-alerts deployment
**09:31 Tom Jansen:** alerts flowing again. root cause: bot was removed from the workspace during the cleanup
**09:33 Élodie Martin:** pensez à révoquer l'ancien token dans l'admin Slack svp
""",
)

_t(
    "docs/chat-exports/2024-04-02_data-platform.txt",
    "h14_fake",
    False,
    r"""
[2024-04-02 10:03] Lars Nilsson: hur kör jag dbt lokalt mot BigQuery utan egen SA-nyckel?
[2024-04-02 10:05] Fleur de Wit: gcloud auth application-default login, then method: oauth in profiles.yml
[2024-04-02 10:06] Fleur de Wit: in the unit tests we use `{V}` as the token, it never leaves the mock
[2024-04-02 10:08] Lars Nilsson: tack! och för Looker-testerna?
[2024-04-02 10:09] Fleur de Wit: same idea, client_secret is `{V2}` in tests/fixtures/looker.ini
""",
)

_t(
    "docs/tickets/SUN-STORE-2291.md",
    "h14_weak_pw",
    True,
    r"""
# SUN-STORE-2291 - Magasin 0218 (Utrecht): caisse 4 ne se connecte plus au serveur

**Reporter:** service desk (Nora El Amrani)  **Priority:** P2  **Status:** Resolved

## Description
Kassa 4 in winkel 0218 toont "Database niet bereikbaar" sinds de update van vannacht.

## Comments
**Field engineer (Bram):** SQL login `pos_lane` was locked out after the update because the
lane image still had the old password. Reset it on STSRV-0218 to `{V}` (same as the other lanes
in that store) and unlocked the login:

```sql
ALTER LOGIN [pos_lane] WITH PASSWORD = N'{V}' UNLOCK;
```

**Store manager:** la caisse fonctionne à nouveau, merci.

**Service desk:** closing. Follow-up SUN-SEC-212 for per-lane passwords.
""",
)

_t(
    "docs/tickets/SUN-SEC-212.md",
    "h14_role_word",
    False,
    r"""
# SUN-SEC-212 - Shared local admin and SQL passwords on store servers

**Type:** Security finding (internal audit 2024)  **Owner:** Store Infra

## Finding
All 400 store servers share the same local administrator account and the same SQL login
passwords. Several scripts in `stores/scripts` build credentials as
`New-Object PSCredential('sunmere_adm', '{V}')` or pass `-P {V2}` on the command line.

## Remediation
1. Roll out Windows LAPS to all store servers (wave 1: FR, wave 2: NL, wave 3: SE).
2. Replace `-U/-P` SQL logins in batch files by Windows authentication.
3. Move the remaining application passwords to Vault (`kv/stores/<n>/...`).

## Status
Wave 1 done (2024-06-28). Scripts updated: Deploy-StoreServer.v2.ps1, nightly_backup_v2.cmd.
""",
)

_t(
    "docs/tickets/SUN-ECOM-877.md",
    "h14_mollie_key",
    True,
    r"""
# SUN-ECOM-877 - iDEAL fallback via Mollie fails on staging

**Component:** webshop / payments  **Sprint:** ECOM 24.11

Steps: add product, checkout NL, pick iDEAL while Adyen is disabled → 401 from Mollie.

**Dev (Ruben):** staging uses the live profile by mistake. The key configured in the staging
vault is `{V}` - that's the LIVE key of the Sunmere NL profile, it must never be on staging.
Staging will get a test key once the live one is rotated.

**Dev (Ruben):** waiting for the NL finance admin to rotate it (only they can log in to the
Mollie dashboard). Until then the key above stays active.
""",
)

_t(
    "docs/tickets/SUN-OT-233.md",
    "h14_doc_pw",
    False,
    r"""
# SUN-OT-233 - Factory default passwords on OT devices (Plant Oss)

Inventory made during the integrator handover. The table lists which devices still use the
vendor default; the actual values are in the vendor manuals, the ones quoted in the manuals'
examples are reproduced below for the auditors' convenience (documentation hosts only):

- Kepware manual example: `https://kepware.example.com/config?user=Administrator&password={V}`
- Moxa manual example: `http://192.0.2.10/login (admin / {V2})`

| Device | Default still active | Planned change |
|---|---|---|
| Kepware ot-gw-02 | yes | 2024-Q3 |
| Moxa switches (12) | yes | 2024-Q4 |
| Revolution Pi L3 | yes | 2024-Q3 |
""",
)

_t(
    "docs/runbooks/loyalty-db-failover.md",
    "h14_url_pw",
    True,
    r"""
# Runbook: loyalty database failover (Cloud SQL)

1. Check the instance state: `gcloud sql instances describe loyalty-pg16-prod`.
2. If the primary zone is down, trigger the failover:
   `gcloud sql instances failover loyalty-pg16-prod`.
3. Verify the API can connect (from a pod in the `loyalty` namespace):

   ```bash
   kubectl -n loyalty run pgcheck --rm -it --image=postgres:16 -- \
     psql "postgresql://loyalty_api:{V}@10.40.3.11:5432/loyalty?sslmode=require" -c 'select 1'
   ```

4. If the API still fails, restart the deployment: `kubectl -n loyalty rollout restart deploy/loyalty-api`.
5. Post an update in #loyalty-incident every 30 minutes until resolved.
""",
)

_t(
    "docs/runbooks/loyalty-db-failover-v2.md",
    "h14_ref_sh",
    False,
    r"""
# Runbook: loyalty database failover (Cloud SQL) - v2

3. Verify the API can connect (the password is read from the Kubernetes secret, never typed):

   ```bash
   PGPASSWORD={V} \
   kubectl -n loyalty run pgcheck --rm -it --image=postgres:16 --env="PGPASSWORD=$PGPASSWORD" -- \
     psql "host=10.40.3.11 user=loyalty_api dbname=loyalty sslmode=require" -c 'select 1'
   ```
""",
)

_t(
    "docs/runbooks/pos-lane-offline-fr.md",
    "h14_sql_pw",
    True,
    r"""
# Procédure : caisse hors ligne (mode dégradé)

Quand une caisse perd la connexion au serveur magasin, elle passe en mode dégradé et stocke
les tickets localement (max 48 h).

1. Vérifier le câble réseau et le voyant du switch de la ligne de caisses.
2. Sur le serveur magasin, vérifier que le service SQL `MSSQL$POS` tourne.
3. Tester la connexion depuis la caisse :
   `sqlcmd -S STSRV\POS -U pos_lane -P {V} -Q "select @@servername"`
4. Si la connexion échoue avec *Login failed*, le compte est peut-être verrouillé : appeler
   le support N2 (ne pas réessayer plus de 3 fois).
5. Une fois la connexion rétablie, les tickets locaux remontent automatiquement.
""",
)

_t(
    "docs/runbooks/pos-lane-offline-nl.md",
    "h14_placeholder",
    False,
    r"""
# Procedure: kassa offline (noodmodus)

1. Controleer de netwerkkabel en het lampje van de switch.
2. Controleer op de winkelserver of de SQL-service `MSSQL$POS` draait.
3. Test de verbinding vanaf de kassa:
   `sqlcmd -S STSRV\POS -U pos_lane -P {V} -Q "select @@servername"`
   (vraag het wachtwoord aan de servicedesk; vul het in op de plaats van `{V}`)
4. Bij *Login failed*: bel de tweedelijns support, niet vaker dan 3 keer proberen.
""",
)

_t(
    "docs/runbooks/coldchain-alerts-sv.md",
    "h14_teams_webhook",
    True,
    r"""
# Driftinstruktion: larm för kylkedjan

Larm skickas när temperaturen i en kylbil ligger över +5 °C i mer än 15 minuter.

- Grafana-larmet "Reefer temp high" skickar till Teams-kanalen *Kylkedja - larm* via webhook:
  `{V}`
- Transportledaren ringer chauffören och noterar åtgärden i TMS.
- Om givaren inte rapporterar på 2 timmar: kontrollera gatewayen i terminalen (se
  `coldchain/docs/gateway-setup-fr.md`).
""",
)

_t(
    "docs/runbooks/coldchain-alerts-en.md",
    "h14_uuid",
    False,
    r"""
# Runbook: cold-chain alerts

Alert rule ids in Grafana (for silencing during planned maintenance):

| Rule | UID |
|---|---|
| Reefer temp high | `{V}` |
| Reefer door open > 10 min | `{V2}` |
| Sensor silent > 2 h | `{V3}` |

Silence with `grafana-cli` or in the UI (Alerting > Silences), always with a comment and an end date.
""",
)

_t(
    "docs/handover/erp-basis-handover-fr.md",
    "h14_sap_pw",
    True,
    r"""
# Passation basis SAP - départ de Marc D. (juin 2024)

## Comptes techniques
- `RFC_JCO_BRG` (PRD, client 100) : utilisé par le pont JCo. Mot de passe actuel : `{V}`.
  Il est aussi dans le fichier `SUN_PRD.jcoDestination` du serveur jco-bridge-01.
- `EDI_PUSH` (PRD) : programme ZSD_EDI_OUTBOUND_PUSH, mot de passe en dur dans le code
  (`{V2}`), à déplacer dans SM59 (SUN-ERP-4480).
- `DDIC` et `SAP*` : verrouillés en 000/001/066/100, ne pas déverrouiller sans ticket.

## Transports en attente
- SUNK912233 : correction mapping DESADV (en QAS, validé par l'équipe EDI).
""",
)

_t(
    "docs/handover/erp-basis-handover-nl.md",
    "h14_redacted",
    False,
    r"""
# Overdracht SAP basis - vertrek Marc D. (juni 2024)

## Technische accounts
- `RFC_JCO_BRG` (PRD, client 100): gebruikt door de JCo-bridge. Wachtwoord: `{V}`.
- `EDI_PUSH` (PRD): wachtwoord `{V2}` (staat in de Basis-kluis in Passbolt).
- `DDIC` en `SAP*`: vergrendeld.
""",
)

_t(
    "docs/architecture/payments.md",
    "h14_adyen_client_key",
    False,
    r"""
# Payments architecture (webshop and loyalty app)

```
browser / app ──(client key)──> Adyen Drop-in ──> Adyen
      │                                            │
      └──> webshop (Symfony) ──(API key, HMAC)─────┘
```

- **Client keys** are public and restricted by origin. Current ones:
  FR `{V}`, NL `{V2}`, SE `{V3}`.
- **API keys** and **HMAC keys** are secrets: Symfony secrets vault (prod) and Secret Manager.
- Mollie is the iDEAL fallback for NL only; Klarna is the default method in SE.
- Swish (SE) goes through Adyen; the Swish test certificate from the Swish developer docs
  (password `swish`, documentation environment only) is in `webshop/tests/fixtures`.
""",
)

_t(
    "docs/architecture/iot-keys.md",
    "h14_dev_eui",
    False,
    r"""
# Cold-chain sensors: keys and identifiers

| Item | Secret? | Where |
|---|---|---|
| DevEUI (e.g. `{V}`) | no, printed on the label | TTS, asset register |
| JoinEUI (`{V2}`) | no | TTS |
| AppKey | **yes** | TTS only, exported once to the firmware build |
| NwkSKey / AppSKey (ABP) | **yes** | firmware build secrets |

Never paste an AppKey into a ticket. A DevEUI is fine (support needs it).
""",
)

_t(
    "docs/onboarding/new-developer-en.md",
    "h14_doc_pw",
    False,
    r"""
# Welcome to the Sunmere digital team

## Local stack
`make devstack` starts PostgreSQL, RabbitMQ and Mailpit in Docker with seeded users.
The seed data uses the documentation domain only:

- shop admin: `admin@shop.example.com` / `{V}`
- loyalty test member: `member@loyalty.example.org` / `{V2}`

These accounts exist only in your local containers.

## Access you need
- GitHub org `sunmere-foods` (ask your lead)
- GCP project `sunmere-dev-sandbox` (IAM request in ServiceNow)
- VPN profile *Sunmere-Dev*
""",
)

_t(
    "docs/onboarding/new-developer-sv.md",
    "h14_i18n",
    False,
    r"""
# Välkommen till Sunmeres digitala team

## Inloggning
Första gången du loggar in i back-office visas texten "{V}". Byt lösenord direkt.
Om du ser "{V2}" efter tre försök är kontot låst: kontakta servicedesk.

## Lokal miljö
`make devstack` startar PostgreSQL, RabbitMQ och Mailpit i Docker.
""",
)

_t(
    "docs/vendors/contacts-and-access.csv",
    "h14_pw",
    True,
    r"""
vendor;system;contact;portal;login;password;notes
Van Rijn Automation;OT Oss;support@vanrijn-automation.nl;https://portal.vanrijn-automation.nl;sunmere-oss;{V};maintenance contract until 2025-12
Bizerba;Scales;service.fr@bizerba.com;https://connect.bizerba.com;sunmere.it;{V2};
Kerlink;LoRa gateways;support@kerlink.fr;https://wmc.kerlink.com;sunmere-iot;{V3};12 gateways
Nordkyl AB;Transport SE;b2b-support@nordkyl.se;https://portal.nordkyl.se;SUNMERE01;{V4};
""",
)

_t(
    "docs/vendors/contacts.csv",
    "h14_gln",
    False,
    r"""
vendor;country;gln;edi;contact
Laiterie Normande;FR;{V};AS2;edi@laiterie-normande.fr
Van Dijk Groenten;NL;{V2};SFTP;edi@vandijk-groenten.nl
Norrbageri AB;SE;{V3};SFTP;it@norrbageri.se
Fresco Partners;NL;{V4};AS2;edi@fresco-partners.nl
""",
)

_t(
    "docs/security/leaked-secret-procedure.md",
    "h14_github_fine",
    True,
    r"""
# What to do when a secret was committed

1. **Revoke first**, then clean up. Cleaning the history does not un-leak a secret.
2. Tell #security (not in a public channel) which secret, where and since when.

## Example from the 2024-03 incident (for the post-mortem, token already revoked? see below)

The fine-grained token found in `loyalty/app/.github/workflows/build.yml` was:

`{V}`

Revocation status: **pending** - the owner is on leave; the org admin must revoke it from
Settings > Personal access tokens > Active tokens.
""",
)

_t(
    "docs/security/secret-scanning-faq-nl.md",
    "h14_i18n",
    False,
    r"""
# Veelgestelde vragen: secret scanning

**Waarom faalt mijn build met "possible secret"?**
Omdat er iets in je diff staat dat op een sleutel of wachtwoord lijkt. Vaak is het een
vertaling, bijvoorbeeld `login.error: "{V}"` of `reset.title: "{V2}"`; die markeren we als
vals alarm in de allowlist.

**Wat als het wél een echt wachtwoord is?**
Meteen roteren en #security informeren.
""",
)

_t(
    "docs/security/pgp/security-team.asc",
    "h14_pgp",
    False,
    r"""
Sunmere Foods security team - encrypt vulnerability reports to this key.
Fingerprint: 4F2A 91C3 7D0E 5B68 A1F4  0C9E 3B7D 26A5 E813 C4F0

{V}
""",
)

_t(
    "docs/ops/ssh-access.md",
    "h14_ssh_pub",
    False,
    r"""
# SSH access to the EDI and OT jump hosts

Keys are deployed by Ansible (`infra/ansible/roles/jumphost/files/authorized_keys`).
Current keys:

- Camille Roux: `{V}`
- Sofia Lindqvist: `{V2}`
- Jenkins deploy: `{V3}`

Send your **public** key (`~/.ssh/id_ed25519.pub`) to #platform; never the private one.
""",
)

_t(
    "docs/ops/jumphost_id_ed25519",
    "h14_openssh_key",
    True,
    r"""
{V}
""",
)

_t(
    "docs/ops/pagerduty-and-alerting.md",
    "h14_sentry_token",
    True,
    r"""
# Alerting integrations

- **Sentry** (loyalty app + webshop): release creation from CI uses the token of the
  `ci-releases` user: `SENTRY_AUTH_TOKEN={V}`
  (scopes: project:releases, org:read)
- **Grafana OT**: contact point "Kylkedja - larm" (Teams).
- **Zabbix stores**: e-mail to store-infra@sunmere.eu, SMS for P1 after 22:00.
""",
)

_t(
    "docs/ops/certificates-inventory.md",
    "h14_thumbprint",
    False,
    r"""
# Certificate inventory (expiring within 12 months)

| CN | Used by | Thumbprint (SHA-1) | Expires |
|---|---|---|---|
| as2.sunmere-foods.eu | OpenAS2 | `{V}` | 2025-02-11 |
| *.stores.sunmere.local | store servers WinRM | `{V2}` | 2025-04-30 |
| mqtt.ot.sunmere.eu | Mosquitto central | `{V3}` | 2025-06-01 |
| Sunmere code signing | TeamCity signtool | `{V4}` | 2025-09-15 |
""",
)
