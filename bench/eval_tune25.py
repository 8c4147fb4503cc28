"""Blind part ``tune25``: a power and gas trading house with a wind and solar portfolio, Keldmark
Energy Trading (offices in Aarhus, Gdańsk and Dublin). Files are the trading platform (a Spring
Boot/Kotlin ETRM, Go and Rust exchange gateways for EPEX SPOT, Nord Pool and EEX, QuickFIX
sessions, Kafka clients, market-data feeds for ENTSO-E, Montel and the weather services, recorded
HTTP cassettes), SCADA for wind farms and substations (IEC 104 gateways, Modbus pollers, OPC UA
server and client config and PKI, IEC 62351 keys, historian and MQTT bridges, switch configs,
WireGuard tunnels), forecasting and quant research (Python, R and Julia code and notebooks,
``.Renviron``, ``Project.toml``/``Manifest.toml``, Slurm/HPC job scripts, pip/PyPI config),
settlement and regulatory reporting (a .NET settlement API, SQL Server, Oracle and PostgreSQL
schemas and logins, REMIT/ACER submission scripts and participant lists), a small retail-energy
customer portal (Next.js/TypeScript, a legacy Laravel app, a Ruby meter-import tool, an iOS app,
i18n files in English, Danish and Polish), infrastructure (Terraform on Azure with some AWS and
GCP, Kubernetes, Helm, Ansible, systemd, Nginx, Compose, SOPS/age), CI (GitHub Actions, GitLab
CI, Jenkins, Azure Pipelines), ops tooling (PowerShell, batch, shell, Grafana, Datadog,
Alertmanager, Teams and Slack), plus runbooks, wiki pages, tickets and chat exports in English,
Danish and Polish. Written blind (without seeing the scanner, its rules or other parts'
templates).

Positives: passwords of every strength (dictionary and seasonal ones, vendor defaults left on
real gateways and switches, long random ones), credentials in URIs, Basic-auth strings, CLI
arguments, prose, comments and tests, lookup defaults (``${VAR:-x}``, ``getenv("X", "x")``,
``?? "x"``, ``unwrap_or``), service tokens in their real formats with real checksums where the
format has one (GitHub, npm, Grafana, GitLab, Azure DevOps, PyPI, Slack, SendGrid, Stripe,
OpenAI, Hugging Face, Vault, InfluxDB, HMAC-signed JWTs), API keys that are plain hex or UUIDs
(ENTSO-E and DMI keys are UUIDs), webhook URLs carrying their secret (Slack, Teams workflows,
Azure SAS), cloud keys (AWS pairs, Azure client secrets and storage keys, a GCP service account),
and private keys with real DER structure (RSA PKCS#1 and PKCS#8, EC SEC1, OpenSSH ed25519,
WireGuard and age keys with real bech32 checksums).

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables, secret stores and CI secrets in every language and tool, template variables,
placeholders and redactions in three languages, password hashes (SCRAM verifiers computed for
real, PostgreSQL md5, bcrypt, argon2, apr1, Oracle verifiers, Mosquitto ``$7$``), values
encrypted at rest (SOPS, Ansible Vault, Jasypt, sealed secrets, Jenkins, Rails credentials, PBES2
encrypted PKCS#8 keys built for real), public material (certificates, public keys, SSH, WireGuard
and age public keys, Stripe publishable keys), identifiers shaped like secrets (EIC codes, GSRN
metering points, LEI and ACER codes with their check digits, Azure tenant and subscription ids,
git and Julia tree hashes, lockfile and image digests), UI and i18n text about passwords,
documented example credentials, key-name words as values and test values that say they are fake.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import string
import textwrap
import uuid
import zlib
from urllib.parse import quote

import evalset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
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
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%*-_=+.@?"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
EIC_CHARS = string.digits + string.ascii_uppercase + "-"
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]
NOT_BEFORE = datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2027, 3, 1, tzinfo=datetime.UTC)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out.extend(reversed(chunk))
    return _der(0x06, bytes(out))


def _der_int(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return _der(0x02, raw)


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _armor(label: str, der: bytes, width: int = 64) -> str:
    body = base64.b64encode(der).decode()
    rows = [body[i : i + width] for i in range(0, len(body), width)]
    return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"


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
    polymod = _bech32_polymod([*expanded, *five, 0, 0, 0, 0, 0, 0]) ^ 1
    check = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32[d] for d in five + check)


def _crc_b62(body: str) -> str:
    crc = zlib.crc32(body.encode())
    check = ""
    while crc:
        crc, rest = divmod(crc, 62)
        check = B62[rest] + check
    return check.rjust(6, "0")


class Tune25Values(evalset.Values):
    """Value generators of the tune25 part; every slot generator's name starts with ``t25_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "vindmolle",
            "nacelle",
            "offshore",
            "spotpris",
            "elspot",
            "intraday",
            "vindpark",
            "solcelle",
            "wiatrak",
            "burza",
            "bursztyn",
            "shannon",
            "liffey",
            "esbjerg",
            "kattegat",
            "megawatt",
            "turbine",
        ]
        self.users = [
            "etrm_app",
            "scada_ro",
            "fcst",
            "settle",
            "remit_rpt",
            "portal",
            "quant",
            "hpc_batch",
            "mdfeed",
            "nomination",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def _b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def _uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _probable_prime(self, n: int) -> bool:
        if any(n % p == 0 for p in SMALL_PRIMES):
            return False
        d, r = n - 1, 0
        while d % 2 == 0:
            d //= 2
            r += 1
        for _ in range(20):
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
            n = self.rng.getrandbits(bits) | (3 << (bits - 2)) | 1
            if (n - 1) % 65537 and self._probable_prime(n):
                return n

    def _rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        e = 65537
        while True:
            p, q = self._prime(bits // 2), self._prime(bits // 2)
            if p != q:
                break
        p, q = max(p, q), min(p, q)
        d = pow(e, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
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

    def _x25519_raw(self) -> bytes:
        raw = bytearray(self.rng.randbytes(32))
        raw[0] &= 248
        raw[31] = (raw[31] & 127) | 64
        return bytes(raw)

    def _x25519_pub(self, raw: bytes) -> bytes:
        key = x25519.X25519PrivateKey.from_private_bytes(raw)
        return key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def _pw_core(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%?."))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(11, 19), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Km" + self.s(11, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(16, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "!" + self.s(3, DIGITS)

    # ------------------------------------------------------------------ positives: passwords
    def t25_pw(self) -> str:
        return self._pw_core()

    def t25_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Velkommen1",
                    "Velkommen2024!",
                    "Witaj123",
                    "Haslo123!",
                    "Password1",
                    "Keldmark1",
                    "keldmark2023",
                    "Qwerty123!",
                    "Vindmolle1",
                    "energi123",
                ]
            )
        if shape == 1:
            season = self.pick(
                ["Sommer", "Vinter", "Foraar", "Efteraar", "Lato", "Zima", "Jesien", "Wiosna"]
            )
            return season + str(self.rng.randrange(2020, 2026)) + self.pick(["", "!", "#", "?"])
        if shape == 2:
            return self.pick(self.words).capitalize() + self.pick(["1", "123", "2024", "!", "01"])
        return "Keldmark" + str(self.rng.randrange(2019, 2026)) + self.pick(["", "!", "#"])

    def t25_vendor_pw(self) -> str:
        return self.pick(
            [
                "moxa",
                "private",
                "wago",
                "admin",
                "1234",
                "Passw0rd",
                "root",
                "12345678",
                "ADMIN",
                "admin1234",
                "public",
                "sysadmin",
            ]
        )

    def t25_long_pw(self) -> str:
        return self.s(1, string.ascii_letters) + self.s(
            self.rng.randrange(23, 40), ALNUM + PW_SYMBOLS
        )

    def t25_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.~")

    def t25_b64_pw(self) -> str:
        return base64.b64encode(self._pw_core().encode()).decode()

    def t25_basic(self) -> str:
        user = self.pick([*self.users, "svc-datahub", "keldmark-ci"])
        return base64.b64encode(f"{user}:{self._pw_core()}".encode()).decode()

    # ------------------------------------------------------------------ positives: tokens
    def t25_github(self) -> str:
        prefix = self.pick(["ghp", "ghp", "gho", "ghs"])
        body = self.s(30)
        return f"{prefix}_{body}{_crc_b62(body)}"

    def t25_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59)}"

    def t25_npm(self) -> str:
        body = self.s(30)
        return f"npm_{body}{_crc_b62(body)}"

    def t25_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t25_grafana_sa(self) -> str:
        secret = self.s(32)
        check = zlib.crc32(f"glsa_{secret}_".encode())
        return f"glsa_{secret}_{check:08x}"

    def t25_azdo_pat(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")
        return self.s(52) + "JQQJ99" + self.s(18) + "AZDO" + self.s(4)

    def t25_pypi(self) -> str:
        ident = self._uuid4().encode()
        raw = b"\x02\x01\x08pypi.org\x02\x24" + ident + b"\x00\x02\x06\x20" + self.rng.randbytes(32)
        raw += b"\x00\x06\x20" + self.rng.randbytes(32)
        return "pypi-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def t25_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24)}"

    def t25_slack_webhook(self) -> str:
        return f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/{self.s(24)}"

    def t25_teams_url(self) -> str:
        return (
            f"https://prod-{self.rng.randrange(10, 99)}.westeurope.logic.azure.com:443/workflows/"
            f"{self.s(32, HEX)}/triggers/manual/paths/invoke?api-version=2016-06-01"
            f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.s(43, URLSAFE)}"
        )

    def t25_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t25_stripe(self) -> str:
        if self.rng.randrange(2):
            return "sk_live_51" + self.s(97)
        return "rk_live_51" + self.s(97)

    def t25_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t25_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def t25_vault_token(self) -> str:
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def t25_influx_token(self) -> str:
        return self._b64(64, urlsafe=True)

    def t25_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "iss": "https://auth.keldmark.dk",
                "sub": self.pick(self.users),
                "aud": self.pick(["datahub-bridge", "settlement-api", "portal-api"]),
                "iat": 1717000000 + self.rng.randrange(10**6),
                "exp": 2032000000 + self.rng.randrange(10**6),
            }
        )
        key = self.rng.randbytes(32)
        sig = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"

    def t25_uuid_key(self) -> str:
        return self._uuid4()

    def t25_hex32(self) -> str:
        return self.s(32, HEX)

    def t25_hex40(self) -> str:
        return self.s(40, HEX)

    def t25_hex64(self) -> str:
        return self.s(64, HEX)

    def t25_api_key(self) -> str:
        return self.pick([self.s(32, HEX), self.s(40, ALNUM), self.s(28, URLSAFE), self._b64(24)])

    def t25_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def t25_laravel_key(self) -> str:
        return "base64:" + self._b64(32)

    def t25_aws_env_pair(self) -> str:
        return f"AWS_ACCESS_KEY_ID={self._aws_id()}\nAWS_SECRET_ACCESS_KEY={self._aws_secret()}"

    def t25_aws_ini_pair(self) -> str:
        return f"aws_access_key_id = {self._aws_id()}\naws_secret_access_key = {self._aws_secret()}"

    def _aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def _aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def t25_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t25_azure_storage_key(self) -> str:
        return self._b64(64)

    def t25_sas_sig(self) -> str:
        return quote(self._b64(32), safe="")

    # ------------------------------------------------------------------ positives: keys
    def t25_rsa_key(self) -> str:
        return self._pem(self._rsa(), serialization.PrivateFormat.TraditionalOpenSSL)

    def t25_pkcs8_key(self) -> str:
        key = self._rsa() if self.rng.randrange(2) else self._ec()
        return self._pem(key, serialization.PrivateFormat.PKCS8)

    def t25_ec_key(self) -> str:
        return self._pem(self._ec(), serialization.PrivateFormat.TraditionalOpenSSL)

    def t25_gcp_sa_key(self) -> str:
        pem = self._pem(self._rsa(), serialization.PrivateFormat.PKCS8)
        return pem.replace("\n", "\\n") + "\\n"

    def t25_openssh_key(self) -> str:
        def string_(data: bytes) -> bytes:
            return len(data).to_bytes(4, "big") + data

        seed = self.rng.randbytes(32)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        pub_blob = string_(b"ssh-ed25519") + string_(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.pick(self.users)}@hpc-login01".encode()
        private = check + check + pub_blob + string_(seed + pub) + string_(comment)
        pad = 1
        while len(private) % 8:
            private += bytes([pad])
            pad += 1
        blob = (
            b"openssh-key-v1\x00"
            + string_(b"none")
            + string_(b"none")
            + string_(b"")
            + (1).to_bytes(4, "big")
            + string_(pub_blob)
            + string_(private)
        )
        return _armor("OPENSSH PRIVATE KEY", blob, 70)

    def t25_wg_key(self) -> str:
        return base64.b64encode(self._x25519_raw()).decode()

    def t25_age_key(self) -> str:
        return _bech32("age-secret-key-", self._x25519_raw()).upper()

    # ------------------------------------------------------------------ negatives: references
    def t25_ref_env(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "$PGPASSWORD",
                "${PG_PASSWORD:?must be set}",
                "$(cat /run/secrets/historian_pw)",
                "${INFLUX_TOKEN}",
                "$(vault kv get -field=password secret/etrm/oracle)",
                "$(az keyvault secret show --vault-name kv-keldmark-prod --name etrm-db --query value -o tsv)",
            ]
        )

    def t25_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["MODBUS_GW_PASSWORD"]',
                'os.getenv("MODBUS_GW_PASSWORD")',
                "settings.MODBUS_GW_PASSWORD",
                'keyring.get_password("keldmark", "modbus-gw")',
                'getpass.getpass("Adgangskode: ")',
                'secret_client.get_secret("modbus-gw").value',
            ]
        )

    def t25_ref_py_nb(self) -> str:
        ref = self.pick(
            [
                'os.environ["FCST_DB_PASSWORD"]',
                'getpass.getpass("Hasło do bazy: ")',
                'keyring.get_password("keldmark", "fcst-db")',
                'SecretClient(vault_url, cred).get_secret("fcst-db").value',
            ]
        )
        return json.dumps(ref)[1:-1]

    def t25_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                "process.env['SENDGRID_API_KEY']",
                "config.get('portal.sessionSecret')",
                "serverRuntimeConfig.datahubToken",
                "import.meta.env.VITE_PORTAL_API_KEY",
            ]
        )

    def t25_ref_spring(self) -> str:
        return self.pick(
            [
                "${ETRM_DB_PASSWORD}",
                "${vault.etrm.oracle.password}",
                "${NORDPOOL_PASSWORD:}",
                "#{environment['EPEX_API_KEY']}",
                "${sm://projects/keldmark-fcst/secrets/etrm-db}",
            ]
        )

    def t25_ref_cs(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("SETTLEMENT_DB_PASSWORD")',
                'configuration["Energinet:ClientSecret"]',
                '(await secretClient.GetSecretAsync("settlement-db")).Value.Value',
                "options.Value.Password",
            ]
        )

    def t25_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("EPEX_API_SECRET")',
                "cfg.Exchange.Secret",
                'viper.GetString("epex.secret")',
            ]
        )

    def t25_ref_gha(self) -> str:
        return self.pick(
            [
                "${{ secrets.AZURE_CLIENT_SECRET }}",
                "${{ secrets.NPM_TOKEN }}",
                "${{ secrets.PORTAL_NPM_TOKEN }}",
                "${{ secrets.ARM_CLIENT_SECRET }}",
            ]
        )

    def t25_ref_ado(self) -> str:
        return self.pick(
            [
                "$(NPM_TOKEN)",
                "$(portal-stripe-key)",
                "$(System.AccessToken)",
                "$(STRIPE_SECRET_KEY)",
            ]
        )

    def t25_ref_tf(self) -> str:
        return self.pick(
            [
                "var.etrm_db_password",
                "random_password.settlement_sql.result",
                "data.azurerm_key_vault_secret.portal_db.value",
                "azuread_application_password.forecast.value",
                "module.secrets.influx_admin_token",
            ]
        )

    def t25_ref_jinja(self) -> str:
        return self.pick(
            [
                "{{ kafka_sasl_password }}",
                "{{ vault_scada_gateway_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/scada/gw:password') }}",
                "{{ vault_moxa_admin_password }}",
            ]
        )

    def t25_ref_helm(self) -> str:
        return self.pick(
            [
                "{{ .Values.postgres.password }}",
                "{{ required `postgres.password is required` .Values.postgres.password }}",
                "{{ .Values.global.postgresPassword }}",
            ]
        )

    def t25_ref_erb(self) -> str:
        return self.pick(
            [
                "<%= ENV['METER_DB_PASSWORD'] %>",
                "<%= ENV.fetch('METER_DB_PASSWORD') %>",
                "<%= Rails.application.credentials.dig(:db, :password) %>",
            ]
        )

    def t25_ref_grafana(self) -> str:
        return self.pick(
            [
                "$__env{INFLUX_TOKEN}",
                "$__file{/etc/grafana/secrets/influx_token}",
                "${INFLUX_TOKEN}",
            ]
        )

    def t25_ref_ps(self) -> str:
        return self.pick(
            [
                "(Get-Secret -Name HistorianBackup -AsPlainText)",
                "$env:HISTORIAN_BACKUP_PW",
                "(Get-AzKeyVaultSecret -VaultName kv-keldmark-ot -Name historian -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
            ]
        )

    def t25_ref_store(self) -> str:
        return self.pick(
            [
                "op://Trading/Nord Pool API/password",
                "op://OT/OPC UA Hvide Sande/password",
                "vault:secret/data/scada/opcua#password",
                "azurekeyvault://kv-keldmark-prod/etrm-oracle",
                "kv-keldmark-prod/settlement-db",
                "arn:aws:secretsmanager:eu-north-1:"
                + self.s(12, DIGITS)
                + ":secret:archive/s3-"
                + self.s(6),
            ]
        )

    def t25_ref_kv(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-keldmark-prod.vault.azure.net/secrets/settlement-db/)",
                "@Microsoft.KeyVault(VaultName=kv-keldmark-prod;SecretName=energinet-client-secret)",
                "@Microsoft.KeyVault(SecretUri=https://kv-keldmark-prod.vault.azure.net/secrets/energinet/)",
            ]
        )

    def t25_ref_dd(self) -> str:
        return self.pick(
            [
                "ENC[postgres_password]",
                "ENC[vault:kv/datadog/pg#password]",
                "ENC[file@/etc/datadog-agent/secrets/pg]",
            ]
        )

    def t25_ref_gradle(self) -> str:
        return self.pick(
            [
                'providers.gradleProperty("nexusPassword").orNull',
                'System.getenv("NEXUS_PASSWORD")',
                'findProperty("nexusPassword") as String?',
                'providers.environmentVariable("NEXUS_PASSWORD").orNull',
            ]
        )

    def t25_ref_r(self) -> str:
        return self.pick(
            [
                'Sys.getenv("DMI_API_KEY")',
                'keyring::key_get("dmi-api")',
                'Sys.getenv("DMI_API_KEY", unset = "")',
            ]
        )

    def t25_ref_julia(self) -> str:
        return self.pick(
            ['get(ENV, "PG_PASSWORD", "")', 'ENV["PG_PASSWORD"]', "Secrets.pg_password()"]
        )

    def t25_ref_rust(self) -> str:
        return self.pick(
            [
                'env::var("EEX_API_KEY")?',
                'std::env::var("EEX_API_KEY").expect("EEX_API_KEY")',
                "cfg.api_key.clone()",
            ]
        )

    def t25_ref_ruby(self) -> str:
        return self.pick(
            [
                "ENV.fetch('DATAHUB_PASSWORD')",
                "Rails.application.credentials.datahub[:password]",
                "ENV['DATAHUB_PASSWORD']",
            ]
        )

    def t25_ref_php(self) -> str:
        return self.pick(
            [
                "env('MOBILEPAY_CLIENT_SECRET')",
                "getenv('MOBILEPAY_CLIENT_SECRET')",
                "$_ENV['MOBILEPAY_SUBSCRIPTION_KEY']",
                "env('MOBILEPAY_SUBSCRIPTION_KEY')",
            ]
        )

    def t25_ref_swift(self) -> str:
        return self.pick(
            [
                'ProcessInfo.processInfo.environment["PORTAL_API_KEY"] ?? ""',
                'Bundle.main.object(forInfoDictionaryKey: "PortalApiKey") as? String ?? ""',
                'KeychainStore.shared.string(for: "portal.apiKey") ?? ""',
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def t25_placeholder(self) -> str:
        return self.pick(
            [
                "<adgangskode>",
                "<hasło>",
                "<password>",
                "INDSAET_TOKEN_HER",
                "WSTAW_HASLO_TUTAJ",
                "<din-adgangskode>",
                "xxxxxxxxxxxxxxxx",
                "your-api-key-here",
                "REPLACE_ME",
                "<udfyld>",
                "TODO",
                "${TOKEN}",
            ]
        )

    def t25_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "********",
                "<skjult>",
                "[ukryte]",
                "***FILTERED***",
                "<REDACTED>",
                "••••••••",
                "[fjernet]",
            ]
        )

    def t25_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-token",
                "dummy_secret_do_not_use",
                "test-only-123",
                "FAKE_KEY_0000000000000000",
                "unit-test-password",
                "testtesttest",
            ]
        )

    def t25_doc_aws(self) -> str:
        return self.pick(["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"])

    def t25_doc_aws_secret(self) -> str:
        return self.pick(
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"]
        )

    def t25_doc_webhook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX",
            ]
        )

    def t25_doc_basic(self) -> str:
        return self.pick(
            ["QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "dXNlcm5hbWU6cGFzc3dvcmQ=", "dXNlcjpwYXNz"]
        )

    def t25_doc_jwt(self) -> str:
        return (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
            "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        )

    def t25_doc_key(self) -> str:
        return self.pick(
            ["sk-...", "<your-openai-key>", "sk-proj-XXXX", "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
        )

    def t25_keyword(self) -> str:
        return self.pick(["password", "passwd", "pwd", "adgangskode", "haslo", "secret"])

    def t25_role_word(self) -> str:
        return self.pick(
            [
                "trader",
                "operator",
                "viewer",
                "settlement",
                "readonly",
                "scada-engineer",
                "quant",
                "admin",
            ]
        )

    def t25_i18n_da(self) -> str:
        return self.pick(
            [
                "Adgangskoden er forkert",
                "Glemt adgangskode?",
                "Adgangskoden skal være mindst 12 tegn",
                "Indtast din nuværende adgangskode",
                "Adgangskoderne er ikke ens",
                "Din adgangskode er udløbet",
            ]
        )

    def t25_i18n_pl(self) -> str:
        return self.pick(
            [
                "Hasło jest nieprawidłowe",
                "Nie pamiętasz hasła?",
                "Hasło musi mieć co najmniej 12 znaków",
                "Wpisz swój token dostępu",
                "Hasła nie są identyczne",
                "Twoje hasło wygasło",
            ]
        )

    def t25_pw_policy(self) -> str:
        return self.pick(
            [
                "^(?=.*[A-Z])(?=.*[0-9]).{12,}$",
                "^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9]).{14,128}$",
                "^[A-Za-z0-9!#%*?]{12,64}$",
                "^.{12,128}$",
            ]
        )

    def t25_snmp_community(self) -> str:
        return self.pick(["private", "public", "private", "Hirschmann", "kmot" + self.s(6, LOWNUM)])

    # ------------------------------------------------------------------ negatives: hashes, encrypted
    def t25_pw_hash(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return "$2b$12$" + self.s(53, CRYPT64)
        if shape == 1:
            salt = self._b64(16, pad=False)
            return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self._b64(32, pad=False)}"
        if shape == 2:
            return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"
        if shape == 3:
            return f"pbkdf2_sha256$720000${self.s(22)}${self._b64(32)}"
        user = self.pick(self.users)
        return "md5" + hashlib.md5((self._pw_core() + user).encode()).hexdigest()

    def t25_scram(self) -> str:
        salt = self.rng.randbytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", self._pw_core().encode(), salt, 4096)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(client_key).digest()
        server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        return f"SCRAM-SHA-256$4096:{b64(salt)}${b64(stored)}:{b64(server)}"

    def t25_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def t25_mosquitto_hash(self) -> str:
        return f"$7$101${self._b64(12)}${self._b64(64)}"

    def t25_oracle_verifier(self) -> str:
        return f"S:{self.s(60, HEXU)};T:{self.s(160, HEXU)}"

    def t25_jasypt(self) -> str:
        return f"ENC({self._b64(self.rng.choice([32, 48]))})"

    def t25_sops(self) -> str:
        data = self._b64(self.rng.randrange(14, 40))
        return f"ENC[AES256_GCM,data:{data},iv:{self._b64(32)},tag:{self._b64(16)},type:str]"

    def t25_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t25_sealed(self) -> str:
        return "AgB" + self._b64(self.rng.choice([380, 420, 540]))

    def t25_jenkins_secret(self) -> str:
        return "{AQAAABAAAAAQ" + self._b64(36) + "}"

    def t25_rails_enc(self) -> str:
        return f"{self._b64(self.rng.randrange(90, 200))}--{self._b64(12)}--{self._b64(16)}"

    def t25_enc_pem(self) -> str:
        plain = self._ec().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        salt, iv, rounds = self.rng.randbytes(16), self.rng.randbytes(16), 2048
        key = hashlib.pbkdf2_hmac("sha256", self._pw_core().encode(), salt, rounds, 32)
        pad = 16 - len(plain) % 16
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        data = enc.update(plain + bytes([pad]) * pad) + enc.finalize()
        kdf = _seq(
            _der_oid("1.2.840.113549.1.5.12"),
            _seq(
                _der(0x04, salt),
                _der_int(rounds),
                _seq(_der_oid("1.2.840.113549.2.9"), b"\x05\x00"),
            ),
        )
        cipher = _seq(_der_oid("2.16.840.1.101.3.4.1.42"), _der(0x04, iv))
        alg = _seq(_der_oid("1.2.840.113549.1.5.13"), _seq(kdf, cipher))
        return _armor("ENCRYPTED PRIVATE KEY", _seq(alg, _der(0x04, data)))

    # ------------------------------------------------------------------ negatives: public material
    def t25_public_pem(self) -> str:
        key = self._ec() if self.rng.randrange(2) else self._ed()
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def t25_cert(self) -> str:
        key = self._ec() if self.rng.randrange(2) else self._ed()
        host = self.pick(
            [
                "opcua-hvide-sande.scada.keldmark.dk",
                "rtu07.ringsted.scada.keldmark.dk",
                "historian.ot.keldmark.dk",
                "gw-epex.trading.keldmark.dk",
                "portal.keldmark.pl",
            ]
        )
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keldmark Energy Trading A/S"),
                x509.NameAttribute(NameOID.COMMON_NAME, host),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(120) + 1)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        )
        if isinstance(key, ec.EllipticCurvePrivateKey):
            cert = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
        else:
            cert = builder.sign(key, None)
        return cert.public_bytes(serialization.Encoding.PEM).decode().strip()

    def t25_ssh_pub(self) -> str:
        key = (
            self._ed()
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        return f"{key} {self.pick(self.users)}@{self.pick(['hpc-login01', 'ws-aarhus-17', 'ws-gdansk-04'])}"

    def t25_wg_pub(self) -> str:
        return base64.b64encode(self._x25519_pub(self._x25519_raw())).decode()

    def t25_age_pub(self) -> str:
        return _bech32("age", self._x25519_pub(self._x25519_raw()))

    def t25_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(97)

    # ------------------------------------------------------------------ negatives: identifiers
    def t25_uuid(self) -> str:
        return self._uuid4()

    def t25_git_sha(self) -> str:
        return self.s(40, HEX)

    def t25_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def t25_image_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def t25_eic(self) -> str:
        office = self.pick(["10", "11", "45", "27", "47"])
        obj = self.pick(list("XYZWVT"))
        body = office + obj + self.s(12, UPNUM + "-")
        total = sum(EIC_CHARS.index(c) * (16 - i) for i, c in enumerate(body))
        return body + EIC_CHARS[36 - ((total - 1) % 37)]

    def t25_gsrn(self) -> str:
        body = "5713131" + self.s(10, DIGITS)
        total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
        return body + str((10 - total % 10) % 10)

    def t25_lei(self) -> str:
        body = self.pick(["5493", "2138", "6354", "2594"]) + "00" + self.s(12, UPNUM)
        num = int("".join(str(int(c, 36)) for c in body) + "00")
        return body + f"{98 - num % 97:02d}"

    def t25_acer_code(self) -> str:
        return f"{self.pick(list('ABC'))}{self.s(7, DIGITS)}{self.s(1, string.ascii_uppercase)}.{self.pick(['DK', 'PL', 'IE', 'EU'])}"

    def t25_aws_account(self) -> str:
        return self.s(12, DIGITS)


VALUES = Tune25Values


def _t(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = [
    # ------------------------------------------------------------------ ETRM (Spring Boot / Kotlin)
    _t(
        "etrm/etrm-core/src/main/resources/application-prod.yml",
        "t25_pw",
        True,
        """
        spring:
          datasource:
            url: jdbc:oracle:thin:@//etrmdb-prod.trading.keldmark.dk:1521/ETRMP
            username: ETRM_APP
            password: {V}
            hikari:
              maximum-pool-size: 30
          rabbitmq:
            host: mq01.trading.keldmark.dk
            username: etrm-deals
            password: "{V2}"
        keldmark:
          deal-capture:
            default-book: DK1-WIND-HEDGE
            timezone: Europe/Copenhagen
        """,
    ),
    _t(
        "etrm/etrm-core/src/main/resources/application.yml",
        "t25_ref_spring",
        False,
        """
        spring:
          datasource:
            url: jdbc:oracle:thin:@//${ETRM_DB_HOST:localhost}:1521/ETRMP
            username: ETRM_APP
            password: {V}
          rabbitmq:
            host: ${MQ_HOST:localhost}
            username: etrm-deals
            password: {V2}
        management:
          endpoints.web.exposure.include: health,prometheus
        """,
    ),
    _t(
        "etrm/etrm-core/src/main/java/dk/keldmark/etrm/nordpool/NordPoolAuthClient.java",
        "t25_pw",
        True,
        """
        package dk.keldmark.etrm.nordpool;

        import java.net.URI;
        import java.net.http.HttpClient;
        import java.net.http.HttpRequest;

        /** Fetches an access token from the Nord Pool SSO for the intraday API. */
        public final class NordPoolAuthClient {
            private static final URI TOKEN_URI = URI.create("https://sts.nordpoolgroup.com/connect/token");
            private final String user = System.getenv().getOrDefault("NORDPOOL_USER", "keldmark_api");
            private final String password = System.getenv().getOrDefault("NORDPOOL_PASSWORD", "{V}");

            HttpRequest tokenRequest() {
                String form = "grant_type=password&scope=intraday_api&username=" + user + "&password=" + password;
                return HttpRequest.newBuilder(TOKEN_URI)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .POST(HttpRequest.BodyPublishers.ofString(form))
                    .build();
            }
        }
        """,
    ),
    _t(
        "etrm/etrm-core/src/test/java/dk/keldmark/etrm/epex/EpexClientTest.java",
        "t25_fake",
        False,
        """
        package dk.keldmark.etrm.epex;

        import static org.assertj.core.api.Assertions.assertThat;

        import org.junit.jupiter.api.Test;

        class EpexClientTest {
            // WireMock stands in for the EPEX M7 gateway; nothing here is a real credential.
            private static final String API_SECRET = "{V}";

            @Test
            void signsOrderEntryRequests() {
                EpexClient client = new EpexClient("http://localhost:8089", "test-member", API_SECRET);
                assertThat(client.sign("POST", "/orders", "{}")).hasSize(64);
            }
        }
        """,
    ),
    _t(
        "etrm/etrm-algo/src/main/kotlin/dk/keldmark/algo/feeds/MontelClient.kt",
        "t25_hex32",
        True,
        """
        package dk.keldmark.algo.feeds

        import io.ktor.client.HttpClient
        import io.ktor.client.request.get
        import io.ktor.client.request.header

        // TODO(jr): move to Key Vault before the go-live of the DE intraday desk
        private const val MONTEL_API_KEY = "{V}"

        class MontelClient(private val http: HttpClient) {
            suspend fun news(since: String) =
                http.get("https://api.montelnews.com/news/search?from=$since") {
                    header("Authorization", "Bearer $MONTEL_API_KEY")
                }
        }
        """,
    ),
    _t(
        "etrm/etrm-algo/gradle.properties",
        "t25_pw",
        True,
        """
        org.gradle.jvmargs=-Xmx3g -Dfile.encoding=UTF-8
        kotlin.code.style=official
        nexusUrl=https://nexus.keldmark.dk/repository/maven-releases/
        nexusUsername=gradle-publisher
        nexusPassword={V}
        """,
    ),
    _t(
        "etrm/etrm-algo/build.gradle.kts",
        "t25_ref_gradle",
        False,
        """
        plugins {
            kotlin("jvm") version "2.0.21"
            `maven-publish`
        }

        // Credentials come from ~/.gradle/gradle.properties or the CI environment.
        val nexusPassword: String? = {V}

        publishing {
            repositories {
                maven {
                    url = uri("https://nexus.keldmark.dk/repository/maven-releases/")
                    credentials {
                        username = "gradle-publisher"
                        password = nexusPassword
                    }
                }
            }
        }
        """,
    ),
    _t(
        "etrm/etrm-algo/src/main/resources/kafka.properties",
        "t25_long_pw",
        True,
        """
        bootstrap.servers=kafka-01.trading.keldmark.dk:9093,kafka-02.trading.keldmark.dk:9093
        security.protocol=SASL_SSL
        sasl.mechanism=SCRAM-SHA-512
        sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="algo-trader" password="{V}";
        ssl.truststore.location=/etc/keldmark/kafka/truststore.jks
        client.id=etrm-algo-intraday
        """,
    ),
    _t(
        "etrm/deploy/ansible/templates/kafka-client.properties.j2",
        "t25_ref_jinja",
        False,
        """
        bootstrap.servers={{ kafka_bootstrap | join(',') }}
        security.protocol=SASL_SSL
        sasl.mechanism=SCRAM-SHA-512
        sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="{{ kafka_sasl_user }}" password="{V}";
        client.id={{ inventory_hostname }}
        """,
    ),
    _t(
        "etrm/etrm-core/src/main/resources/db/migration/V31__etrm_reporting_users.sql",
        "t25_pw",
        True,
        """
        -- Read-only accounts for the settlement and REMIT reporting jobs
        CREATE USER REMIT_RPT IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE ETRM_DATA QUOTA 0 ON ETRM_DATA;
        GRANT CREATE SESSION TO REMIT_RPT;
        GRANT SELECT ON ETRM.DEALS TO REMIT_RPT;

        CREATE USER SETTLE_RO IDENTIFIED BY "{V2}";
        GRANT CREATE SESSION TO SETTLE_RO;
        GRANT SELECT ON ETRM.NOMINATIONS TO SETTLE_RO;
        """,
    ),
    _t(
        "etrm/db/oracle/export/etrm_users_ddl.sql",
        "t25_oracle_verifier",
        False,
        """
        -- Generated by DBMS_METADATA.GET_DDL on ETRMP, 2024-10-02
        CREATE USER "REMIT_RPT" IDENTIFIED BY VALUES '{V}'
              DEFAULT TABLESPACE "ETRM_DATA"
              TEMPORARY TABLESPACE "TEMP";
        CREATE USER "SETTLE_RO" IDENTIFIED BY VALUES '{V2}'
              DEFAULT TABLESPACE "ETRM_DATA";
        """,
    ),
    _t(
        "etrm/Jenkinsfile",
        "t25_pw",
        True,
        """
        pipeline {
            agent { label 'linux-oracle' }
            stages {
                stage('Build') {
                    steps { sh './gradlew clean build -x integrationTest' }
                }
                stage('Migrate UAT') {
                    steps {
                        // quick fix while the credentials plugin is broken on the new controller
                        sh "sqlplus -s ETRM_OWNER/{V}@//etrmdb-uat.trading.keldmark.dk:1521/ETRMU @db/smoke.sql"
                    }
                }
            }
        }
        """,
    ),
    _t(
        "ci/jenkins/casc/credentials.yaml",
        "t25_jenkins_secret",
        False,
        """
        credentials:
          system:
            domainCredentials:
              - credentials:
                  - usernamePassword:
                      id: etrm-oracle-uat
                      scope: GLOBAL
                      username: ETRM_OWNER
                      password: "{V}"
                  - string:
                      id: montel-api-key
                      secret: "{V2}"
        """,
    ),
    # ------------------------------------------------------------------ exchange gateways
    _t(
        "trading/gateways/epex-go/internal/auth/signer.go",
        "t25_hex64",
        True,
        """
        package auth

        import (
        	"crypto/hmac"
        	"crypto/sha256"
        	"encoding/hex"
        	"os"
        )

        // memberSecret signs M7 order-entry requests for member KELDMARK-DK.
        func memberSecret() []byte {
        	if s := os.Getenv("EPEX_API_SECRET"); s != "" {
        		return []byte(s)
        	}
        	return []byte("{V}")
        }

        func Sign(payload []byte) string {
        	mac := hmac.New(sha256.New, memberSecret())
        	mac.Write(payload)
        	return hex.EncodeToString(mac.Sum(nil))
        }
        """,
    ),
    _t(
        "trading/gateways/epex-go/internal/config/config.go",
        "t25_ref_go",
        False,
        """
        package config

        import (
        	"os"

        	"github.com/spf13/viper"
        )

        var _ = os.Getenv

        type Exchange struct {
        	Member string
        	Secret string
        }

        func Load() Exchange {
        	viper.SetConfigName("gateway")
        	_ = viper.ReadInConfig()
        	return Exchange{Member: viper.GetString("epex.member"), Secret: {V}}
        }
        """,
    ),
    _t(
        "trading/gateways/epex-go/internal/auth/signer_test.go",
        "t25_fake",
        False,
        """
        package auth

        import "testing"

        func TestSignIsStable(t *testing.T) {
        	t.Setenv("EPEX_API_SECRET", "{V}")
        	got := Sign([]byte(`{"side":"BUY","qty":5}`))
        	if len(got) != 64 {
        		t.Fatalf("unexpected signature length %d", len(got))
        	}
        }
        """,
    ),
    _t(
        "trading/gateways/eex-rs/src/config.rs",
        "t25_hex40",
        True,
        """
        use std::env;

        pub struct EexConfig {
            pub endpoint: String,
            pub api_key: String,
        }

        impl EexConfig {
            pub fn from_env() -> Self {
                Self {
                    endpoint: env::var("EEX_ENDPOINT")
                        .unwrap_or_else(|_| "https://api.eex-group.com/trading/v2".into()),
                    api_key: env::var("EEX_API_KEY").unwrap_or_else(|_| "{V}".to_string()),
                }
            }
        }
        """,
    ),
    _t(
        "trading/gateways/eex-rs/Cargo.lock",
        "t25_sha256",
        False,
        """
        # This file is automatically @generated by Cargo.
        # It is not intended for manual editing.
        version = 3

        [[package]]
        name = "hmac"
        version = "0.12.1"
        source = "registry+https://github.com/rust-lang/crates.io-index"
        checksum = "{V}"

        [[package]]
        name = "reqwest"
        version = "0.12.9"
        source = "registry+https://github.com/rust-lang/crates.io-index"
        checksum = "{V2}"
        """,
    ),
    _t(
        "trading/fix/ice-endex/session.cfg",
        "t25_pw",
        True,
        """
        [DEFAULT]
        ConnectionType=initiator
        ReconnectInterval=30
        FileStorePath=store
        StartTime=00:00:00
        EndTime=00:00:00

        [SESSION]
        BeginString=FIX.4.4
        SenderCompID=KELDMARK_DK
        TargetCompID=ICE
        SocketConnectHost=fix.endex.theice.com
        SocketConnectPort=8085
        Username=keldmark_fix01
        Password={V}
        """,
    ),
    _t(
        "trading/fix/ice-endex/session-uat.cfg.example",
        "t25_placeholder",
        False,
        """
        [SESSION]
        BeginString=FIX.4.4
        SenderCompID=KELDMARK_DK_UAT
        TargetCompID=ICE
        SocketConnectHost=fix-uat.endex.theice.com
        SocketConnectPort=8085
        Username=keldmark_fix_uat
        # copy to session-uat.cfg and fill in from the Trading vault
        Password={V}
        """,
    ),
    # ------------------------------------------------------------------ market data feeds
    _t(
        "marketdata/feeds/entsoe/client.py",
        "t25_uuid_key",
        True,
        """
        \"\"\"ENTSO-E Transparency Platform client (day-ahead prices, load, wind/solar forecasts).\"\"\"
        import os

        import requests

        BASE_URL = "https://web-api.tp.entsoe.eu/api"
        # personal token of the market-data service user; rotate via transparency@entsoe.eu
        ENTSOE_TOKEN = os.getenv("ENTSOE_TOKEN", "{V}")


        def day_ahead(area: str, start: str, end: str) -> str:
            params = {
                "securityToken": ENTSOE_TOKEN,
                "documentType": "A44",
                "in_Domain": area,
                "out_Domain": area,
                "periodStart": start,
                "periodEnd": end,
            }
            return requests.get(BASE_URL, params=params, timeout=60).text
        """,
    ),
    _t(
        "marketdata/feeds/entsoe/areas.py",
        "t25_eic",
        False,
        """
        \"\"\"EIC codes of the bidding zones and control areas we trade or forecast.\"\"\"

        BIDDING_ZONES = {
            "DK1": "{V}",
            "DK2": "{V2}",
            "PL": "{V3}",
            "IE_SEM": "{V4}",
        }
        """,
    ),
    _t(
        "marketdata/tests/cassettes/test_entsoe_day_ahead.yaml",
        "t25_uuid_key",
        True,
        """
        interactions:
        - request:
            body: null
            headers:
              Accept: ['*/*']
              User-Agent: [python-requests/2.32.3]
            method: GET
            uri: https://web-api.tp.entsoe.eu/api?securityToken={V}&documentType=A44&in_Domain=10YDK-1--------W&out_Domain=10YDK-1--------W&periodStart=202411010000&periodEnd=202411020000
          response:
            body: {string: '<Publication_MarketDocument/>'}
            headers:
              Content-Type: [text/xml]
            status: {code: 200, message: OK}
        version: 1
        """,
    ),
    _t(
        "marketdata/tests/cassettes/test_montel_news.yaml",
        "t25_redacted",
        False,
        """
        interactions:
        - request:
            body: null
            headers:
              Authorization: ['{V}']
              User-Agent: [python-requests/2.32.3]
            method: GET
            uri: https://api.montelnews.com/news/search?from=2024-11-01
          response:
            body: {string: '{"Elements": []}'}
            status: {code: 200, message: OK}
        version: 1
        """,
    ),
    _t(
        "marketdata/tests/conftest.py",
        "t25_redacted",
        False,
        """
        import pytest


        @pytest.fixture(scope="module")
        def vcr_config():
            # Never record live tokens: cassettes store the replacement below instead.
            return {
                "filter_headers": [("authorization", "{V}")],
                "filter_query_parameters": [("securityToken", "{V2}")],
                "record_mode": "once",
            }
        """,
    ),
    _t(
        "marketdata/feeds/weather/dmi.R",
        "t25_ref_r",
        False,
        """
        library(httr2)

        dmi_key <- {V}
        if (identical(dmi_key, "")) stop("Set DMI_API_KEY in ~/.Renviron")

        fetch_obs <- function(station = "06052", param = "wind_speed") {
          request("https://dmigw.govcloud.dk/v2/metObs/collections/observation/items") |>
            req_url_query(stationId = station, parameterId = param, limit = 1000) |>
            req_headers(`X-Gravitee-Api-Key` = dmi_key) |>
            req_perform() |>
            resp_body_json()
        }
        """,
    ),
    _t(
        "forecasting/R/.Renviron",
        "t25_uuid_key",
        True,
        """
        R_LIBS_USER=~/R/library
        DMI_API_KEY={V}
        DMI_FORECAST_KEY={V2}
        TZ=Europe/Copenhagen
        """,
    ),
    # ------------------------------------------------------------------ SCADA / OT
    _t(
        "scada/opcua/server/ServerConfig.xml",
        "t25_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <ApplicationConfiguration xmlns="http://opcfoundation.org/UA/SDK/Configuration.xsd">
          <ApplicationName>Keldmark OPC UA Aggregation Server - Hvide Sande</ApplicationName>
          <ApplicationUri>urn:opcua-hvide-sande.scada.keldmark.dk:KeldmarkAggregator</ApplicationUri>
          <ServerConfiguration>
            <BaseAddresses>
              <ua:String>opc.tcp://opcua-hvide-sande.scada.keldmark.dk:4840</ua:String>
            </BaseAddresses>
            <UserTokenPolicies>
              <ua:UserTokenPolicy><ua:TokenType>UserName_1</ua:TokenType></ua:UserTokenPolicy>
            </UserTokenPolicies>
          </ServerConfiguration>
          <Extensions>
            <UserAccount name="historian-reader" password="{V}" role="Observer"/>
            <UserAccount name="scada-engineer" password="{V2}" role="Engineer"/>
          </Extensions>
        </ApplicationConfiguration>
        """,
    ),
    _t(
        "scada/opcua/server/pki/own/private/KeldmarkAggregator.pem",
        "t25_rsa_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "scada/opcua/server/pki/own/certs/KeldmarkAggregator.pem",
        "t25_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "scada/opcua/client/Keldmark.OpcBrowse/Program.cs",
        "t25_pw",
        True,
        """
        using Opc.Ua;
        using Opc.Ua.Client;

        namespace Keldmark.OpcBrowse;

        internal static class Program
        {
            private const string Endpoint = "opc.tcp://opcua-hvide-sande.scada.keldmark.dk:4840";

            private static async Task Main()
            {
                var config = await ApplicationConfigurationLoader.LoadAsync("OpcBrowse.Config.xml");
                var endpoint = CoreClientUtils.SelectEndpoint(config, Endpoint, useSecurity: true);
                var identity = new UserIdentity("historian-reader", "{V}");
                using var session = await Session.Create(config, new ConfiguredEndpoint(null, endpoint), false, "browse", 60000, identity, null);
                Console.WriteLine($"Connected: {session.SessionName}");
            }
        }
        """,
    ),
    _t(
        "scada/gateways/hvide-sande/iec104-gw01.ini",
        "t25_vendor_pw",
        True,
        """
        ; Moxa MGate 5114 - IEC 60870-5-104 <-> Modbus RTU, turbine row B
        [device]
        model=MGate 5114
        hostname=iec104-gw01.hvide-sande.scada.keldmark.dk
        ip=10.42.16.21

        [web]
        https=1
        admin_user=admin
        admin_password={V}

        [iec104]
        common_address=7
        t1_timeout=15
        """,
    ),
    _t(
        "scada/network/substations/ringsted-sw01.cfg",
        "t25_snmp_community",
        True,
        """
        ! Hirschmann RSP35 - Ringsted 132/33 kV substation LAN
        hostname ringsted-sw01
        snmp-server location "Ringsted SS, bay 3"
        snmp-server community {V} rw
        snmp-server community {V2} ro
        snmp-server host 10.42.0.15 traps version 2c
        !
        interface vlan 104
         description IEC104-RTU
         ip address 10.42.24.1 255.255.255.0
        """,
    ),
    _t(
        "scada/modbus/poll_turbines.py",
        "t25_ref_py",
        False,
        """
        \"\"\"Poll Vestas/Siemens turbine controllers over Modbus TCP via the site gateway.\"\"\"
        import os

        from pymodbus.client import ModbusTcpClient

        GATEWAY = os.getenv("MODBUS_GW", "10.42.16.30")
        GW_USER = "poller"
        GW_PASSWORD = {V}

        REGISTERS = {"active_power_kw": 40001, "wind_speed_ms": 40011, "yaw_deg": 40021}


        def poll(unit: int) -> dict[str, int]:
            with ModbusTcpClient(GATEWAY, port=502) as client:
                return {
                    name: client.read_holding_registers(addr, count=1, slave=unit).registers[0]
                    for name, addr in REGISTERS.items()
                }
        """,
    ),
    _t(
        "scada/docs/driftshaandbog-hvide-sande.md",
        "t25_pw",
        True,
        """
        # Driftshåndbog – Hvide Sande vindpark

        ## Adgang til HMI

        HMI-pc'en i kontrolrummet (`hmi01.hvide-sande.scada.keldmark.dk`) kører WinCC.
        Brugernavn: `vagt`
        Adgangskode: `{V}`

        Ved alarm på turbine B3: kvittér i WinCC, ring til vagthavende (+45 70 20 11 90).
        Efter nedlukning: skift adgangskoden og opdatér denne side.
        """,
    ),
    _t(
        "scada/docs/adgangskodepolitik.md",
        "t25_pw_policy",
        False,
        """
        # Adgangskodepolitik for OT-netværket

        - Alle lokale konti på RTU'er og gateways skal have en unik adgangskode på mindst 14 tegn.
        - Standardadgangskoder fra leverandøren skal ændres før idriftsættelse.
        - Adgangskoder opbevares kun i Keeper-mappen "OT / Substations".
        - Regex brugt af provisioning-scriptet: `{V}`
        """,
    ),
    _t(
        "scada/historian/pi-connector/connector.json",
        "t25_pw",
        True,
        """
        {
          "Name": "Keldmark-PI-to-ADX",
          "Source": {
            "Server": "pi-da01.ot.keldmark.dk",
            "AuthenticationType": "Basic",
            "UserName": "KELDMARK\\\\svc_pi_read",
            "Password": "{V}"
          },
          "Destination": {
            "Cluster": "https://adx-keldmark-ot.westeurope.kusto.windows.net",
            "Database": "turbines"
          },
          "IntervalSeconds": 60
        }
        """,
    ),
    _t(
        "scada/historian/mqtt/mosquitto/passwd",
        "t25_mosquitto_hash",
        False,
        """
        telegraf:{V}
        turbine-gw-hvs:{V2}
        grafana:{V3}
        """,
    ),
    _t(
        "scada/historian/mqtt/mosquitto/conf.d/bridge-cloud.conf",
        "t25_pw",
        True,
        """
        # Bridge site broker -> central broker in Aarhus
        connection aarhus-central
        address mqtt.ot.keldmark.dk:8883
        bridge_cafile /etc/mosquitto/ca/keldmark-ot-ca.crt
        remote_clientid hvs-bridge-01
        remote_username hvs-bridge
        remote_password {V}
        topic turbines/# out 1 site/hvs/ ""
        """,
    ),
    _t(
        "scada/vpn/wireguard/wg-hvs.conf",
        "t25_wg_key",
        True,
        """
        [Interface]
        # Hvide Sande site router -> Aarhus OT hub
        Address = 10.99.3.2/32
        PrivateKey = {V}
        ListenPort = 51820

        [Peer]
        # Aarhus hub
        Endpoint = ot-hub.keldmark.dk:51820
        AllowedIPs = 10.42.0.0/16
        PersistentKeepalive = 25
        """,
    ),
    _t(
        "scada/vpn/wireguard/peers.md",
        "t25_wg_pub",
        False,
        """
        # WireGuard peers on the Aarhus OT hub

        | Site            | Tunnel IP   | Public key |
        |-----------------|-------------|------------|
        | Hvide Sande     | 10.99.3.2   | `{V}` |
        | Ringsted SS     | 10.99.3.3   | `{V2}` |
        | Darłowo (PL)    | 10.99.3.10  | `{V3}` |

        Private keys never leave the site routers.
        """,
    ),
    _t(
        "scada/certs/iec62351/rtu07-ringsted.key",
        "t25_ec_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "scada/certs/iec62351/rtu07-ringsted.pub.pem",
        "t25_public_pem",
        False,
        """
        {V}
        """,
    ),
    _t(
        "scada/certs/iec62351/rtu08-ringsted.key.enc",
        "t25_enc_pem",
        False,
        """
        {V}
        """,
    ),
    _t(
        "scada/certs/README.md",
        "t25_cert",
        False,
        """
        # IEC 62351 certificates

        The RTU certificates below are pinned in the control-centre front end. Public material only;
        the keys are generated on the RTU's secure element.

        ```
        {V}
        ```
        """,
    ),
    _t(
        "scada/ansible/inventories/ot/group_vars/iec104_gateways/vars.yml",
        "t25_pw",
        True,
        """
        ---
        ansible_user: otadmin
        ansible_become: true
        ansible_become_password: {V}
        gateway_admin_user: admin
        gateway_admin_password: "{V2}"
        ntp_servers:
          - 10.42.0.5
          - 10.42.0.6
        """,
    ),
    _t(
        "scada/ansible/inventories/ot/group_vars/iec104_gateways/vault.yml",
        "t25_ansible_vault",
        False,
        """
        {V}
        """,
    ),
    _t(
        "scada/ansible/roles/moxa_gateway/defaults/main.yml",
        "t25_ref_jinja",
        False,
        """
        ---
        moxa_admin_user: admin
        moxa_admin_password: "{V}"
        moxa_snmp_enabled: false
        moxa_https_only: true
        """,
    ),
    _t(
        "scada/incidents/2024-11-07-ringsted-rtu-lockout.md",
        "t25_vendor_pw",
        True,
        """
        # Incident 2024-11-07: RTU07 Ringsted locked out

        **Timeline**
        - 06:12 RTU07 stops answering IEC 104 general interrogation.
        - 06:40 On-site tech connects to the RTU web UI on 10.42.24.17 with the factory login
          `admin` / `{V}` (it was never changed after commissioning!).
        - 07:05 Restarted the 104 process, GI answered.

        **Actions**
        - [ ] Change the local admin password on RTU07 and RTU08 (owner: OT team).
        - [ ] Add RTUs to the quarterly credential audit.
        """,
    ),
    # ------------------------------------------------------------------ forecasting / quant / HPC
    _t(
        "forecasting/notebooks/wind_power_fcst_dk1.ipynb",
        "t25_api_key",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "import requests\\n",
            "METEOMATICS_USER = \\"keldmark_dk\\"\\n",
            "METEOMATICS_KEY = \\"{V}\\"\\n",
            "url = f\\"https://api.meteomatics.com/now--+48h:PT1H/wind_speed_100m:ms/56.0,8.1/json\\"\\n",
            "r = requests.get(url, auth=(METEOMATICS_USER, METEOMATICS_KEY), timeout=30)"
           ]
          }
         ],
         "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "forecasting/notebooks/solar_eda_pl.ipynb",
        "t25_ref_py_nb",
        False,
        """
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["## Produkcja PV – farma Darłowo, analiza wstępna"]
          },
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "import os, getpass, keyring\\n",
            "from azure.keyvault.secrets import SecretClient\\n",
            "DB_PASSWORD = {V}\\n"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "forecasting/julia/Manifest.toml",
        "t25_git_sha",
        False,
        """
        # This file is machine-generated - editing it directly is not advised

        julia_version = "1.10.5"
        manifest_format = "2.0"

        [[deps.CSV]]
        deps = ["CodecZlib", "Dates", "FilePathsBase", "InlineStrings", "Mmap", "Parsers"]
        git-tree-sha1 = "{V}"
        uuid = "336ed68f-0bac-5ca0-87d4-7b16caf5d00b"
        version = "0.10.14"

        [[deps.LibPQ]]
        git-tree-sha1 = "{V2}"
        uuid = "194296ae-ab2e-5f79-8cd4-7183a0a5a0d1"
        version = "1.18.0"
        """,
    ),
    _t(
        "forecasting/julia/src/Store.jl",
        "t25_pw",
        True,
        """
        module Store

        using LibPQ

        const PG_HOST = get(ENV, "PG_HOST", "tsdb-fcst.keldmark.dk")
        const PG_PASSWORD = get(ENV, "PG_PASSWORD", "{V}")

        connect() = LibPQ.Connection(
            "host=$(PG_HOST) dbname=forecasts user=fcst password=$(PG_PASSWORD) sslmode=require",
        )

        end
        """,
    ),
    _t(
        "quant/risk/VarEngine.jl",
        "t25_ref_julia",
        False,
        """
        module VarEngine

        using LibPQ, Statistics

        pg_password() = {V}

        function load_pnl(book::String)
            conn = LibPQ.Connection("host=tsdb-risk.keldmark.dk dbname=risk user=quant password=$(pg_password())")
            execute(conn, "SELECT pnl FROM daily_pnl WHERE book = \\$1", [book])
        end

        var95(pnl) = -quantile(pnl, 0.05)

        end
        """,
    ),
    _t(
        "hpc/slurm/ensemble_nwp.sbatch",
        "t25_ref_env",
        False,
        """
        #!/bin/bash
        #SBATCH --job-name=ens-nwp
        #SBATCH --partition=compute
        #SBATCH --nodes=4
        #SBATCH --time=02:30:00

        module load julia/1.10 python/3.12
        export PGPASSWORD={V}
        srun julia --project=forecasting/julia forecasting/julia/run_ensemble.jl --members 51
        python forecasting/upload.py --db "host=tsdb-fcst.keldmark.dk user=fcst"
        """,
    ),
    _t(
        "hpc/slurm/sync_results.sh",
        "t25_pw",
        True,
        """
        #!/usr/bin/env bash
        # Copy ensemble output to the Gdańsk analytics box (no ssh keys on the compute nodes yet)
        set -euo pipefail
        RUN_ID="${1:?run id}"
        sshpass -p '{V}' rsync -az "/scratch/fcst/${RUN_ID}/" \\
          quant@analytics-gda01.keldmark.pl:/data/ensembles/"${RUN_ID}"/
        """,
    ),
    _t(
        "hpc/users/quant/.ssh/id_ed25519",
        "t25_openssh_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "hpc/users/quant/.ssh/authorized_keys",
        "t25_ssh_pub",
        False,
        """
        {V}
        {V2}
        """,
    ),
    _t(
        "hpc/jobs/archive_to_s3.sh",
        "t25_aws_env_pair",
        True,
        """
        #!/usr/bin/env bash
        # nightly: push forecast archives to the S3 cold-storage bucket (eu-north-1)
        export {V}
        export AWS_DEFAULT_REGION=eu-north-1
        aws s3 sync /archive/forecasts s3://keldmark-fcst-archive/ --storage-class GLACIER_IR
        """,
    ),
    _t(
        "quant/research/.pypirc",
        "t25_pypi",
        True,
        """
        [distutils]
        index-servers =
            pypi
            keldmark

        [pypi]
        username = __token__
        password = {V}

        [keldmark]
        repository = https://nexus.keldmark.dk/repository/pypi-internal/
        username = quant-publisher
        """,
    ),
    _t(
        "quant/research/pip.conf",
        "t25_url_pw",
        True,
        """
        [global]
        index-url = https://quant-ro:{V}@nexus.keldmark.dk/repository/pypi-group/simple
        trusted-host = nexus.keldmark.dk
        timeout = 60
        """,
    ),
    _t(
        "quant/research/requirements.lock",
        "t25_sha256",
        False,
        """
        # This file was autogenerated by uv via the following command:
        #    uv pip compile requirements.in --generate-hashes -o requirements.lock
        entsoe-py==0.6.16 \\
            --hash=sha256:{V}
        pandas==2.2.3 \\
            --hash=sha256:{V2} \\
            --hash=sha256:{V3}
        """,
    ),
    _t(
        "quant/research/llm/summarise_montel.py",
        "t25_openai",
        True,
        """
        \"\"\"Summarise the morning Montel headlines for the intraday desk chat.\"\"\"
        from openai import OpenAI

        client = OpenAI(api_key="{V}")


        def summarise(headlines: list[str]) -> str:
            prompt = "Summarise for a power trader (DK1/DK2/DE):\\n" + "\\n".join(headlines)
            resp = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
            return resp.choices[0].message.content
        """,
    ),
    _t(
        "quant/research/llm/README.md",
        "t25_doc_key",
        False,
        """
        # LLM helpers

        Set your own key before running anything here:

        ```bash
        export OPENAI_API_KEY="{V}"
        python summarise_montel.py
        ```

        Keys are per person (request one in #quant-tools); never commit them.
        """,
    ),
    _t(
        "quant/research/models/download_weights.py",
        "t25_hf",
        True,
        """
        from huggingface_hub import snapshot_download

        # read token of the keldmark-quant org (private fine-tuned load models)
        HF_TOKEN = "{V}"

        snapshot_download(
            repo_id="keldmark-quant/load-tft-dk",
            revision="main",
            token=HF_TOKEN,
            local_dir="/models/load-tft-dk",
        )
        """,
    ),
    _t(
        "quant/backtest/config.toml",
        "t25_pw",
        True,
        """
        [db]
        host = "tsdb-risk.keldmark.dk"
        port = 5432
        name = "backtest"
        user = "quant"
        password = "{V}"

        [run]
        books = ["DK1-WIND-HEDGE", "PL-PV-SPOT"]
        start = 2023-01-01
        """,
    ),
    _t(
        "quant/backtest/config.example.toml",
        "t25_placeholder",
        False,
        """
        [db]
        host = "localhost"
        port = 5432
        name = "backtest"
        user = "quant"
        password = "{V}"

        [run]
        books = ["DK1-WIND-HEDGE"]
        """,
    ),
    _t(
        "quant/backtest/tests/test_loader.py",
        "t25_fake",
        False,
        """
        from backtest.loader import Loader


        def test_loader_builds_dsn(monkeypatch):
            monkeypatch.setenv("PG_PASSWORD", "{V}")
            loader = Loader(host="localhost", user="quant")
            assert "password=" in loader.dsn
            assert loader.dsn.endswith("sslmode=disable")
        """,
    ),
    # ------------------------------------------------------------------ settlement / regulatory
    _t(
        "settlement/src/Keldmark.Settlement.Api/appsettings.Production.json",
        "t25_pw",
        True,
        """
        {
          "ConnectionStrings": {
            "Settlement": "Server=tcp:sql-settle-prod.keldmark.dk,1433;Database=Settlement;User ID=settle_app;Password={V};Encrypt=True;",
            "Metering": "Server=tcp:sql-settle-prod.keldmark.dk,1433;Database=Metering;User ID=meter_ro;Password={V2};Encrypt=True;"
          },
          "Energinet": {
            "DataHubUrl": "https://api.datahub3.dk",
            "ClientId": "keldmark-settlement"
          },
          "Logging": { "LogLevel": { "Default": "Information" } }
        }
        """,
    ),
    _t(
        "settlement/src/Keldmark.Settlement.Api/appsettings.json",
        "t25_ref_kv",
        False,
        """
        {
          "ConnectionStrings": {
            "Settlement": "Server=tcp:localhost,1433;Database=Settlement;User ID=settle_app;Encrypt=False;"
          },
          "Secrets": {
            "SettlementDbPassword": "{V}",
            "EnerginetClientSecret": "{V2}"
          },
          "Logging": { "LogLevel": { "Default": "Debug" } }
        }
        """,
    ),
    _t(
        "settlement/src/Keldmark.Settlement.Api/Services/DataHubClient.cs",
        "t25_azure_secret",
        True,
        """
        using Azure.Identity;

        namespace Keldmark.Settlement.Api.Services;

        public sealed class DataHubClient
        {
            private readonly ClientSecretCredential _credential;

            public DataHubClient(IConfiguration configuration)
            {
                var tenant = configuration["Energinet:TenantId"] ?? "energinet.onmicrosoft.com";
                var clientId = configuration["Energinet:ClientId"] ?? "keldmark-settlement";
                var secret = configuration["Energinet:ClientSecret"] ?? "{V}";
                _credential = new ClientSecretCredential(tenant, clientId, secret);
            }
        }
        """,
    ),
    _t(
        "settlement/src/Keldmark.Settlement.Api/Services/SettlementDb.cs",
        "t25_ref_cs",
        False,
        """
        using Microsoft.Data.SqlClient;

        namespace Keldmark.Settlement.Api.Services;

        public sealed class SettlementDb(IConfiguration configuration)
        {
            public SqlConnection Open()
            {
                var builder = new SqlConnectionStringBuilder(configuration.GetConnectionString("Settlement"))
                {
                    Password = {V},
                };
                var conn = new SqlConnection(builder.ConnectionString);
                conn.Open();
                return conn;
            }
        }
        """,
    ),
    _t(
        "settlement/tests/Keldmark.Settlement.Tests/Fakes/FakeDataHub.cs",
        "t25_fake",
        False,
        """
        namespace Keldmark.Settlement.Tests.Fakes;

        internal static class FakeDataHub
        {
            // Stub values for the in-memory DataHub; the real client never sees them.
            public const string ClientId = "test-client";
            public const string ClientSecret = "{V}";
            public const string MeteringPointPassword = "{V2}";
        }
        """,
    ),
    _t(
        "settlement/db/mssql/001_logins.sql",
        "t25_pw",
        True,
        """
        USE master;
        GO
        CREATE LOGIN settle_app WITH PASSWORD = N'{V}', CHECK_POLICY = ON;
        CREATE LOGIN meter_ro WITH PASSWORD = N'{V2}', CHECK_POLICY = ON;
        GO
        USE Settlement;
        CREATE USER settle_app FOR LOGIN settle_app;
        ALTER ROLE db_datawriter ADD MEMBER settle_app;
        GO
        """,
    ),
    _t(
        "settlement/db/postgres/roles_dump.sql",
        "t25_scram",
        False,
        """
        --
        -- PostgreSQL database cluster dump (roles only), remit-pg01
        --
        CREATE ROLE remit_rpt;
        ALTER ROLE remit_rpt WITH NOSUPERUSER INHERIT LOGIN PASSWORD '{V}';
        CREATE ROLE acer_upload;
        ALTER ROLE acer_upload WITH NOSUPERUSER INHERIT LOGIN PASSWORD '{V2}';
        """,
    ),
    _t(
        "settlement/db/postgres/legacy_roles.sql",
        "t25_pw_hash",
        False,
        """
        -- roles migrated from the old pg 10 box; hashes copied from pg_authid
        ALTER ROLE nomination_ro PASSWORD '{V}';
        -- portal app users table seed (hashed)
        INSERT INTO portal.staff_users (email, password_hash) VALUES
          ('ops@keldmark.dk', '{V2}');
        """,
    ),
    _t(
        "settlement/remit/acer_submit.py",
        "t25_long_pw",
        True,
        """
        \"\"\"Upload REMIT trade reports (XML, ACER schema v2) to the RRM SFTP endpoint.\"\"\"
        import paramiko

        RRM_HOST = "sftp.rrm.keldmark.dk"
        RRM_USER = "remit_upload"
        RRM_PASSWORD = "{V}"


        def upload(path: str) -> None:
            transport = paramiko.Transport((RRM_HOST, 22))
            transport.connect(username=RRM_USER, password=RRM_PASSWORD)
            with paramiko.SFTPClient.from_transport(transport) as sftp:
                sftp.put(path, f"/inbound/{path.rsplit('/', 1)[-1]}")
        """,
    ),
    _t(
        "settlement/remit/reference/market_participants.csv",
        "t25_lei",
        False,
        """
        name,country,acer_code,lei
        Keldmark Energy Trading A/S,DK,A0009913K.DK,{V}
        Keldmark Energia Sp. z o.o.,PL,A0012284P.PL,{V2}
        Keldmark Energy Trading Ireland DAC,IE,B0003317T.IE,{V3}
        """,
    ),
    _t(
        "settlement/remit/reference/counterparties.yaml",
        "t25_acer_code",
        False,
        """
        counterparties:
          - name: Nordic Utility Trading AB
            acer_code: {V}
            eic: 11XNORDICUTIL--3
          - name: Baltic Power Sp. z o.o.
            acer_code: {V2}
          - name: Shannon Wind Ltd
            acer_code: {V3}
        """,
    ),
    _t(
        "settlement/metering/metering_points.csv",
        "t25_gsrn",
        False,
        """
        gsrn,site,type,grid_area
        {V},Hvide Sande WF,E18,DK1
        {V2},Ringsted PV,E18,DK2
        {V3},Aarhus office,E17,DK1
        """,
    ),
    _t(
        "settlement/config/settlement-batch.properties",
        "t25_pw",
        True,
        """
        # Nightly imbalance settlement batch (Spring Batch)
        spring.datasource.url=jdbc:sqlserver://sql-settle-prod.keldmark.dk:1433;databaseName=Settlement;encrypt=true
        spring.datasource.username=settle_batch
        spring.datasource.password={V}
        settlement.esett.sftp.host=sftp.esett.com
        settlement.esett.sftp.user=keldmark_brp
        settlement.esett.sftp.password={V2}
        """,
    ),
    _t(
        "settlement/config/settlement-batch-prod.properties",
        "t25_jasypt",
        False,
        """
        # values encrypted with jasypt (PBEWITHHMACSHA512ANDAES_256), key injected at runtime
        spring.datasource.username=settle_batch
        spring.datasource.password={V}
        settlement.esett.sftp.user=keldmark_brp
        settlement.esett.sftp.password={V2}
        """,
    ),
    _t(
        "settlement/azure-pipelines.yml",
        "t25_azdo_pat",
        True,
        """
        trigger:
          branches:
            include: [main]

        pool:
          vmImage: ubuntu-latest

        variables:
          buildConfiguration: Release
          # TODO remove: PAT of the nuget feed, added while the service connection was broken
          NUGET_FEED_PAT: {V}

        steps:
          - script: |
              dotnet nuget add source https://pkgs.dev.azure.com/keldmark/_packaging/internal/nuget/v3/index.json \\
                --name keldmark --username az --password $(NUGET_FEED_PAT) --store-password-in-clear-text
              dotnet build --configuration $(buildConfiguration)
            displayName: Build
        """,
    ),
    _t(
        "portal/azure-pipelines.yml",
        "t25_ref_ado",
        False,
        """
        trigger: [main]
        pool:
          vmImage: ubuntu-latest
        steps:
          - task: npmAuthenticate@0
            inputs:
              workingFile: .npmrc
          - script: npm ci && npm run build
            env:
              NPM_TOKEN: {V}
              STRIPE_SECRET_KEY: {V2}
            displayName: Build portal
        """,
    ),
    # ------------------------------------------------------------------ retail portal
    _t(
        "portal/.env.production",
        "t25_stripe",
        True,
        """
        NEXT_PUBLIC_SITE_URL=https://mit.keldmark.dk
        NEXT_PUBLIC_DEFAULT_LOCALE=da
        STRIPE_SECRET_KEY={V}
        STRIPE_RESTRICTED_KEY_REPORTING={V2}
        DATABASE_URL=postgresql://portal@pg-portal.keldmark.dk:5432/portal?sslmode=require
        """,
    ),
    _t(
        "portal/.env.example",
        "t25_placeholder",
        False,
        """
        NEXT_PUBLIC_SITE_URL=http://localhost:3000
        NEXT_PUBLIC_DEFAULT_LOCALE=da
        STRIPE_SECRET_KEY={V}
        SENDGRID_API_KEY={V2}
        DATABASE_PASSWORD={V3}
        """,
    ),
    _t(
        "portal/src/lib/stripe-client.ts",
        "t25_stripe_pk",
        False,
        """
        import { loadStripe } from "@stripe/stripe-js";

        // Publishable key: safe to ship to the browser.
        const STRIPE_PUBLISHABLE_KEY = "{V}";

        export const stripePromise = loadStripe(STRIPE_PUBLISHABLE_KEY, { locale: "da" });
        """,
    ),
    _t(
        "portal/src/server/mail.ts",
        "t25_sendgrid",
        True,
        """
        import sgMail from "@sendgrid/mail";

        sgMail.setApiKey(process.env.SENDGRID_API_KEY ?? "{V}");

        export async function sendInvoiceMail(to: string, pdfUrl: string, locale: "da" | "pl" | "en") {
          await sgMail.send({
            to,
            from: "faktura@keldmark.dk",
            templateId: locale === "pl" ? "d-invoice-pl" : "d-invoice-da",
            dynamicTemplateData: { pdfUrl },
          });
        }
        """,
    ),
    _t(
        "portal/src/server/session.ts",
        "t25_hex64",
        True,
        """
        import { getIronSession } from "iron-session";
        import { cookies } from "next/headers";

        export const sessionOptions = {
          password: process.env.SESSION_SECRET || "{V}",
          cookieName: "keldmark_portal",
          cookieOptions: { secure: process.env.NODE_ENV === "production", sameSite: "lax" as const },
        };

        export async function getSession() {
          return getIronSession(await cookies(), sessionOptions);
        }
        """,
    ),
    _t(
        "portal/src/server/datahub.ts",
        "t25_ref_js",
        False,
        """
        const DATAHUB_TOKEN = {V};

        export async function meterReadings(gsrn: string, from: string, to: string) {
          const res = await fetch(`https://api.eloverblik.dk/thirdpartyapi/api/meterdata/gettimeseries/${from}/${to}/Hour`, {
            method: "POST",
            headers: { Authorization: `Bearer ${DATAHUB_TOKEN}`, "Content-Type": "application/json" },
            body: JSON.stringify({ meteringPoints: { meteringPoint: [gsrn] } }),
          });
          return res.json();
        }
        """,
    ),
    _t(
        "portal/src/i18n/da.json",
        "t25_i18n_da",
        False,
        """
        {
          "login.title": "Log ind på Mit Keldmark",
          "login.password": "Adgangskode",
          "login.error": "{V}",
          "login.forgot": "{V2}",
          "settings.password.hint": "{V3}"
        }
        """,
    ),
    _t(
        "portal/src/i18n/pl.json",
        "t25_i18n_pl",
        False,
        """
        {
          "login.title": "Zaloguj się do Mój Keldmark",
          "login.password": "Hasło",
          "login.error": "{V}",
          "login.forgot": "{V2}",
          "api.token.label": "{V3}"
        }
        """,
    ),
    _t(
        "portal/src/components/PasswordForm.tsx",
        "t25_keyword",
        False,
        """
        import { useTranslations } from "next-intl";

        export function PasswordForm({ onSubmit }: { onSubmit: (data: FormData) => void }) {
          const t = useTranslations("settings");
          return (
            <form action={onSubmit}>
              <label htmlFor="current">{t("password.current")}</label>
              <input id="current" name="{V}" type="password" autoComplete="current-password" />
              <label htmlFor="next">{t("password.new")}</label>
              <input id="next" name="new_{V2}" type="password" autoComplete="new-password" minLength={12} />
              <button type="submit">{t("password.save")}</button>
            </form>
          );
        }
        """,
    ),
    _t(
        "portal/src/lib/passwordPolicy.ts",
        "t25_pw_policy",
        False,
        """
        export const PASSWORD_POLICY = {
          pattern: "{V}",
          legacyPattern: "{V2}",
          description: {
            da: "Adgangskoden skal have mindst 12 tegn, et stort bogstav og et tal",
            pl: "Hasło musi mieć co najmniej 12 znaków",
          },
        };
        """,
    ),
    _t(
        "portal/tests/fixtures/users.json",
        "t25_pw_hash",
        False,
        """
        [
          {"email": "anna.nielsen@example.dk", "locale": "da", "password_hash": "{V}"},
          {"email": "piotr.kowalski@example.pl", "locale": "pl", "password_hash": "{V2}"},
          {"email": "sean.murphy@example.ie", "locale": "en", "password_hash": "{V3}"}
        ]
        """,
    ),
    _t(
        "portal/tests/e2e/login.spec.ts",
        "t25_fake",
        False,
        """
        import { test, expect } from "@playwright/test";

        // Seeded by tests/fixtures/seed.ts into the throwaway e2e database only.
        const E2E_USER = { email: "e2e@example.dk", password: "{V}" };

        test("customer can log in", async ({ page }) => {
          await page.goto("/da/login");
          await page.getByLabel("E-mail").fill(E2E_USER.email);
          await page.getByLabel("Adgangskode").fill(E2E_USER.password);
          await page.getByRole("button", { name: "Log ind" }).click();
          await expect(page.getByText("Dit forbrug")).toBeVisible();
        });
        """,
    ),
    _t(
        "portal/tests/cassettes/eloverblik_token.json",
        "t25_jwt",
        True,
        """
        {
          "http_interactions": [
            {
              "request": {
                "method": "get",
                "uri": "https://api.eloverblik.dk/thirdpartyapi/api/token",
                "headers": {"Authorization": ["Bearer {V}"]}
              },
              "response": {"status": {"code": 200}, "body": {"string": "{\\"result\\": \\"ok\\"}"}}
            }
          ]
        }
        """,
    ),
    _t(
        "portal/docs/api-auth.md",
        "t25_doc_jwt",
        False,
        """
        # Portal API authentication

        The portal API takes a bearer JWT issued by `auth.keldmark.dk`. A request looks like this
        (the token below is the well-known jwt.io sample, not one of ours):

            curl -H "Authorization: Bearer {V}" https://mit.keldmark.dk/api/v1/me
        """,
    ),
    _t(
        "portal/.npmrc",
        "t25_npm",
        True,
        """
        @keldmark:registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        engine-strict=true
        """,
    ),
    _t(
        "portal/.docker/config.json",
        "t25_basic",
        True,
        """
        {
          "auths": {
            "crkeldmarkprod.azurecr.io": {
              "auth": "{V}"
            },
            "nexus.keldmark.dk:8443": {
              "auth": "{V2}"
            }
          },
          "credsStore": ""
        }
        """,
    ),
    _t(
        "portal-legacy/config/database.php",
        "t25_pw",
        True,
        """
        <?php

        return [
            'default' => env('DB_CONNECTION', 'mysql'),
            'connections' => [
                'mysql' => [
                    'driver' => 'mysql',
                    'host' => env('DB_HOST', 'mysql-portal-legacy.keldmark.dk'),
                    'database' => env('DB_DATABASE', 'kunder'),
                    'username' => env('DB_USERNAME', 'portal'),
                    'password' => env('DB_PASSWORD', '{V}'),
                    'charset' => 'utf8mb4',
                ],
            ],
        ];
        """,
    ),
    _t(
        "portal-legacy/config/services.php",
        "t25_ref_php",
        False,
        """
        <?php

        return [
            'mobilepay' => [
                'client_id' => env('MOBILEPAY_CLIENT_ID'),
                'secret' => {V},
                'subscription_key' => {V2},
            ],
            'sendgrid' => ['key' => env('SENDGRID_API_KEY')],
        ];
        """,
    ),
    _t(
        "portal-legacy/.env",
        "t25_laravel_key",
        True,
        """
        APP_NAME="Keldmark Kundeportal"
        APP_ENV=production
        APP_KEY={V}
        APP_DEBUG=false
        APP_URL=https://kunde.keldmark.dk
        LOG_CHANNEL=stack
        """,
    ),
    _t(
        "tools/meter-import/config/database.yml",
        "t25_ref_erb",
        False,
        """
        default: &default
          adapter: postgresql
          encoding: unicode
          pool: 5

        production:
          <<: *default
          host: pg-meter.keldmark.dk
          database: meter_import
          username: meter_import
          password: "{V}"
        """,
    ),
    _t(
        "tools/meter-import/config/master.key",
        "t25_hex32",
        True,
        """
        {V}
        """,
    ),
    _t(
        "tools/meter-import/config/credentials.yml.enc",
        "t25_rails_enc",
        False,
        """
        {V}
        """,
    ),
    _t(
        "tools/meter-import/lib/datahub_sftp.rb",
        "t25_pw",
        True,
        """
        require "net/sftp"

        module MeterImport
          class DatahubSftp
            HOST = "sftp.datahub.keldmark.dk"

            def initialize(user: "meter_import", password: ENV.fetch("DATAHUB_SFTP_PASSWORD", "{V}"))
              @user = user
              @password = password
            end

            def fetch_all(dir = "/outbound/timeseries")
              Net::SFTP.start(HOST, @user, password: @password) do |sftp|
                sftp.dir.glob(dir, "*.xml").map { |entry| sftp.download!("#{dir}/#{entry.name}") }
              end
            end
          end
        end
        """,
    ),
    _t(
        "tools/meter-import/lib/datahub_api.rb",
        "t25_ref_ruby",
        False,
        """
        require "faraday"

        module MeterImport
          class DatahubApi
            def initialize(password: {V})
              @conn = Faraday.new("https://api.datahub.keldmark.dk") do |f|
                f.request :authorization, :basic, "meter_import", password
              end
            end
          end
        end
        """,
    ),
    _t(
        "mobile/ios/KeldmarkPortal/Config/AppSecrets.swift",
        "t25_api_key",
        True,
        """
        import Foundation

        enum AppSecrets {
            // Portal mobile API key (prod). Injected by the xcconfig in release builds.
            static let portalApiKey = ProcessInfo.processInfo.environment["PORTAL_API_KEY"] ?? "{V}"
            static let baseURL = URL(string: "https://mit.keldmark.dk/api/mobile/v2")!
        }
        """,
    ),
    _t(
        "mobile/ios/KeldmarkPortal/Config/AppConfig.swift",
        "t25_ref_swift",
        False,
        """
        import Foundation

        struct AppConfig {
            let apiKey: String = {V}
            let baseURL = URL(string: "https://mit.keldmark.dk/api/mobile/v2")!
            let supportedLocales = ["da", "pl", "en"]
        }
        """,
    ),
    # ------------------------------------------------------------------ infrastructure
    _t(
        "infra/terraform/azure/providers.tf",
        "t25_uuid",
        False,
        """
        terraform {
          required_providers {
            azurerm = { source = "hashicorp/azurerm", version = "~> 4.10" }
          }
        }

        provider "azurerm" {
          features {}
          subscription_id = "{V}"
          tenant_id       = "{V2}"
        }
        """,
    ),
    _t(
        "infra/terraform/azure/sp.auto.tfvars",
        "t25_azure_secret",
        True,
        """
        # service principal used by the forecast pipeline to write to ADLS
        forecast_sp_client_id     = "forecast-pipeline"
        forecast_sp_client_secret = "{V}"
        location                  = "westeurope"
        """,
    ),
    _t(
        "infra/terraform/azure/backend.tf",
        "t25_azure_storage_key",
        True,
        """
        terraform {
          backend "azurerm" {
            resource_group_name  = "rg-keldmark-tfstate"
            storage_account_name = "stkeldmarktfstate"
            container_name       = "tfstate"
            key                  = "platform.tfstate"
            access_key           = "{V}"
          }
        }
        """,
    ),
    _t(
        "infra/terraform/azure/sql.tf",
        "t25_ref_tf",
        False,
        """
        resource "azurerm_mssql_server" "settlement" {
          name                         = "sql-settle-prod"
          resource_group_name          = azurerm_resource_group.settlement.name
          location                     = "westeurope"
          version                      = "12.0"
          administrator_login          = "settleadmin"
          administrator_login_password = {V}
          minimum_tls_version          = "1.2"
        }
        """,
    ),
    _t(
        "infra/terraform/aws/iam.tf",
        "t25_aws_account",
        False,
        """
        data "aws_iam_policy_document" "archive_assume" {
          statement {
            actions = ["sts:AssumeRole"]
            principals {
              type        = "AWS"
              identifiers = ["arn:aws:iam::{V}:role/fcst-archiver"]
            }
          }
        }

        resource "aws_s3_bucket" "archive" {
          bucket = "keldmark-fcst-archive"
          tags   = { owner = "quant", account = "{V2}" }
        }
        """,
    ),
    _t(
        "infra/aws/credentials",
        "t25_aws_ini_pair",
        True,
        """
        [default]
        region = eu-north-1

        [keldmark-archive]
        {V}
        region = eu-north-1
        """,
    ),
    _t(
        "infra/aws/README.md",
        "t25_doc_aws",
        False,
        """
        # AWS (cold archive only)

        Configure a profile with your own IAM user keys; the AWS docs' sample looks like:

        ```ini
        [keldmark-archive]
        aws_access_key_id = {V}
        aws_secret_access_key = <from the IAM console>
        ```
        """,
    ),
    _t(
        "infra/gcp/bq-export-sa.json",
        "t25_gcp_sa_key",
        True,
        """
        {
          "type": "service_account",
          "project_id": "keldmark-fcst-export",
          "private_key_id": "7c1f0a52d96b4e83a4f0d2b6c9e1a7f35b8d0c42",
          "private_key": "{V}",
          "client_email": "bq-export@keldmark-fcst-export.iam.gserviceaccount.com",
          "client_id": "104883927716452093318",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "infra/k8s/etrm/secret.yaml",
        "t25_b64_pw",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: etrm-db
          namespace: trading
        type: Opaque
        data:
          username: RVRSTV9BUFA=
          password: {V}
        """,
    ),
    _t(
        "infra/k8s/etrm/sealed-secret.yaml",
        "t25_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: etrm-db
          namespace: trading
        spec:
          encryptedData:
            password: {V}
            username: {V2}
        """,
    ),
    _t(
        "infra/k8s/etrm/external-secret.yaml",
        "t25_ref_store",
        False,
        """
        apiVersion: external-secrets.io/v1beta1
        kind: ExternalSecret
        metadata:
          name: nordpool-api
          namespace: trading
        spec:
          secretStoreRef:
            name: azure-kv-prod
            kind: ClusterSecretStore
          data:
            - secretKey: password
              remoteRef:
                key: "{V}"
        """,
    ),
    _t(
        "infra/k8s/marketdata/deployment.yaml",
        "t25_image_digest",
        False,
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: entsoe-feed
          namespace: marketdata
        spec:
          replicas: 1
          template:
            spec:
              containers:
                - name: feed
                  image: crkeldmarkprod.azurecr.io/marketdata/entsoe-feed@{V}
                  env:
                    - name: ENTSOE_TOKEN
                      valueFrom:
                        secretKeyRef: {name: entsoe, key: token}
                - name: otel
                  image: otel/opentelemetry-collector-contrib@{V2}
        """,
    ),
    _t(
        "infra/k8s/marketdata/entsoe-secret.yaml",
        "t25_uuid_key",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: entsoe
          namespace: marketdata
        type: Opaque
        stringData:
          token: "{V}"
        """,
    ),
    _t(
        "infra/helm/forecast-api/values-prod.yaml",
        "t25_pw",
        True,
        """
        image:
          repository: crkeldmarkprod.azurecr.io/forecast/api
          tag: "2024.11.3"
        postgres:
          host: tsdb-fcst.keldmark.dk
          user: fcst_api
          password: "{V}"
        redis:
          url: redis://:{V2}@redis-fcst.keldmark.dk:6379/0
        ingress:
          host: forecast.keldmark.dk
        """,
    ),
    _t(
        "infra/helm/forecast-api/values.yaml",
        "t25_placeholder",
        False,
        """
        image:
          repository: crkeldmarkprod.azurecr.io/forecast/api
          tag: latest
        postgres:
          host: localhost
          user: fcst_api
          password: "{V}"
        redis:
          password: "{V2}"
        """,
    ),
    _t(
        "infra/helm/forecast-api/templates/secret.yaml",
        "t25_ref_helm",
        False,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ include "forecast-api.fullname" . }}
        type: Opaque
        stringData:
          POSTGRES_PASSWORD: "{V}"
        """,
    ),
    _t(
        "infra/ansible/roles/influxdb/defaults/main.yml",
        "t25_influx_token",
        True,
        """
        ---
        influxdb_org: keldmark
        influxdb_bucket: turbines
        influxdb_retention: 90d
        influxdb_admin_token: "{V}"
        """,
    ),
    _t(
        "infra/systemd/iec104-bridge.service",
        "t25_pw",
        True,
        """
        [Unit]
        Description=IEC 104 to Kafka bridge (Hvide Sande)
        After=network-online.target

        [Service]
        User=iec104
        Environment=KAFKA_BOOTSTRAP=kafka-01.trading.keldmark.dk:9093
        Environment=KAFKA_SASL_USER=iec104-bridge
        Environment=KAFKA_SASL_PASSWORD={V}
        ExecStart=/opt/iec104-bridge/bin/bridge --config /etc/iec104-bridge/bridge.yaml
        Restart=always

        [Install]
        WantedBy=multi-user.target
        """,
    ),
    _t(
        "infra/systemd/forecast-upload.service",
        "t25_ref_env",
        False,
        """
        [Unit]
        Description=Upload forecasts to the TSO portal

        [Service]
        Type=oneshot
        User=fcst
        EnvironmentFile=/etc/keldmark/forecast-upload.env
        ExecStart=/bin/sh -c 'PGPASSWORD={V} /opt/fcst/bin/upload --db tsdb-fcst.keldmark.dk'
        """,
    ),
    _t(
        "infra/nginx/grafana-proxy.conf",
        "t25_basic",
        True,
        """
        server {
            listen 443 ssl;
            server_name dashboards.keldmark.dk;

            location /api/datasources/proxy/ {
                proxy_pass https://grafana.ot.keldmark.dk;
                proxy_set_header Authorization "Basic {V}";
            }
        }
        """,
    ),
    _t(
        "infra/nginx/htpasswd.trading",
        "t25_apr1",
        False,
        """
        jrasmussen:{V}
        pkowalczyk:{V2}
        omurphy:{V3}
        """,
    ),
    _t(
        "marketdata/docker-compose.yml",
        "t25_pw",
        True,
        """
        services:
          timescale:
            image: timescale/timescaledb:2.17.2-pg16
            environment:
              POSTGRES_USER: mdfeed
              POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-{V}}
            volumes:
              - tsdata:/var/lib/postgresql/data
          feed:
            build: .
            environment:
              DATABASE_URL: postgresql://mdfeed:${POSTGRES_PASSWORD:-{V}}@timescale:5432/marketdata
        volumes:
          tsdata: {}
        """,
    ),
    _t(
        "secrets/age/keys.txt",
        "t25_age_key",
        True,
        """
        # created: 2024-09-12T08:41:07+02:00
        # public key: see .sops.yaml (platform team)
        {V}
        """,
    ),
    _t(
        ".sops.yaml",
        "t25_age_pub",
        False,
        """
        creation_rules:
          - path_regex: secrets/prod/.*\\.yaml$
            age: >-
              {V},
              {V2}
          - path_regex: secrets/dev/.*\\.yaml$
            age: {V3}
        """,
    ),
    _t(
        "secrets/prod/etrm.enc.yaml",
        "t25_sops",
        False,
        """
        oracle:
            password: {V}
        nordpool:
            password: {V2}
        sops:
            lastmodified: "2024-10-21T09:14:55Z"
            mac: {V3}
            version: 3.9.1
        """,
    ),
    _t(
        "infra/vault/agent/etrm.hcl",
        "t25_vault_token",
        True,
        """
        vault {
          address = "https://vault.keldmark.dk:8200"
        }

        auto_auth {
          method "token_file" {
            config = {
              token_file_path = "/etc/vault-agent/token"
            }
          }
        }

        # bootstrap token, revoke after first AppRole login
        # token = "{V}"

        template {
          source      = "/etc/vault-agent/etrm.ctmpl"
          destination = "/etc/etrm/secrets.env"
        }
        """,
    ),
    # ------------------------------------------------------------------ CI
    _t(
        ".github/workflows/deploy-portal.yml",
        "t25_ref_gha",
        False,
        """
        name: deploy-portal
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: azure/login@v2
                with:
                  creds: '{"clientId":"${{ vars.AZURE_CLIENT_ID }}","clientSecret":"{V}","tenantId":"${{ vars.AZURE_TENANT_ID }}"}'
              - run: az acr login -n crkeldmarkprod
              - run: docker build -t crkeldmarkprod.azurecr.io/portal:${{ github.sha }} portal && docker push crkeldmarkprod.azurecr.io/portal:${{ github.sha }}
                env:
                  NPM_TOKEN: {V2}
        """,
    ),
    _t(
        ".github/workflows/nightly-backtest.yml",
        "t25_github",
        True,
        """
        name: nightly-backtest
        on:
          schedule:
            - cron: "30 2 * * *"
        jobs:
          backtest:
            runs-on: [self-hosted, hpc]
            env:
              # bot PAT so the job can clone keldmark/quant-models (private)
              GH_TOKEN: {V}
            steps:
              - uses: actions/checkout@v4
              - run: git clone https://x-access-token:${GH_TOKEN}@github.com/keldmark/quant-models.git
              - run: python -m backtest --books DK1-WIND-HEDGE,PL-PV-SPOT
        """,
    ),
    _t(
        "scada/.gitlab-ci.yml",
        "t25_gitlab",
        True,
        """
        stages: [lint, package, release]

        variables:
          PIP_INDEX_URL: https://nexus.keldmark.dk/repository/pypi-group/simple

        release:
          stage: release
          image: curlimages/curl:8.10.1
          script:
            - 'curl --header "PRIVATE-TOKEN: {V}" --upload-file dist/iec104-bridge.tar.gz
              "https://gitlab.keldmark.dk/api/v4/projects/42/packages/generic/iec104-bridge/${CI_COMMIT_TAG}/iec104-bridge.tar.gz"'
          rules:
            - if: $CI_COMMIT_TAG
        """,
    ),
    _t(
        "ci/jenkins/jobs/scada-deploy.groovy",
        "t25_github_fine",
        True,
        """
        pipelineJob('scada-deploy') {
            definition {
                cpsScm {
                    scm {
                        git {
                            remote {
                                // fine-grained PAT, read-only on scada-config
                                url('https://oauth2:{V}@github.com/keldmark/scada-config.git')
                            }
                            branch('main')
                        }
                    }
                }
            }
        }
        """,
    ),
    # ------------------------------------------------------------------ ops tooling
    _t(
        "ops/alerting/alertmanager.yml",
        "t25_slack_webhook",
        True,
        """
        route:
          receiver: trading-desk
          routes:
            - matchers: [team="ot"]
              receiver: ot-oncall
        receivers:
          - name: trading-desk
            slack_configs:
              - api_url: {V}
                channel: "#intraday-alerts"
          - name: ot-oncall
            slack_configs:
              - api_url: {V2}
                channel: "#ot-vagt"
        """,
    ),
    _t(
        "ops/alerting/README.md",
        "t25_doc_webhook",
        False,
        """
        # Alertmanager

        Each receiver needs a Slack incoming-webhook URL. Slack's docs show the shape as
        `{V}`; the real URLs live in the `alertmanager-slack` Key Vault secret and are mounted
        at `/etc/alertmanager/secrets/`.
        """,
    ),
    _t(
        "ops/alerting/teams_notify.py",
        "t25_teams_url",
        True,
        """
        \"\"\"Post imbalance alerts to the Teams channel 'Balancering / Bilansowanie'.\"\"\"
        import requests

        TEAMS_WORKFLOW_URL = "{V}"


        def notify(area: str, mw: float) -> None:
            card = {"type": "message", "text": f"Ubalance i {area}: {mw:.1f} MW"}
            requests.post(TEAMS_WORKFLOW_URL, json=card, timeout=10).raise_for_status()
        """,
    ),
    _t(
        "ops/azure/archive-sas.ps1",
        "t25_sas_sig",
        True,
        """
        # Upload daily settlement PDFs to the archive container (SAS valid to 2026-12-31)
        $sasUrl = "https://stkeldmarkarchive.blob.core.windows.net/settlement?sv=2022-11-02&ss=b&srt=co&sp=rwlac&se=2026-12-31T23:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig={V}"
        Get-ChildItem -Path D:\\Settlement\\Out\\*.pdf | ForEach-Object {
            azcopy copy $_.FullName $sasUrl
        }
        """,
    ),
    _t(
        "ops/grafana/provisioning/datasources/influx.yaml",
        "t25_influx_token",
        True,
        """
        apiVersion: 1
        datasources:
          - name: Turbines (InfluxDB)
            type: influxdb
            url: https://influx.ot.keldmark.dk:8086
            jsonData:
              version: Flux
              organization: keldmark
              defaultBucket: turbines
            secureJsonData:
              token: {V}
        """,
    ),
    _t(
        "ops/grafana/provisioning/datasources/influx-dev.yaml",
        "t25_ref_grafana",
        False,
        """
        apiVersion: 1
        datasources:
          - name: Turbines (dev)
            type: influxdb
            url: http://influx-dev:8086
            jsonData:
              version: Flux
              organization: keldmark
            secureJsonData:
              token: {V}
        """,
    ),
    _t(
        "ops/grafana/grafana.ini",
        "t25_weak_pw",
        True,
        """
        [server]
        domain = grafana.ot.keldmark.dk
        root_url = https://%(domain)s/

        [security]
        admin_user = admin
        admin_password = {V}

        [auth.anonymous]
        enabled = false
        """,
    ),
    _t(
        "ops/grafana/sync_dashboards.py",
        "t25_grafana_sa",
        True,
        """
        \"\"\"Export Grafana dashboards to git every night.\"\"\"
        import json
        import pathlib

        import requests

        GRAFANA = "https://grafana.ot.keldmark.dk"
        HEADERS = {"Authorization": "Bearer {V}"}

        for hit in requests.get(f"{GRAFANA}/api/search?type=dash-db", headers=HEADERS, timeout=30).json():
            dash = requests.get(f"{GRAFANA}/api/dashboards/uid/{hit['uid']}", headers=HEADERS, timeout=30).json()
            pathlib.Path(f"dashboards/{hit['uid']}.json").write_text(json.dumps(dash, indent=2))
        """,
    ),
    _t(
        "ops/datadog/datadog.yaml",
        "t25_hex32",
        True,
        """
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        tags:
          - env:prod
          - team:settlement
        logs_enabled: true
        """,
    ),
    _t(
        "ops/datadog/conf.d/postgres.d/conf.yaml",
        "t25_ref_dd",
        False,
        """
        init_config:

        instances:
          - host: pg-portal.keldmark.dk
            port: 5432
            username: datadog
            password: "{V}"
            dbm: true
        """,
    ),
    _t(
        "ops/datadog/monitors/export.json",
        "t25_uuid",
        False,
        """
        {
          "monitors": [
            {"id": 148822931, "name": "ETRM deal capture lag", "org_uuid": "{V}"},
            {"id": 148822977, "name": "Settlement batch failed", "org_uuid": "{V}"}
          ],
          "exported_by": "{V2}"
        }
        """,
    ),
    _t(
        "ops/scripts/Backup-Historian.ps1",
        "t25_pw",
        True,
        """
        param([string]$Target = "\\\\nas-aarhus01\\ot-backup")

        $user = "KELDMARK\\svc_historian_bkp"
        $pass = ConvertTo-SecureString "{V}" -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($user, $pass)

        New-PSDrive -Name B -PSProvider FileSystem -Root $Target -Credential $cred | Out-Null
        Copy-Item -Path "D:\\PI\\Archives\\*.arc" -Destination "B:\\$(Get-Date -Format yyyyMMdd)" -Recurse
        """,
    ),
    _t(
        "ops/scripts/Rotate-GatewayPassword.ps1",
        "t25_ref_ps",
        False,
        """
        param([Parameter(Mandatory)] [string]$Gateway)

        $newPassword = {V}
        $body = @{ user = "admin"; password = $newPassword } | ConvertTo-Json
        Invoke-RestMethod -Method Put -Uri "https://$Gateway/api/v1/users/admin" -Body $body -ContentType "application/json"
        Write-Host "Rotated admin password on $Gateway"
        """,
    ),
    _t(
        "ops/scripts/map_settlement_share.bat",
        "t25_pw",
        True,
        """
        @echo off
        REM Map the eSett report share on the settlement jump host
        net use S: \\\\fs-settle01.keldmark.dk\\esett /user:KELDMARK\\svc_esett {V} /persistent:no
        robocopy S:\\inbound D:\\esett\\inbound *.xml /MOV /R:2 /W:5
        net use S: /delete
        """,
    ),
    _t(
        "ops/scripts/pg_backup.sh",
        "t25_url_pw",
        True,
        """
        #!/usr/bin/env bash
        set -euo pipefail
        STAMP=$(date +%Y%m%d)
        pg_dump "postgresql://backup:{V}@pg-portal.keldmark.dk:5432/portal?sslmode=require" \\
          | gzip > "/backup/portal-${STAMP}.sql.gz"
        find /backup -name 'portal-*.sql.gz' -mtime +14 -delete
        """,
    ),
    _t(
        "ops/scripts/pg_backup_tsdb.sh",
        "t25_ref_env",
        False,
        """
        #!/usr/bin/env bash
        set -euo pipefail
        export PGPASSWORD={V}
        pg_dump -h tsdb-fcst.keldmark.dk -U backup forecasts | zstd > "/backup/fcst-$(date +%F).sql.zst"
        """,
    ),
    _t(
        "ops/scripts/datahub_smoke.sh",
        "t25_basic",
        True,
        """
        #!/bin/sh
        # smoke test against the DataHub B2B endpoint after certificate renewal
        curl -sf https://b2b.datahub.keldmark.dk/health \\
          -H "Authorization: Basic {V}" \\
          -H "Accept: application/json"
        """,
    ),
    _t(
        "ops/docs/curl-cheatsheet.md",
        "t25_doc_basic",
        False,
        """
        # curl cheatsheet

        Basic auth is just base64 of `user:password`. The RFC 7617 sample header is

            Authorization: Basic {V}

        Use `curl -u user` and let curl prompt for the password instead of pasting headers.
        """,
    ),
    # ------------------------------------------------------------------ docs, tickets, chat
    _t(
        "ops/runbooks/onboarding_pl.md",
        "t25_weak_pw",
        True,
        """
        # Wdrożenie nowego pracownika – biuro Gdańsk

        1. Konto AD zakłada IT w Aarhus (zgłoszenie w Jira, projekt ITSUP).
        2. VPN: `vpn.keldmark.pl`, login = inicjały, hasło tymczasowe: `{V}`
           (wymuszona zmiana przy pierwszym logowaniu – niestety nie na bramie VPN).
        3. Dostęp do ETRM (tylko odczyt) zatwierdza kierownik desku.
        4. Szkolenie REMIT – w ciągu pierwszych 30 dni.
        """,
    ),
    _t(
        "ops/runbooks/onboarding_da.md",
        "t25_placeholder",
        False,
        """
        # Onboarding – kontoret i Aarhus

        1. IT opretter AD-kontoen og sender et engangslink til den nye medarbejder.
        2. VPN: `vpn.keldmark.dk`, brugernavn = initialer, adgangskode: `{V}` (den du selv valgte via engangslinket).
        3. ETRM-adgang (læseadgang) godkendes af deskchefen.
        """,
    ),
    _t(
        "ops/chat/slack-export/intraday-desk/2024-11-14.json",
        "t25_pw",
        True,
        """
        [
          {
            "type": "message",
            "user": "U04KQ7M2LTD",
            "text": "EPEX UAT is up again, same login as before: keldmark_uat02 / {V}",
            "ts": "1731571212.019300"
          },
          {
            "type": "message",
            "user": "U03PL9ZB7QX",
            "text": "thx, dziala :+1:",
            "ts": "1731571290.021100"
          }
        ]
        """,
    ),
    _t(
        "ops/chat/teams-export/ot-vagt-2024-12.txt",
        "t25_redacted",
        False,
        """
        [03.12.2024 07:14] Mads Holm: RTU08 svarer ikke, nogen der har login til web-UI?
        [03.12.2024 07:16] Aoife Byrne: It's in Keeper under OT / Substations. Don't paste it here.
        [03.12.2024 07:17] Mads Holm: ok, admin / {V} virker, tak
        [03.12.2024 07:30] Mads Holm: GI besvaret igen, lukker sagen
        """,
    ),
    _t(
        "ops/tickets/OPS-4412.md",
        "t25_pkcs8_key",
        True,
        """
        # OPS-4412: Nyt klientcertifikat til eSett B2B

        **Reporter:** Katrine Lund  **Status:** I gang

        Nøglen er genereret på jumphost, CSR sendt til eSett. Privat nøgle (indtil vi har flyttet
        den til Key Vault):

        ```
        {V}
        ```

        Næste skridt: importér certifikatet når eSett svarer, og slet denne kommentar.
        """,
    ),
    _t(
        "quant/tools/pnl_bot/bot.py",
        "t25_slack_bot",
        True,
        """
        \"\"\"Posts the end-of-day P&L per book to #trading-pnl.\"\"\"
        import os

        from slack_sdk import WebClient

        client = WebClient(token=os.environ.get("SLACK_BOT_TOKEN", "{V}"))


        def post_pnl(rows: list[tuple[str, float]]) -> None:
            text = "\\n".join(f"{book}: {pnl:,.0f} EUR" for book, pnl in rows)
            client.chat_postMessage(channel="#trading-pnl", text=text)
        """,
    ),
    _t(
        "forecasting/api/fcst_api/settings.py",
        "t25_django_key",
        True,
        """
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent

        SECRET_KEY = "{V}"
        DEBUG = False
        ALLOWED_HOSTS = ["forecast.keldmark.dk"]

        LANGUAGE_CODE = "da"
        TIME_ZONE = "Europe/Copenhagen"
        INSTALLED_APPS = ["django.contrib.contenttypes", "rest_framework", "fcst_api.forecasts"]
        """,
    ),
    _t(
        "trading/gateways/eex-rs/src/main.rs",
        "t25_ref_rust",
        False,
        """
        mod config;

        use anyhow::Result;

        #[tokio::main]
        async fn main() -> Result<()> {
            let api_key = {V};
            let client = reqwest::Client::builder().build()?;
            let resp = client
                .get("https://api.eex-group.com/trading/v2/positions")
                .header("X-Api-Key", api_key)
                .send()
                .await?;
            println!("{}", resp.status());
            Ok(())
        }
        """,
    ),
    _t(
        "trading/risk/limits.yaml",
        "t25_role_word",
        False,
        """
        books:
          DK1-WIND-HEDGE:
            max_position_mw: 150
            approver_role: {V}
          PL-PV-SPOT:
            max_position_mw: 40
            approver_role: {V2}
        access:
          password_reset_role: {V3}
          token_issuer_role: platform
        """,
    ),
    _t(
        "hpc/jobs/tests/test_archive.py",
        "t25_doc_aws_secret",
        False,
        """
        import boto3
        from moto import mock_aws


        @mock_aws
        def test_archive_upload(tmp_path):
            # moto accepts anything; these are the AWS documentation sample credentials
            s3 = boto3.client(
                "s3",
                region_name="eu-north-1",
                aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                aws_secret_access_key="{V}",
            )
            s3.create_bucket(Bucket="keldmark-fcst-archive", CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
            (tmp_path / "a.nc").write_bytes(b"x")
            s3.upload_file(str(tmp_path / "a.nc"), "keldmark-fcst-archive", "a.nc")
        """,
    ),
    _t(
        "docs/wiki/Adgangskoder-og-tokens.md",
        "t25_ref_store",
        False,
        """
        # Adgangskoder og tokens / Hasła i tokeny

        Vi gemmer aldrig adgangskoder i git. Brug referencer:

        | System               | Reference |
        |----------------------|-----------|
        | Nord Pool API        | `{V}` |
        | OPC UA (Hvide Sande) | `{V2}` |
        | Settlement SQL       | `{V3}` |

        Pytania? Kanał #platform (po angielsku lub po polsku).
        """,
    ),
]
