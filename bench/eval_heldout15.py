"""Blind part ``heldout15``: a car maker, Vantorra Motors (plants and head office in Italy, a
German engineering centre, a Czech components plant, Mexican assembly and sales), with its
connected-car platform, dealer network and finance arm. Files are the vehicle telematics backend
(Go and Kotlin ingest services, Kafka, MQTT bridges, AWS IoT and Azure IoT Hub device config,
InfluxDB and TimescaleDB), the over-the-air update service (Rust and Go, TUF/Uptane-style metadata
and signing keys, Artifactory and S3 delivery, release pipelines), dealer management system
integrations (C#/.NET and Java SOAP clients, SFTP partner feeds, SQL Server, dealer configs per
country), factory MES/SCADA (Ignition, OPC UA, PLC and HMI configs, SNMP, Python collectors,
PowerShell and batch scripts, Ansible), the car-sharing app (Swift, Kotlin, React Native and Node,
Firebase, APNs, Mapbox, HERE, Stripe, Mercado Pago, Twilio), the charging-station backend (OCPP 1.6
and 2.0.1 central system in Java and Python, charger provisioning files), the finance arm (Spring,
PHP, SQL, SAT CFDI stamping in Mexico, Fio banka in Czechia, EBICS in Germany, SDI/PEC in Italy),
platform infrastructure (Terraform, Helm, Kubernetes, Compose, Nginx, systemd, Vault) and CI
(GitHub Actions, GitLab CI, Jenkins, Azure Pipelines), plus runbooks, wiki pages, tickets, chat
exports, notebooks, recorded HTTP cassettes and i18n files in English, Italian, German, Czech and
Spanish. Written blind (without seeing the scanner, its rules or other parts' templates).

Positives are passwords of every strength (dictionary and seasonal words, vendor defaults on real
plant hosts, long random ones, lookup defaults), service tokens in their real formats (with their
checksums where they have one), webhook URLs carrying their secret, private keys with real DER
structure (RSA, EC, Ed25519, OpenSSH, WireGuard, TUF signing keys), URI and Basic-auth credentials,
OCPP charger authorisation keys, and credentials in prose, CLI arguments, comments and tests.

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables, secret stores and CI secrets in every language and tool, placeholders and redactions
(in the organisation's languages), password hashes, values encrypted at rest (SOPS, Vault transit,
Jasypt, Ansible Vault, sealed secrets, encrypted PEM keys), public keys and certificates (real
DER), identifiers shaped like secrets (VINs, IMEIs, ICCIDs, EVSE ids, RFID id tags, IBANs and
CLABEs with valid check digits, tax ids, UUIDs, commit hashes, firmware digests, account ids),
publishable client keys, UI and i18n text about passwords, documented example credentials,
role-word pairs, and test values that say they are fake.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import string
import struct
import uuid
import zlib

import evalset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
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
PW_SYMBOLS = "!#%*-_=+.@?"
CRYPT64 = "./" + ALNUM
OCPP2_CHARS = ALNUM + "*-_=:+|@."
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1))]
NOT_BEFORE = datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2027, 3, 1, tzinfo=datetime.UTC)


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _der_oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
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


def _ssh_str(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class Heldout15Values(evalset.Values):
    """Value generators of the heldout15 part; every name starts with ``h15_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "pistone",
            "frizione",
            "cilindro",
            "motore",
            "getriebe",
            "kolben",
            "zuendung",
            "brzda",
            "spojka",
            "volant",
            "llanta",
            "carretera",
            "turbina",
            "cambio",
            "autobahn",
            "stelvio",
            "modena",
            "vantor",
        ]
        self.users = [
            "telematica",
            "ota_svc",
            "dms_sync",
            "mes_reader",
            "scada_hmi",
            "sharing_api",
            "ocpp_csms",
            "finanza",
            "dealer_it",
            "etl_batch",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h15_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h15_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h15_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h15_util_is_prime(self, n: int) -> bool:
        for p in SMALL_PRIMES:
            if n % p == 0:
                return n == p
        if pow(2, n - 1, n) != 1:
            return False
        d, s = n - 1, 0
        while d % 2 == 0:
            d //= 2
            s += 1
        for _ in range(6):
            x = pow(self.rng.randrange(2, n - 2), d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    def h15_util_prime(self, bits: int) -> int:
        while True:
            cand = self.rng.getrandbits(bits) | (3 << (bits - 2)) | 1
            if self.h15_util_is_prime(cand):
                return cand

    def h15_util_rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        e = 65537
        while True:
            p = self.h15_util_prime(bits // 2)
            q = self.h15_util_prime(bits // 2)
            if p != q and (p - 1) % e and (q - 1) % e:
                break
        if p < q:
            p, q = q, p
        d = pow(e, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
        )
        return numbers.private_key()

    def h15_util_ec(self, curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
        curve = curve or ec.SECP256R1()
        order = {
            "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
            "secp384r1": int(
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
                16,
            ),
        }[curve.name]
        return ec.derive_private_key(self.rng.randrange(1, order), curve)

    def h15_util_ed(self) -> ed25519.Ed25519PrivateKey:
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))

    def h15_util_pem(self, key: object, fmt: serialization.PrivateFormat) -> str:
        return key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, fmt, serialization.NoEncryption()
        ).decode()

    def h15_util_vin_check(self, vin16: str) -> str:
        trans = dict(
            zip(
                "ABCDEFGHJKLMNPRSTUVWXYZ",
                [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9],
                strict=True,
            )
        )
        weights = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
        total = 0
        for i, ch in enumerate(vin16[:8] + "0" + vin16[8:]):
            total += (int(ch) if ch.isdigit() else trans[ch]) * weights[i]
        rest = total % 11
        return "X" if rest == 10 else str(rest)

    def h15_util_luhn(self, body: str) -> str:
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return str((10 - total % 10) % 10)

    def h15_util_iban(self, country: str, bban: str) -> str:
        digits = "".join(str(int(c, 36)) for c in bban + country + "00")
        check = 98 - int(digits) % 97
        return f"{country}{check:02d}{bban}"

    # ================================================================== positives: passwords
    def h15_pw(self) -> str:
        shape = self.rng.randrange(8)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*?"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 22), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}.{other.capitalize()}.{self.s(2, DIGITS)}"
        if shape == 3:
            return "Vtm" + self.s(12, ALNUM) + self.pick(list("!#%$"))
        if shape == 4:
            return self.s(16, ALNUM)
        if shape == 5:
            leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
            return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)
        if shape == 6:
            return "-".join(self.pick(self.words) for _ in range(4))
        return self.s(self.rng.randrange(28, 41), ALNUM)

    def h15_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Vantorra1",
                    "Password1!",
                    "Ciao1234",
                    "Hallo123!",
                    "Heslo123",
                    "Contrasena1",
                    "qwertz123",
                    "Motori2023",
                    "dealer2024",
                    "Benvenuto1",
                    "Willkommen1",
                    "Bienvenido2024",
                ]
            )
        if shape == 1:
            return "Vantorra" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "$"])
        if shape == 2:
            season = self.pick(
                [
                    "Estate",
                    "Inverno",
                    "Autunno",
                    "Sommer",
                    "Winter",
                    "Herbst",
                    "Leto",
                    "Zima",
                    "Verano",
                    "Invierno",
                    "Primavera",
                ]
            )
            return season + str(self.rng.randrange(2019, 2026)) + self.pick(["", "!", "?"])
        return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])

    def h15_vendor_default(self) -> str:
        return self.pick(
            ["admin", "1234", "12345678", "password", "wago", "service", "toor", "manager", "00000"]
        )

    def h15_url_pw(self) -> str:
        if self.rng.randrange(2):
            return (
                self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.pick(["", "_", "-"])
            )
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 24), ALNUM + "-_.~")

    def h15_ocpp2_pw(self) -> str:
        return self.s(self.rng.randrange(20, 41), OCPP2_CHARS)

    def h15_ocpp_authkey(self) -> str:
        return self.s(self.pick([32, 40, 40]), self.pick([HEX, HEXU]))

    def h15_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "vtm-deploy", "dealer.gateway"])
        return base64.b64encode(f"{user}:{self.h15_pw()}".encode()).decode()

    def h15_sat_key_pw(self) -> str:
        if self.rng.randrange(2):
            return (
                "Vtm" + self.pick(["Mx", "Qro", "Slp"]) + str(self.rng.randrange(2019, 2026)) + "#"
            )
        return self.s(self.rng.randrange(10, 16), ALNUM)

    def h15_snmp_community(self) -> str:
        return self.pick(["vtm", "plant", "mes", "scada"]) + "-" + self.s(14, ALNUM)

    # ================================================================== positives: tokens
    def h15_github(self) -> str:
        return self.h15_util_crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h15_npm(self) -> str:
        return self.h15_util_crc_token("npm")

    def h15_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h15_azdo_pat(self) -> str:
        if self.rng.randrange(2):
            return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")
        return self.s(52, ALNUM) + "JQQJ99" + self.s(18, ALNUM) + "AZDO" + self.s(4, ALNUM)

    def h15_aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def h15_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def h15_aws_env_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID={self.h15_aws_id()}\nAWS_SECRET_ACCESS_KEY={self.h15_aws_secret()}"
        )

    def h15_azure_storage_key(self) -> str:
        return self.h15_util_b64(64)

    def h15_azure_sas_key(self) -> str:
        return self.h15_util_b64(32)

    def h15_azure_client_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h15_mapbox_sk(self) -> str:
        head = base64.urlsafe_b64encode(
            json.dumps(
                {
                    "u": self.pick(["vantorra", "vtm-sharing", "vantorra-maps"]),
                    "a": self.s(25, LOWNUM),
                },
                separators=(",", ":"),
            ).encode()
        )
        return f"sk.{head.decode().rstrip('=')}.{self.s(22, URLSAFE)}"

    def h15_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h15_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h15_stripe_sk(self) -> str:
        return self.pick(["sk_live_", "sk_live_", "rk_live_"]) + self.s(self.pick([24, 99]), ALNUM)

    def h15_mp_token(self) -> str:
        return (
            f"APP_USR-{self.s(16, DIGITS)}-{self.rng.randrange(1, 13):02d}{self.rng.randrange(1, 29):02d}"
            f"{self.rng.randrange(21, 26)}-{self.s(32, HEX)}-{self.s(9, DIGITS)}"
        )

    def h15_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h15_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h15_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h15_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h15_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://vantorra.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{ids[2]}/V2{self.s(43, URLSAFE)}1"
        )

    def h15_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "iss": "auth.vantorra.com",
                "sub": self.pick(["svc-telematics", "svc-dms-bridge", "svc-ota", "csms-backend"]),
                "scope": self.pick(["fleet:read fleet:write", "ota:publish", "dms:sync"]),
                "iat": 1717000000 + self.rng.randrange(10**7),
                "exp": 2048000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self.h15_util_b64(32, urlsafe=True, pad=False)}"

    def h15_pd_routing(self) -> str:
        return self.s(32, HEX)

    def h15_sonar_token(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def h15_jfrog_ref(self) -> str:
        raw = f"reftkn:01:{self.rng.randrange(1760000000, 1900000000)}:{self.s(33, ALNUM)}"
        return base64.b64encode(raw.encode()).decode().rstrip("=")

    def h15_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h15_vault_token(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h15_opsgenie_key(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h15_ocpi_token(self) -> str:
        if self.rng.randrange(2):
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return self.s(self.pick([32, 43, 64]), ALNUM)

    def h15_here_key(self) -> str:
        return self.s(43, URLSAFE)

    def h15_fio_token(self) -> str:
        return self.s(64, ALNUM)

    def h15_influx_token(self) -> str:
        return self.h15_util_b64(64, urlsafe=True)

    def h15_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#$%^&*(-_=+)")

    def h15_hmac_hex(self) -> str:
        return self.s(64, HEX)

    def h15_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h15_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    # ================================================================== positives: keys
    def h15_rsa_key(self) -> str:
        return self.h15_util_pem(
            self.h15_util_rsa(self.pick([2048, 2048, 1024])),
            serialization.PrivateFormat.TraditionalOpenSSL,
        ).rstrip("\n")

    def h15_ec_key(self) -> str:
        key = self.h15_util_ec(self.pick([ec.SECP256R1(), ec.SECP384R1()]))
        return self.h15_util_pem(key, serialization.PrivateFormat.TraditionalOpenSSL).rstrip("\n")

    def h15_apns_p8(self) -> str:
        key = self.h15_util_ec(ec.SECP256R1())
        return self.h15_util_pem(key, serialization.PrivateFormat.PKCS8).rstrip("\n")

    def h15_gcp_pem_escaped(self) -> str:
        pem = self.h15_util_pem(self.h15_util_rsa(2048), serialization.PrivateFormat.PKCS8)
        return pem.replace("\n", "\\n")

    def h15_openssh_key(self) -> str:
        seed = self.rng.randbytes(32)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        pub_blob = _ssh_str(b"ssh-ed25519") + _ssh_str(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.pick(self.users)}@{self.pick(['ota-build01', 'dms-gw', 'mes-jump'])}"
        private = (
            check
            + check
            + _ssh_str(b"ssh-ed25519")
            + _ssh_str(pub)
            + _ssh_str(seed + pub)
            + _ssh_str(comment.encode())
        )
        pad = 1
        while len(private) % 8:
            private += bytes([pad])
            pad += 1
        blob = (
            b"openssh-key-v1\x00"
            + _ssh_str(b"none")
            + _ssh_str(b"none")
            + _ssh_str(b"")
            + struct.pack(">I", 1)
            + _ssh_str(pub_blob)
            + _ssh_str(private)
        )
        return self.h15_util_armor("OPENSSH PRIVATE KEY", blob, 70)

    def h15_tuf_keyval(self) -> str:
        seed = self.rng.randbytes(32)
        pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f'"public": "{raw.hex()}",\n"private": "{seed.hex()}"'

    def h15_wg_private(self) -> str:
        raw = bytearray(self.rng.randbytes(32))
        raw[0] &= 248
        raw[31] = (raw[31] & 127) | 64
        return base64.b64encode(bytes(raw)).decode()

    def h15_tuf_private(self) -> str:
        return self.rng.randbytes(32).hex()

    # ================================================================== negatives: references
    def h15_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["DB_PASSWORD"]',
                'os.getenv("TELEMATICS_DB_PASSWORD")',
                'settings.get("mes.opcua.password")',
                'vault_client.read("kv/data/mes/opcua")["data"]["data"]["password"]',
                'keyring.get_password("vtm-dms", "dms_sync")',
                "config.secrets.db_password",
            ]
        )

    def h15_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                "process.env['MP_ACCESS_TOKEN']",
                "config.get('payments.stripe.secretKey')",
                "await secrets.get('sharing/twilio-auth-token')",
                "Config.MAPBOX_SECRET_TOKEN",
            ]
        )

    def h15_ref_jvm(self) -> str:
        return self.pick(
            [
                "${DMS_SOAP_PASSWORD}",
                "${vault.dms.soap.password}",
                "${OCPP_AUTH_KEY:}",
                "#{systemEnvironment['KAFKA_SASL_PASSWORD']}",
                "${sm://projects/vtm-telematics/secrets/kafka-password}",
            ]
        )

    def h15_ref_cs(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("DMS_SQL_PASSWORD")',
                'configuration["Dms:SqlPassword"]',
                '(await secretClient.GetSecretAsync("dms-sql-password")).Value.Value',
                "options.Value.Password",
            ]
        )

    def h15_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("KAFKA_PASSWORD")',
                'viper.GetString("mqtt.password")',
                "cfg.Broker.Password",
                'mustEnv("INFLUX_TOKEN")',
            ]
        )

    def h15_ref_shell(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                '"$(cat /run/secrets/ota_signing_pass)"',
                "${SFTP_PASSWORD:?SFTP_PASSWORD non impostata}",
                '"$(vault kv get -field=password kv/dms/sftp)"',
                '"$(az keyvault secret show --vault-name kv-vtm-prod --name dms-sql --query value -o tsv)"',
                '"${OCPP_AUTH_KEY}"',
            ]
        )

    def h15_ref_ci(self) -> str:
        return self.pick(
            [
                "${{ secrets.ARTIFACTORY_TOKEN }}",
                "$CI_REGISTRY_PASSWORD",
                "$(SONAR_TOKEN)",
                "${{ secrets.AZURE_CLIENT_SECRET }}",
                "${OTA_SIGNING_PASSPHRASE}",
                "${{ vars.DMS_SFTP_USER }}",
            ]
        )

    def h15_ref_iac(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.timescale.result",
                "data.azurerm_key_vault_secret.dms_sql.value",
                "data.aws_secretsmanager_secret_version.ota.secret_string",
                "module.secrets.kafka_password",
            ]
        )

    def h15_ref_ansible(self) -> str:
        return self.pick(
            [
                "{{ vault_scada_password }}",
                "{{ lookup('env', 'OPCUA_PASSWORD') }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/mes:password') }}",
                "{{ mes_db_password }}",
            ]
        )

    def h15_ref_env(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "$TIMESCALE_RO_PASSWORD",
                "${INFLUX_TOKEN}",
                "${KAFKA_SASL_PASSWORD}",
                "${MQTT_BRIDGE_PASSWORD}",
                "$__file{/run/secrets/grafana_ds_password}",
            ]
        )

    def h15_ref_rust(self) -> str:
        return self.pick(
            [
                'std::env::var("ARTIFACTORY_TOKEN")?',
                'env::var("OTA_S3_SECRET").expect("OTA_S3_SECRET")',
                "settings.delivery.token.expose_secret().clone()",
                'dotenvy::var("ARTIFACTORY_TOKEN")?',
            ]
        )

    def h15_ref_openssl(self) -> str:
        return self.pick(
            [
                "env:OTA_SIGNING_PASS",
                "file:/run/secrets/ota_signing_pass",
                "fd:3",
                'env:"${KEY_PASS_VAR}"',
            ]
        )

    def h15_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:DMS_SFTP_PASSWORD",
                "(Get-Secret -Name DmsSftp -Vault VtmVault -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-vtm-dms -Name sftp-password -AsPlainText)",
            ]
        )

    def h15_ref_win(self) -> str:
        return self.pick(["%PLC_BACKUP_PASSWORD%", "%NAS_PASS%", "!SVC_PASS!", "%~1"])

    def h15_ref_kt(self) -> str:
        return self.pick(
            [
                'System.getenv("RELEASE_STORE_PASSWORD")',
                'providers.gradleProperty("RELEASE_STORE_PASSWORD").get()',
                'localProps.getProperty("release.storePassword")',
                'providers.environmentVariable("VTM_KEYSTORE_PASS").orNull',
            ]
        )

    def h15_ref_php(self) -> str:
        return self.pick(
            [
                "getenv('CSD_KEY_PASSWORD')",
                "$_ENV['PAC_PASSWORD']",
                "env('CSD_KEY_PASSWORD')",
                "$secrets->get('cfdi/csd-password')",
            ]
        )

    def h15_ref_ruby(self) -> str:
        return self.pick(
            [
                '<%= ENV["SCORING_DB_PASSWORD"] %>',
                "<%= ENV.fetch('SCORING_DB_PASSWORD') %>",
                "<%= Rails.application.credentials.dig(:database, :password) %>",
            ]
        )

    def h15_ref_store(self) -> str:
        return self.pick(
            [
                "op://Plant-Modena/Ignition gateway/password",
                "vault:kv/data/ocpp/csms#auth_key",
                "@Microsoft.KeyVault(SecretUri=https://kv-vtm-dms.vault.azure.net/secrets/sql-password/)",
                "arn:aws:secretsmanager:eu-south-1:482915736024:secret:telematics/kafka-Hq3vZk",
                "azurekeyvault://kv-vtm-fin/secrets/fio-api-token",
                "gcp-secret://vtm-sharing/stripe-secret-key/latest",
            ]
        )

    # ================================================================== negatives: placeholders
    def h15_placeholder(self) -> str:
        return self.pick(
            [
                "<inserire-password>",
                "INSERIRE_QUI_LA_PASSWORD",
                "<PASSWORT_HIER_EINTRAGEN>",
                "ZADEJTE_HESLO",
                "<heslo>",
                "<tu-contraseña-aquí>",
                "CAMBIAR_ESTA_CLAVE",
                "your-api-key-here",
                "<TOKEN>",
                "changeme",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "REPLACE_WITH_REAL_KEY",
                "TODO",
                "__DA_DEFINIRE__",
            ]
        )

    def h15_redacted(self) -> str:
        return self.pick(
            [
                "********",
                "[REDACTED]",
                "***redatto***",
                "<geschwärzt>",
                "[SKRYTO]",
                "[OCULTO]",
                "●●●●●●●●●●",
                "sk_live_…redacted",
                "(hidden)",
                "xxxx-xxxx-xxxx",
            ]
        )

    def h15_pw_hash(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "$2b$12$" + self.s(53, CRYPT64)
        if shape == 1:
            salt = self.h15_util_b64(16, pad=False)
            return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.h15_util_b64(32, pad=False)}"
        if shape == 2:
            return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.h15_util_b64(32)}"
        return f"$6$rounds=656000${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def h15_htpasswd(self) -> str:
        if self.rng.randrange(2):
            return "$2y$10$" + self.s(53, CRYPT64)
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def h15_pg_verifier(self) -> str:
        if self.rng.randrange(4):
            return (
                f"SCRAM-SHA-256$4096:{self.h15_util_b64(16)}${self.h15_util_b64(32)}"
                f":{self.h15_util_b64(32)}"
            )
        return "md5" + hashlib.md5(self.rng.randbytes(16)).hexdigest()

    def h15_encrypted(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            data = self.h15_util_b64(self.rng.randrange(12, 40))
            return (
                f"ENC[AES256_GCM,data:{data},iv:{self.h15_util_b64(32)},"
                f"tag:{self.h15_util_b64(16)},type:str]"
            )
        if shape == 1:
            return "vault:v1:" + self.h15_util_b64(self.rng.randrange(40, 70))
        if shape == 2:
            return "ENC(" + self.h15_util_b64(self.rng.randrange(32, 48)) + ")"
        if shape == 3:
            return "AQICAHh" + self.h15_util_b64(150)
        return "AgB" + self.h15_util_b64(400)

    def h15_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 40, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h15_encrypted_key(self) -> str:
        """A real PKCS#8 EncryptedPrivateKeyInfo (PBES2, PBKDF2-SHA256, AES-256-CBC)."""
        inner = self.h15_util_ec(ec.SECP256R1()).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        salt, iv, iters = self.rng.randbytes(16), self.rng.randbytes(16), 2048
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iters)
        key = kdf.derive(self.s(20, ALNUM).encode())
        pad = 16 - len(inner) % 16
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        ct = enc.update(inner + bytes([pad]) * pad) + enc.finalize()
        seq = lambda *items: _der(0x30, b"".join(items))  # noqa: E731
        alg = seq(
            _der_oid("1.2.840.113549.1.5.13"),
            seq(
                seq(
                    _der_oid("1.2.840.113549.1.5.12"),
                    seq(
                        _der(0x04, salt),
                        _der_int(iters),
                        seq(_der_oid("1.2.840.113549.2.9"), b"\x05\x00"),
                    ),
                ),
                seq(_der_oid("2.16.840.1.101.3.4.1.42"), _der(0x04, iv)),
            ),
        )
        return self.h15_util_armor("ENCRYPTED PRIVATE KEY", seq(alg, _der(0x04, ct)))

    # ================================================================== negatives: public material
    def h15_cert(self) -> str:
        ca = self.h15_util_ed()
        subject_key = self.h15_util_ec(ec.SECP256R1())
        cn = self.pick(
            [
                "csms.charge.vantorra.com",
                "ota.vantorra.com",
                "telematics-ingest.vantorra.com",
                "dms-gateway.vantorra.it",
                "mqtt.fleet.vantorra.com",
            ]
        )
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vantorra Motors S.p.A."),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        issuer = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vantorra Motors S.p.A."),
                x509.NameAttribute(NameOID.COMMON_NAME, "Vantorra Issuing CA G2"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(subject_key.public_key())
            .serial_number(self.rng.getrandbits(120) + 1)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(ca, None)
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().rstrip("\n")

    def h15_public_pem(self) -> str:
        key: object
        key = self.h15_util_ec(ec.SECP256R1()) if self.rng.randrange(2) else self.h15_util_ed()
        return (
            key.public_key()  # type: ignore[attr-defined]
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .rstrip("\n")
        )

    def h15_ssh_pub(self) -> str:
        key = self.h15_util_ed().public_key()
        line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return f"{line.decode()} {self.pick(self.users)}@{self.pick(['ota-build01', 'laptop', 'mes-jump'])}"

    def h15_wg_public(self) -> str:
        key = x25519.X25519PrivateKey.from_private_bytes(self.rng.randbytes(32)).public_key()
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def h15_tuf_public(self) -> str:
        key = self.h15_util_ed().public_key()
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()

    def h15_jwks_n(self) -> str:
        n = self.rng.getrandbits(2048) | (1 << 2047) | 1
        return base64.urlsafe_b64encode(n.to_bytes(256, "big")).decode().rstrip("=")

    def h15_cert_fpr(self) -> str:
        raw = hashlib.sha256(self.rng.randbytes(32)).hexdigest().upper()
        return ":".join(raw[i : i + 2] for i in range(0, 64, 2))

    def h15_ssh_fpr(self) -> str:
        return "ssh-ed25519 255 SHA256:" + self.h15_util_b64(32, pad=False)

    def h15_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def h15_mapbox_pk(self) -> str:
        head = base64.urlsafe_b64encode(
            json.dumps({"u": "vantorra", "a": self.s(25, LOWNUM)}, separators=(",", ":")).encode()
        )
        return f"pk.{head.decode().rstrip('=')}.{self.s(22, URLSAFE)}"

    def h15_stripe_pk(self) -> str:
        return "pk_live_" + self.s(self.pick([24, 99]), ALNUM)

    def h15_mp_public(self) -> str:
        return "APP_USR-" + str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ================================================================== negatives: identifiers
    def h15_digest(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h15_git_sha(self) -> str:
        return hashlib.sha1(self.rng.randbytes(24)).hexdigest()

    def h15_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h15_sri(self) -> str:
        return "sha512-" + self.h15_util_b64(64)

    def h15_vin(self) -> str:
        wmi = self.pick(["ZV7", "ZV9", "WV8", "TMV", "3VT"])
        vds = self.s(5, VIN_CHARS.replace("0", "").replace("1", ""))
        vis = self.pick("RSTVWXY123456") + self.pick(["M", "B", "F", "S"]) + self.s(6, DIGITS)
        vin16 = wmi + vds + vis
        return vin16[:8] + self.h15_util_vin_check(vin16) + vin16[8:]

    def h15_imei(self) -> str:
        body = self.pick(["35", "86", "35"]) + self.s(12, DIGITS)
        return body + self.h15_util_luhn(body)

    def h15_iccid(self) -> str:
        body = self.pick(["893901", "894920", "894203", "895202"]) + self.s(12, DIGITS)
        return body + self.h15_util_luhn(body)

    def h15_evse_id(self) -> str:
        country = self.pick(["IT", "DE", "CZ", "MX"])
        return f"{country}*VTM*E{self.s(6, DIGITS)}*{self.rng.randrange(1, 5)}"

    def h15_idtag(self) -> str:
        return self.s(self.pick([8, 14]), HEXU)

    def h15_iban(self) -> str:
        country = self.pick(["IT", "DE", "CZ", "MX"])
        if country == "IT":
            bban = self.s(1, string.ascii_uppercase) + self.s(10, DIGITS) + self.s(12, DIGITS)
            return self.h15_util_iban("IT", bban)
        if country == "DE":
            return self.h15_util_iban("DE", self.s(18, DIGITS))
        if country == "CZ":
            return self.h15_util_iban(
                "CZ", self.pick(["0800", "2010", "0300"]) + self.s(16, DIGITS)
            )
        body = self.pick(["012", "002", "014", "072"]) + self.s(14, DIGITS)
        weights = [3, 7, 1] * 6
        total = sum((int(d) * weights[i]) % 10 for i, d in enumerate(body))
        return body + str((10 - total % 10) % 10)

    def h15_tax_id(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "IT" + self.s(11, DIGITS)
        if shape == 1:
            return "DE" + self.s(9, DIGITS)
        if shape == 2:
            return "CZ" + self.s(8, DIGITS)
        return "VMO" + self.s(6, DIGITS) + self.s(3, UPNUM)

    def h15_aws_account(self) -> str:
        return self.s(12, DIGITS)

    def h15_firmware_ver(self) -> str:
        return self.pick(
            [
                f"TCU-{self.rng.randrange(3, 9)}.{self.rng.randrange(0, 40)}.{self.rng.randrange(0, 999)}",
                f"VT{self.s(2, DIGITS)}-ECU-{self.s(6, UPNUM)}",
                f"{self.rng.randrange(2022, 2026)}.{self.rng.randrange(1, 53):02d}.{self.s(7, HEX)}",
            ]
        )

    def h15_apple_key_id(self) -> str:
        return self.s(10, UPNUM)

    # ================================================================== negatives: text
    def h15_i18n(self) -> str:
        return self.pick(
            [
                "La password deve contenere almeno 12 caratteri",
                "Password errata, riprova",
                "Hai dimenticato la password?",
                "Das Passwort ist abgelaufen",
                "Bitte geben Sie Ihr Passwort ein",
                "Passwort vergessen?",
                "Heslo musí mít alespoň 12 znaků",
                "Zapomněli jste heslo?",
                "Nesprávné heslo",
                "La contraseña es incorrecta",
                "¿Olvidaste tu contraseña?",
                "Ingresa tu contraseña",
            ]
        )

    def h15_example_cred(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "user:password@example.com",
            ]
        )

    def h15_fake_test(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "not-a-real-password",
                "dummy_secret_do_not_use",
                "test-only-invalid-key",
                "finta-password-per-test",
                "nur-ein-testwert",
                "testovaci-heslo-neplatne",
                "clave-falsa-de-prueba",
                "FAKE_OCPP_AUTH_KEY",
            ]
        )

    def h15_role_word(self) -> str:
        return self.pick(
            ["password", "secret", "passwort", "heslo", "contrasena", "token", "api_key", "pwd"]
        )


VALUES = Heldout15Values


def _t(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    """One template: ``text`` starts after its opening newline."""
    return (path, text.removeprefix("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = []

# ---------------------------------------------------------------------- telematics backend
TEMPLATES += [
    _t(
        "telematics/ingest/internal/config/config.go",
        "h15_pw",
        True,
        r"""
package config

import (
	"os"
	"time"
)

// Config of the TCU ingest service (vtm-ingest). Values come from the environment;
// the defaults below are what the Modena lab cluster uses.
type Config struct {
	KafkaBrokers  string
	KafkaUser     string
	KafkaPassword string
	FlushEvery    time.Duration
}

func envOr(key, fallback string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return fallback
}

func Load() Config {
	return Config{
		KafkaBrokers:  envOr("KAFKA_BROKERS", "kafka-0.telematics.vantorra.internal:9094"),
		KafkaUser:     envOr("KAFKA_USER", "telematica"),
		KafkaPassword: envOr("KAFKA_PASSWORD", "{V}"),
		FlushEvery:    2 * time.Second,
	}
}
""",
    ),
    _t(
        "telematics/ingest/internal/config/load.go",
        "h15_ref_go",
        False,
        r"""
package config

import "time"

// Load reads the broker settings; secrets are only ever taken from the environment
// (injected by the external-secrets operator in every cluster).
func Load() Config {
	return Config{
		KafkaBrokers:  mustEnv("KAFKA_BROKERS"),
		KafkaUser:     mustEnv("KAFKA_USER"),
		KafkaPassword: {V},
		FlushEvery:    2 * time.Second,
	}
}
""",
    ),
    _t(
        "telematics/ingest-kt/src/main/resources/application-prod.yml",
        "h15_pw",
        True,
        r"""
spring:
  application:
    name: vtm-trip-aggregator
  kafka:
    bootstrap-servers: kafka-0.telematics.vantorra.internal:9094,kafka-1.telematics.vantorra.internal:9094
    properties:
      security.protocol: SASL_SSL
      sasl.mechanism: SCRAM-SHA-512
      sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="telematica" password="{V}";
    consumer:
      group-id: trip-aggregator
      auto-offset-reset: earliest
  datasource:
    url: jdbc:postgresql://tsdb.telematics.vantorra.internal:5432/trips
    username: trip_writer
    password: {V2}
management:
  endpoints.web.exposure.include: health,prometheus
""",
    ),
    _t(
        "telematics/ingest-kt/src/main/resources/application.yml",
        "h15_ref_jvm",
        False,
        r"""
spring:
  application:
    name: vtm-trip-aggregator
  kafka:
    bootstrap-servers: ${KAFKA_BOOTSTRAP}
    properties:
      security.protocol: SASL_SSL
      sasl.mechanism: SCRAM-SHA-512
      sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="telematica" password="{V}";
  datasource:
    url: jdbc:postgresql://${TSDB_HOST}:5432/trips
    username: trip_writer
    password: {V2}
""",
    ),
    _t(
        "telematics/mqtt-bridge/conf.d/bridge-fleet.conf",
        "h15_pw",
        True,
        r"""
# Bridge from the plant test-track broker to the fleet broker in AWS (eu-south-1).
# Owner: team Connected Car (Modena). Ticket CCAR-1182.
connection fleet-aws
address mqtt.fleet.vantorra.com:8883
bridge_protocol_version mqttv311
remote_clientid testtrack-bridge-01
remote_username testtrack_bridge
remote_password {V}
bridge_cafile /etc/mosquitto/certs/vantorra-root-g2.pem
topic vtm/testtrack/+/telemetry out 1 "" fleet/
topic vtm/testtrack/+/cmd in 1 "" fleet/
cleansession false
notifications false
""",
    ),
    _t(
        "telematics/mqtt-bridge/conf.d/bridge-fleet.conf.tmpl",
        "h15_ref_env",
        False,
        r"""
# Rendered by envsubst in the container entrypoint; do not commit the rendered file.
connection fleet-aws
address mqtt.fleet.vantorra.com:8883
remote_clientid testtrack-bridge-01
remote_username testtrack_bridge
remote_password {V}
bridge_cafile /etc/mosquitto/certs/vantorra-root-g2.pem
topic vtm/testtrack/+/telemetry out 1 "" fleet/
""",
    ),
    _t(
        "telematics/devices/azure-iot/lab-devices.json",
        "h15_azure_sas_key",
        True,
        r"""
{
  "hub": "vtm-fleet-iothub-weu",
  "note": "Prototype TCUs on the Balocco test track; symmetric-key auth until the X.509 rollout (CCAR-1310).",
  "devices": [
    {
      "deviceId": "tcu-proto-0141",
      "connectionString": "HostName=vtm-fleet-iothub-weu.azure-devices.net;DeviceId=tcu-proto-0141;SharedAccessKey={V}"
    },
    {
      "deviceId": "tcu-proto-0142",
      "connectionString": "HostName=vtm-fleet-iothub-weu.azure-devices.net;DeviceId=tcu-proto-0142;SharedAccessKey={V2}"
    },
    {
      "deviceId": "tcu-proto-0157",
      "connectionString": "HostName=vtm-fleet-iothub-weu.azure-devices.net;DeviceId=tcu-proto-0157;SharedAccessKey={V3}"
    }
  ]
}
""",
    ),
    _t(
        "telematics/devices/azure-iot/series-devices.json",
        "h15_cert_fpr",
        False,
        r"""
{
  "hub": "vtm-fleet-iothub-weu",
  "authentication": "x509_thumbprint",
  "devices": [
    {
      "deviceId": "tcu-s-000981",
      "primaryThumbprint": "{V}",
      "secondaryThumbprint": "{V2}"
    },
    {
      "deviceId": "tcu-s-000982",
      "primaryThumbprint": "{V3}",
      "secondaryThumbprint": "{V4}"
    }
  ]
}
""",
    ),
    _t(
        "telematics/influx/telegraf.conf",
        "h15_influx_token",
        True,
        r"""
[agent]
  interval = "10s"
  hostname = "tlm-edge-mo-03"

[[inputs.kafka_consumer]]
  brokers = ["kafka-0.telematics.vantorra.internal:9094"]
  topics = ["tcu.can.decoded"]
  data_format = "json_v2"

[[outputs.influxdb_v2]]
  urls = ["https://influx.telematics.vantorra.internal:8086"]
  token = "{V}"
  organization = "vantorra"
  bucket = "can_signals_raw"
""",
    ),
    _t(
        "telematics/influx/telegraf.d/outputs.conf",
        "h15_ref_env",
        False,
        r"""
[[outputs.influxdb_v2]]
  urls = ["https://influx.telematics.vantorra.internal:8086"]
  ## the token is injected by the systemd unit (EnvironmentFile=/etc/telegraf/secrets.env)
  token = "{V}"
  organization = "vantorra"
  bucket = "can_signals_raw"
""",
    ),
    _t(
        "telematics/ingest/.env",
        "h15_aws_env_pair",
        True,
        r"""
# local run against the shared dev account (telematics-dev)
AWS_REGION=eu-south-1
{V}
IOT_ENDPOINT=a3k7vtm-ats.iot.eu-south-1.amazonaws.com
KAFKA_BROKERS=localhost:9092
LOG_LEVEL=debug
""",
    ),
    _t(
        "telematics/ingest/.env.example",
        "h15_placeholder",
        False,
        r"""
# Copia in .env e compila i valori (vedi wiki: Telematica > Ambiente locale)
AWS_REGION=eu-south-1
AWS_ACCESS_KEY_ID={V}
AWS_SECRET_ACCESS_KEY={V2}
KAFKA_BROKERS=localhost:9092
KAFKA_PASSWORD={V3}
""",
    ),
    _t(
        "telematics/tools/replay_trip.py",
        "h15_jwt",
        True,
        r"""
#!/usr/bin/env python3
# Replays a recorded trip (CAN frames as NDJSON) into the staging ingest API.
# usage: replay_trip.py trips/2024-09-balocco-lap3.ndjson
import json
import sys
import time

import requests

INGEST = "https://ingest.stg.telematics.vantorra.com/v2/frames"
# service token for svc-telematics, minted by auth-stg (valid until the key rotation)
HEADERS = {"Authorization": "Bearer {V}", "Content-Type": "application/json"}


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            frame = json.loads(line)
            requests.post(INGEST, headers=HEADERS, json=frame, timeout=5).raise_for_status()
            time.sleep(frame.get("dt", 0.01))


if __name__ == "__main__":
    main(sys.argv[1])
""",
    ),
    _t(
        "telematics/tools/tests/test_vin.py",
        "h15_vin",
        False,
        r"""
import pytest

from vtm_tools.vin import check_digit, plant_of

# VINs of pre-series cars from the Modena, Kvasiny and Querétaro lines
SAMPLES = [
    ("{V}", True),
    ("{V2}", True),
    ("{V3}", True),
]


@pytest.mark.parametrize(("vin", "ok"), SAMPLES)
def test_check_digit(vin: str, ok: bool) -> None:
    assert (check_digit(vin) == vin[8]) is ok


def test_plant_code() -> None:
    assert plant_of("{V}") in {"MO", "KV", "QRO", "SLP"}
""",
    ),
    _t(
        "telematics/fleet/sim-inventory.csv",
        "h15_iccid",
        False,
        r"""
iccid,msisdn_country,apn,tcu_serial,status
{V},IT,vtm.iot.tim,TCU4-0019281,active
{V2},DE,vtm.m2m.telekom,TCU4-0019282,active
{V3},CZ,vtm.iot.o2,TCU4-0019377,suspended
{V4},MX,vtm.telcel.m2m,TCU4-0020110,active
""",
    ),
    _t(
        "telematics/fleet/tcu-inventory.yaml",
        "h15_imei",
        False,
        r"""
# Inventario TCU del parco prototipi (aggiornato dal job nightly fleet-sync)
tcus:
  - serial: TCU4-0019281
    imei: "{V}"
    vehicle: proto-VT7-031
    firmware: 4.12.3
  - serial: TCU4-0019282
    imei: "{V2}"
    vehicle: proto-VT7-032
    firmware: 4.12.3
  - serial: TCU4-0019377
    imei: "{V3}"
    vehicle: proto-VT5E-007
    firmware: 4.11.9
""",
    ),
    _t(
        "telematics/ingest-kt/src/main/kotlin/com/vantorra/telematics/KafkaProps.kt",
        "h15_pw",
        True,
        r"""
package com.vantorra.telematics

import org.apache.kafka.clients.CommonClientConfigs
import org.apache.kafka.common.config.SaslConfigs
import java.util.Properties

object KafkaProps {
    // TODO(ccar): move to the secret store before go-live, this is the lab cluster user
    private const val LAB_USER = "trip_lab"
    private const val LAB_PASSWORD = "{V}"

    fun lab(bootstrap: String): Properties = Properties().apply {
        put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap)
        put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_SSL")
        put(SaslConfigs.SASL_MECHANISM, "SCRAM-SHA-512")
        put(
            SaslConfigs.SASL_JAAS_CONFIG,
            "org.apache.kafka.common.security.scram.ScramLoginModule required " +
                "username=\"$LAB_USER\" password=\"$LAB_PASSWORD\";",
        )
    }
}
""",
    ),
    _t(
        "telematics/timescale/migrations/V12__reporting_roles.sql",
        "h15_pw",
        True,
        r"""
-- V12: read-only roles for Grafana and the dealer reporting export
CREATE ROLE grafana_ro LOGIN PASSWORD '{V}' CONNECTION LIMIT 20;
GRANT CONNECT ON DATABASE trips TO grafana_ro;
GRANT USAGE ON SCHEMA telemetry TO grafana_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA telemetry TO grafana_ro;

CREATE ROLE dealer_export LOGIN PASSWORD '{V2}';
GRANT SELECT ON telemetry.service_due TO dealer_export;
""",
    ),
    _t(
        "telematics/timescale/dump/globals.sql",
        "h15_pg_verifier",
        False,
        r"""
--
-- PostgreSQL database cluster dump (pg_dumpall --globals-only), tsdb-prod-01
--
SET default_transaction_read_only = off;
CREATE ROLE grafana_ro;
ALTER ROLE grafana_ro WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION PASSWORD '{V}';
CREATE ROLE trip_writer;
ALTER ROLE trip_writer WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION PASSWORD '{V2}';
CREATE ROLE dealer_export;
ALTER ROLE dealer_export WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION PASSWORD '{V3}';
""",
    ),
    _t(
        "telematics/grafana/provisioning/datasources/timescale.yaml",
        "h15_pw",
        True,
        r"""
apiVersion: 1
datasources:
  - name: Timescale trips
    type: postgres
    url: tsdb.telematics.vantorra.internal:5432
    user: grafana_ro
    jsonData:
      database: trips
      sslmode: require
      timescaledb: true
    secureJsonData:
      password: {V}
""",
    ),
    _t(
        "telematics/grafana/provisioning/datasources/influx.yaml",
        "h15_ref_env",
        False,
        r"""
apiVersion: 1
datasources:
  - name: CAN signals
    type: influxdb
    url: https://influx.telematics.vantorra.internal:8086
    jsonData:
      version: Flux
      organization: vantorra
      defaultBucket: can_signals_raw
    secureJsonData:
      token: {V}
""",
    ),
]

# ---------------------------------------------------------------------- over-the-air updates
TEMPLATES += [
    _t("ota/signing/keys/release-2024-q3.key.pem", "h15_rsa_key", True, "{V}\n"),
    _t("ota/signing/keys/release-2024-q3.pub.pem", "h15_public_pem", False, "{V}\n"),
    _t(
        "ota/tuf/keys/targets-online.json",
        "h15_tuf_keyval",
        True,
        r"""
{
  "keytype": "ed25519",
  "scheme": "ed25519",
  "keyid_hash_algorithms": ["sha256", "sha512"],
  "keyval": {
    {IV}
  }
}
""",
    ),
    _t(
        "ota/tuf/metadata/root.json",
        "h15_tuf_public",
        False,
        r"""
{
  "signed": {
    "_type": "root",
    "spec_version": "1.0.31",
    "version": 7,
    "expires": "2026-01-31T00:00:00Z",
    "consistent_snapshot": true,
    "keys": {
      "{V4}": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "{V}"}},
      "{V5}": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "{V2}"}},
      "{V6}": {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "{V3}"}}
    },
    "roles": {
      "root": {"keyids": ["{V4}"], "threshold": 1},
      "targets": {"keyids": ["{V5}"], "threshold": 1},
      "timestamp": {"keyids": ["{V6}"], "threshold": 1}
    }
  }
}
""",
    ),
    _t(
        "ota/delivery/src/artifactory.rs",
        "h15_jfrog_ref",
        True,
        r"""
use reqwest::blocking::Client;
use std::path::Path;

const BASE: &str = "https://artifacts.vantorra.com/artifactory/ota-images-local";
// reference token of the ota-publisher service user (rotate yearly, see OTA-412)
const ACCESS_TOKEN: &str = "{V}";

pub fn upload(client: &Client, image: &Path, target: &str) -> anyhow::Result<()> {
    let body = std::fs::read(image)?;
    client
        .put(format!("{BASE}/{target}"))
        .bearer_auth(ACCESS_TOKEN)
        .body(body)
        .send()?
        .error_for_status()?;
    Ok(())
}
""",
    ),
    _t(
        "ota/delivery/src/settings.rs",
        "h15_ref_rust",
        False,
        r"""
use anyhow::Result;

pub struct Delivery {
    pub base: String,
    pub token: String,
}

pub fn from_env() -> Result<Delivery> {
    Ok(Delivery {
        base: "https://artifacts.vantorra.com/artifactory/ota-images-local".into(),
        token: {V},
    })
}
""",
    ),
    _t(
        ".github/workflows/ota-image-release.yml",
        "h15_github",
        True,
        r"""
name: ota-image-release
on:
  push:
    tags: ["tcu-v*"]
jobs:
  release:
    runs-on: [self-hosted, ota-build]
    steps:
      - uses: actions/checkout@v4
      - name: Build image
        run: make -C tcu-image release
      - name: Publish release notes
        env:
          # bot account vantorra-ota-bot; the org secret was not visible on the self-hosted runner
          GH_TOKEN: {V}
        run: gh release create "$GITHUB_REF_NAME" out/*.swu --notes-file out/NOTES.md
""",
    ),
    _t(
        ".github/workflows/ota-image-sign.yml",
        "h15_ref_ci",
        False,
        r"""
name: ota-image-sign
on:
  workflow_dispatch:
jobs:
  sign:
    runs-on: [self-hosted, ota-hsm]
    environment: ota-production
    steps:
      - uses: actions/checkout@v4
      - name: Sign
        env:
          ARTIFACTORY_TOKEN: {V}
          SIGNING_PASS: {V2}
        run: ./ota/build/sign_image.sh out/tcu.swu
""",
    ),
    _t(
        "ota/manifests/campaign-2024-11-tcu.json",
        "h15_digest",
        False,
        r"""
{
  "campaign": "2024-11-TCU-4.12.3",
  "rollout": {"wave1": "5%", "wave2": "40%", "wave3": "100%"},
  "images": [
    {"ecu": "TCU4", "file": "tcu-4.12.3.swu", "sha256": "{V}", "size": 48211968},
    {"ecu": "IVI2", "file": "ivi-2.8.0.swu", "sha256": "{V2}", "size": 311427072},
    {"ecu": "BMS", "file": "bms-1.9.4.bin", "sha256": "{V3}", "size": 1048576}
  ]
}
""",
    ),
    _t(
        "ota/manifests/ecu-compat.yaml",
        "h15_firmware_ver",
        False,
        r"""
# Compatibility matrix used by the director to pick update paths
VT7:
  tcu: "{V}"
  ivi: "{V2}"
VT5E:
  tcu: "{V3}"
  bms: "{V4}"
""",
    ),
    _t(
        "ota/build/sign_image.sh",
        "h15_pw",
        True,
        r"""
#!/usr/bin/env bash
# Sign a SWUpdate image with the quarterly release key.
set -euo pipefail
IMG="$1"
KEY=ota/signing/keys/release-2024-q3.key.pem
openssl dgst -sha256 -sign "$KEY" -passin pass:{V} -out "$IMG.sig" "$IMG"
openssl dgst -sha256 -verify ota/signing/keys/release-2024-q3.pub.pem -signature "$IMG.sig" "$IMG"
echo "signed $IMG"
""",
    ),
    _t(
        "ota/build/sign_image_ci.sh",
        "h15_ref_openssl",
        False,
        r"""
#!/usr/bin/env bash
set -euo pipefail
IMG="$1"
KEY=/run/secrets/ota_release_key.pem
openssl dgst -sha256 -sign "$KEY" -passin {V} -out "$IMG.sig" "$IMG"
""",
    ),
    _t(
        "ota/uptane/director/config.toml",
        "h15_url_pw",
        True,
        r"""
[server]
listen = "0.0.0.0:8443"
tls_cert = "/etc/director/tls/director.crt"
tls_key = "/etc/director/tls/director.key"

[database]
url = "postgres://director:{V}@pg-ota-01.ota.vantorra.internal:5432/director?sslmode=verify-full"
max_connections = 32

[repo]
image_repo = "https://ota.vantorra.com/repo/"
""",
    ),
    _t(
        "ota/uptane/director/config.example.toml",
        "h15_placeholder",
        False,
        r"""
[server]
listen = "0.0.0.0:8443"

[database]
url = "postgres://director:{V}@localhost:5432/director"

[repo]
image_repo = "http://localhost:8080/repo/"
""",
    ),
    _t(
        "ota/signing/hsm/softhsm-pkcs11.conf",
        "h15_pw",
        True,
        r"""
# PKCS#11 module config for the timestamp/snapshot online keys (ota-sign-01)
library = /usr/lib/softhsm/libsofthsm2.so
slot_label = vtm-ota-online
user_pin = {V}
key_label_timestamp = ts-2024
key_label_snapshot = snap-2024
""",
    ),
    _t(
        "ota/docs/runbook-rotazione-chiavi.md",
        "h15_pw",
        True,
        r"""
# Rotazione chiavi OTA (trimestrale)

1. Collegarsi a `ota-sign-01` tramite il jump host di Modena.
2. Sbloccare la chiave offline di release: la passphrase attuale è `{V}`
   (copia cartacea in cassaforte B2, ufficio Connected Car).
3. Generare la nuova coppia con `make -C ota/signing rotate QUARTER=2024-q4`.
4. Firmare il nuovo `root.json` con due chiavi root su tre.
5. Aggiornare il ticket OTA-501 e avvisare il canale #ota-release.
""",
    ),
    _t(
        "ota/docs/runbook-verifica-chiavi.md",
        "h15_cert_fpr",
        False,
        r"""
# Verifica delle chiavi OTA installate sui veicoli

Le impronte SHA-256 dei certificati di firma attualmente accettati dalle TCU:

| Chiave            | Impronta SHA-256 |
|-------------------|------------------|
| release-2024-q2   | `{V}` |
| release-2024-q3   | `{V2}` |

Confrontare con `openssl x509 -in cert.pem -noout -fingerprint -sha256`.
""",
    ),
    _t(
        "ota/ci/.gitlab-ci.yml",
        "h15_docker_pat",
        True,
        r"""
stages: [build, push]

variables:
  IMAGE: vantorra/ota-director

build:
  stage: build
  image: docker:26
  services: [docker:26-dind]
  script:
    - docker build -t $IMAGE:$CI_COMMIT_SHORT_SHA ota/uptane/director

push:
  stage: push
  image: docker:26
  services: [docker:26-dind]
  script:
    - docker login -u vtmotaci -p {V}
    - docker push $IMAGE:$CI_COMMIT_SHORT_SHA
  only: [main]
""",
    ),
    _t(
        "ota/ci/push.gitlab-ci.yml",
        "h15_ref_ci",
        False,
        r"""
push:
  stage: push
  image: docker:26
  services: [docker:26-dind]
  script:
    - echo "{V}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
    - docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
""",
    ),
    _t(
        "ota/edge/wireguard/wg-cdn-origin.conf",
        "h15_wg_private",
        True,
        r"""
# Tunnel between the OTA origin (Milano DC) and the CDN shield node in Frankfurt
[Interface]
Address = 10.88.0.1/30
ListenPort = 51820
PrivateKey = {V}

[Peer]
# cdn-shield-fra
AllowedIPs = 10.88.0.2/32
Endpoint = shield-fra.cdn.vantorra.com:51820
PersistentKeepalive = 25
""",
    ),
    _t(
        "ota/edge/wireguard/peers.md",
        "h15_wg_public",
        False,
        r"""
# WireGuard peers of the OTA origin

Public keys only; the private keys never leave the hosts (generated with `wg genkey`).

- origin-mil: `{V}`
- shield-fra: `{V2}`
- shield-qro: `{V3}`
""",
    ),
]

# ---------------------------------------------------------------------- dealer management systems
TEMPLATES += [
    _t(
        "dms-bridge/src/Vantorra.Dms.Bridge/appsettings.Production.json",
        "h15_pw",
        True,
        r"""
{
  "Logging": { "LogLevel": { "Default": "Information" } },
  "ConnectionStrings": {
    "Bridge": "Server=sql-dms-01.dms.vantorra.internal,1433;Database=DmsBridge;User Id=dms_sync;Password={V};Encrypt=True;TrustServerCertificate=True"
  },
  "DealerSoap": {
    "Endpoint": "https://dms.partner-hub.vantorra.com/ws/OrderService.svc",
    "UserName": "vtm-bridge",
    "Password": "{V2}"
  },
  "Countries": ["IT", "DE", "CZ", "MX"]
}
""",
    ),
    _t(
        "dms-bridge/src/Vantorra.Dms.Bridge/appsettings.Staging.json",
        "h15_ref_store",
        False,
        r"""
{
  "ConnectionStrings": {
    "BridgePasswordRef": "{V}"
  },
  "DealerSoap": {
    "Endpoint": "https://dms-stg.partner-hub.vantorra.com/ws/OrderService.svc",
    "UserName": "vtm-bridge",
    "Password": "{V2}"
  }
}
""",
    ),
    _t(
        "dms-bridge/src/Vantorra.Dms.Bridge/Clients/DealerSoapClientFactory.cs",
        "h15_pw",
        True,
        r"""
using System.ServiceModel;
using Vantorra.Dms.Bridge.Generated;

namespace Vantorra.Dms.Bridge.Clients;

public static class DealerSoapClientFactory
{
    // Legacy Autohaus-Verbund endpoint (DE) still uses WS-Security UsernameToken.
    public static OrderServiceClient CreateGermanLegacy()
    {
        var binding = new BasicHttpsBinding(BasicHttpsSecurityMode.TransportWithMessageCredential);
        var client = new OrderServiceClient(binding,
            new EndpointAddress("https://ws.autohaus-verbund.de/vtm/OrderService.svc"));
        client.ClientCredentials.UserName.UserName = "vantorra_dms";
        client.ClientCredentials.UserName.Password = "{V}";
        return client;
    }
}
""",
    ),
    _t(
        "dms-bridge/src/Vantorra.Dms.Bridge/Clients/DealerSoapClientFactory.Secure.cs",
        "h15_ref_cs",
        False,
        r"""
using System.ServiceModel;
using Vantorra.Dms.Bridge.Generated;

namespace Vantorra.Dms.Bridge.Clients;

public sealed class SecureDealerSoapClientFactory(IConfiguration configuration, SecretClient secretClient, IOptions<SoapOptions> options)
{
    public async Task<OrderServiceClient> CreateAsync()
    {
        var client = new OrderServiceClient(new BasicHttpsBinding(BasicHttpsSecurityMode.TransportWithMessageCredential),
            new EndpointAddress(configuration["DealerSoap:Endpoint"]));
        client.ClientCredentials.UserName.UserName = configuration["DealerSoap:UserName"];
        client.ClientCredentials.UserName.Password = {V};
        return client;
    }
}
""",
    ),
    _t(
        "dms-bridge/dealers/it/concessionari.ini",
        "h15_pw",
        True,
        r"""
; Concessionari Italia - scambio ordini via SFTP (aggiornato da Ufficio Rete Vendita)
[autosalone-rossi-modena]
host = sftp.rossiauto-modena.it
port = 22
user = vantorra
password = {V}
remote_dir = /ordini/in

[motori-bianchi-bologna]
host = 185.44.12.30
user = vtm_ordini
password = {V2}
remote_dir = /upload
""",
    ),
    _t(
        "dms-bridge/dealers/de/haendler.ini",
        "h15_placeholder",
        False,
        r"""
; Händler Deutschland - Vorlage, echte Zugangsdaten stehen im Tresor (Ordner DMS-DE)
[autohaus-keller-stuttgart]
host = sftp.autohaus-keller.de
user = vantorra
password = {V}

[autozentrum-nord-hamburg]
host = dms.az-nord.de
user = vtm
password = {V2}
""",
    ),
    _t(
        "dms-bridge/scripts/Pull-DealerOrders.ps1",
        "h15_pw",
        True,
        r"""
# Scarica gli ordini dai concessionari MX via SFTP (Posh-SSH). Eseguito da Task Scheduler su dms-job-02.
param([string]$Dealer = "autos-del-bajio")

Import-Module Posh-SSH
$user = "vtm_mx"
$secure = ConvertTo-SecureString "{V}" -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($user, $secure)
$session = New-SFTPSession -ComputerName "sftp.autosdelbajio.mx" -Credential $cred -AcceptKey
Get-SFTPChildItem -SessionId $session.SessionId -Path "/pedidos" | ForEach-Object {
    Get-SFTPItem -SessionId $session.SessionId -Path $_.FullName -Destination "D:\dms\inbox\$Dealer"
}
Remove-SFTPSession -SessionId $session.SessionId | Out-Null
""",
    ),
    _t(
        "dms-bridge/scripts/Pull-DealerOrders.Vault.ps1",
        "h15_ref_ps",
        False,
        r"""
param([string]$Dealer = "autos-del-bajio")

Import-Module Posh-SSH
$user = "vtm_mx"
$secure = ConvertTo-SecureString {V} -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($user, $secure)
$session = New-SFTPSession -ComputerName "sftp.autosdelbajio.mx" -Credential $cred
""",
    ),
    _t(
        "dms-bridge/scripts/sync_cz.bat",
        "h15_url_pw",
        True,
        r"""
@echo off
rem Synchronizace objednávek s dealery v ČR (WinSCP), spouští Plánovač úloh na dms-job-02
set LOG=D:\dms\logs\sync_cz_%DATE:~-4%%DATE:~3,2%%DATE:~0,2%.log
"C:\Program Files (x86)\WinSCP\WinSCP.com" /log="%LOG%" /command ^
  "open sftp://vtm_sync:{V}@sftp.autocentrum-brno.cz/ -hostkey=*" ^
  "get /objednavky/*.xml D:\dms\inbox\cz\" ^
  "exit"
if errorlevel 1 echo Chyba synchronizace >> "%LOG%"
""",
    ),
    _t(
        "dms-bridge/scripts/known_dealer_hosts.txt",
        "h15_ssh_fpr",
        False,
        r"""
# Host keys of the dealer SFTP servers, verified by phone with each dealer's IT contact
sftp.autocentrum-brno.cz    {V}
sftp.rossiauto-modena.it    {V2}
sftp.autosdelbajio.mx       {V3}
""",
    ),
    _t(
        "dms-bridge/java/dms-soap-client/src/main/resources/dms-client.properties",
        "h15_pw",
        True,
        r"""
# DMS SOAP client (Autohaus-Verbund, DE) - produzione
dms.ws.endpoint=https://ws.autohaus-verbund.de/vtm/OrderService
dms.ws.username=vantorra_dms
dms.ws.password={V}
dms.ws.timeout.ms=30000
ssl.keystore.path=/opt/dms-client/keystore.p12
ssl.keystore.password={V2}
""",
    ),
    _t(
        "dms-bridge/java/dms-soap-client/src/main/resources/dms-client-k8s.properties",
        "h15_ref_jvm",
        False,
        r"""
dms.ws.endpoint=https://ws.autohaus-verbund.de/vtm/OrderService
dms.ws.username=vantorra_dms
dms.ws.password={V}
ssl.keystore.path=/etc/dms-client/keystore.p12
ssl.keystore.password={V2}
""",
    ),
    _t(
        "dms-bridge/java/dms-soap-client/src/main/java/com/vantorra/dms/WsSecurityHeaderHandler.java",
        "h15_weak_pw",
        True,
        r"""
package com.vantorra.dms;

import jakarta.xml.ws.handler.soap.SOAPHandler;
import jakarta.xml.ws.handler.soap.SOAPMessageContext;

/** Adds the WS-Security UsernameToken required by the Spanish-language dealer DMS (MX). */
public class WsSecurityHeaderHandler implements SOAPHandler<SOAPMessageContext> {
    private static final String WS_USER = "vantorra.mx";
    private static final String WS_PASSWORD = "{V}";

    @Override
    public boolean handleMessage(SOAPMessageContext ctx) {
        if (Boolean.TRUE.equals(ctx.get(SOAPMessageContext.MESSAGE_OUTBOUND_PROPERTY))) {
            UsernameTokens.add(ctx.getMessage(), WS_USER, WS_PASSWORD);
        }
        return true;
    }
}
""",
    ),
    _t(
        "dms-bridge/sql/seed/portal_users.sql",
        "h15_pw_hash",
        False,
        r"""
-- Dealer portal users migrated from the old PHP portal (passwords already hashed)
INSERT INTO portal.users (login, dealer_code, role, password_hash) VALUES
  ('m.rossi@rossiauto-modena.it', 'IT-MO-014', 'dealer_admin', '{V}'),
  ('k.keller@autohaus-keller.de', 'DE-S-102', 'dealer_admin', '{V2}'),
  ('p.novak@autocentrum-brno.cz', 'CZ-B-007', 'dealer_user', '{V3}');
""",
    ),
    _t(
        "dms-bridge/sql/linked_servers.sql",
        "h15_pw",
        True,
        r"""
-- Linked server towards the Mexican DMS replica (sql-dms-mx.vantorra.com.mx)
EXEC master.dbo.sp_addlinkedserver
    @server = N'DMS_MX', @srvproduct = N'', @provider = N'MSOLEDBSQL',
    @datasrc = N'sql-dms-mx.vantorra.com.mx,1433';
EXEC master.dbo.sp_addlinkedsrvlogin
    @rmtsrvname = N'DMS_MX', @useself = N'False', @locallogin = NULL,
    @rmtuser = N'vtm_link', @rmtpassword = N'{V}';
GO
""",
    ),
    _t(
        "dms-bridge/sql/seed/dealer_bank_accounts.sql",
        "h15_iban",
        False,
        r"""
-- Conti per l'accredito provvigioni ai concessionari (fonte: anagrafica SAP FI)
INSERT INTO dealer.bank_accounts (dealer_code, holder, account) VALUES
  ('IT-MO-014', 'Autosalone Rossi S.r.l.', '{V}'),
  ('DE-S-102', 'Autohaus Keller GmbH', '{V2}'),
  ('CZ-B-007', 'Autocentrum Brno s.r.o.', '{V3}'),
  ('MX-GTO-003', 'Autos del Bajío S.A. de C.V.', '{V4}');
""",
    ),
    _t(
        "dms-bridge/sql/seed/dealer_tax_ids.csv",
        "h15_tax_id",
        False,
        r"""
dealer_code;ragione_sociale;id_fiscale;paese
IT-MO-014;Autosalone Rossi S.r.l.;{V};IT
DE-S-102;Autohaus Keller GmbH;{V2};DE
CZ-B-007;Autocentrum Brno s.r.o.;{V3};CZ
""",
    ),
    _t(
        "dms-bridge/docs/onboarding-haendler.md",
        "h15_weak_pw",
        True,
        r"""
# Onboarding neuer Händler (DMS-Anbindung)

1. Händlernummer im SAP anlegen lassen (Vertrieb DE, Frau Hoffmann).
2. SFTP-Zugang beim Händler-IT beantragen; Vorlage: `dealers/de/haendler.ini`.
3. Für die Abnahme gibt es ein Testkonto im Händlerportal
   (https://haendler-stg.vantorra.de): Benutzer `haendler.test`, Passwort `{V}`.
4. Nach erfolgreichem Testauftrag den Händler im Bridge-Config freischalten.
""",
    ),
    _t(
        "dms-bridge/docs/alta-concesionario-mx.md",
        "h15_placeholder",
        False,
        r"""
# Alta de un concesionario en México

1. Solicitar el número de distribuidor a Ventas MX (Querétaro).
2. Configurar el acceso SFTP en `scripts/Pull-DealerOrders.ps1`:
   - usuario: `vtm_mx`
   - contraseña: `{V}` (la entrega el área de TI del concesionario por teléfono)
3. Probar con un pedido de prueba y revisar el log en `D:\dms\logs`.
""",
    ),
]

# ---------------------------------------------------------------------- factory MES / SCADA
TEMPLATES += [
    _t(
        "mes/ignition/line3/opcua-connections.yaml",
        "h15_pw",
        True,
        r"""
# OPC UA connections of the Line 3 (body shop, Modena) Ignition gateway
connections:
  - name: L3-Robots-KUKA
    endpoint: opc.tcp://l3-kuka-gw.plant-mo.vantorra.internal:4840
    securityPolicy: Basic256Sha256
    securityMode: SignAndEncrypt
    username: ignition_l3
    password: "{V}"
  - name: L3-Welding-PLC
    endpoint: opc.tcp://10.41.3.20:4840
    securityPolicy: Basic256Sha256
    username: ignition_l3
    password: "{V2}"
""",
    ),
    _t(
        "mes/plc/hmi-line2/panel-users.xml",
        "h15_vendor_default",
        True,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<!-- HMI panel hmi-l2-mo.plant-mo.vantorra.internal (paint shop line 2) - user export -->
<PanelUsers device="hmi-l2-mo" firmware="17.0.2">
  <User name="admin" group="Administrators" password="{V}" logoffTime="5"/>
  <User name="operator" group="Operators" password="{V2}" logoffTime="15"/>
</PanelUsers>
""",
    ),
    _t(
        "mes/inventory/network-devices-plant-kv.csv",
        "h15_vendor_default",
        True,
        r"""
hostname,ip,model,mgmt_user,mgmt_password,note
sw-kv-hala2-01,10.60.2.11,Hirschmann RSP35,admin,{V},výchozí heslo - změnit při auditu
sw-kv-hala2-02,10.60.2.12,Hirschmann RSP35,admin,{V2},
gw-kv-wago-07,10.60.7.7,WAGO 750-8212,admin,{V3},PFC200 gateway lisovna
""",
    ),
    _t(
        "mes/ansible/group_vars/plc_gateways.yml",
        "h15_ref_ansible",
        False,
        r"""
# PLC gateways (WAGO PFC200) in Kvasiny and Modena
plc_gateway_admin_user: admin
plc_gateway_admin_password: "{V}"
plc_gateway_ntp: ntp.plant.vantorra.internal
opcua_user: mes_reader
opcua_password: "{V2}"
""",
    ),
    _t(
        "mes/ansible/group_vars/scada_hosts/vars.yml",
        "h15_pw",
        True,
        r"""
ansible_user: Administrator
ansible_connection: winrm
ansible_winrm_transport: ntlm
ansible_password: "{V}"
ignition_admin_user: admin
ignition_admin_password: "{V2}"
ignition_version: 8.1.42
""",
    ),
    _t("mes/ansible/group_vars/scada_hosts/vault.yml", "h15_ansible_vault", False, "{V}\n"),
    _t(
        "mes/snmp/snmpd.conf",
        "h15_snmp_community",
        True,
        r"""
# snmpd for the MES application servers (mes-app-0[1-4].plant-mo)
agentAddress udp:161
sysLocation Modena stabilimento, sala server B
sysContact it-plant-mo@vantorra.com
rocommunity {V} 10.40.0.0/16
rwcommunity {V2} 10.40.9.5
disk / 10%
""",
    ),
    _t(
        "mes/collector/opcua_collector.py",
        "h15_pw",
        True,
        r"""
import asyncio

from asyncua import Client

ENDPOINT = "opc.tcp://l3-kuka-gw.plant-mo.vantorra.internal:4840"
NODES = ["ns=3;s=Robot1.CycleTime", "ns=3;s=Robot1.Faults", "ns=3;s=Robot2.CycleTime"]


async def main() -> None:
    client = Client(url=ENDPOINT)
    client.set_user("mes_reader")
    client.set_password("{V}")
    await client.set_security_string(
        "Basic256Sha256,SignAndEncrypt,certs/collector.der,certs/collector.key.pem"
    )
    async with client:
        for node_id in NODES:
            print(node_id, await client.get_node(node_id).read_value())


asyncio.run(main())
""",
    ),
    _t(
        "mes/collector/opcua_collector_service.py",
        "h15_ref_py",
        False,
        r"""
import asyncio
import os

from asyncua import Client

from .settings import settings, config, keyring, vault_client

ENDPOINT = os.environ.get("OPCUA_ENDPOINT", "opc.tcp://l3-kuka-gw.plant-mo.vantorra.internal:4840")


async def connect() -> Client:
    client = Client(url=ENDPOINT)
    client.set_user("mes_reader")
    client.set_password({V})
    return client
""",
    ),
    _t(
        "mes/collector/config.ini",
        "h15_pw",
        True,
        r"""
[mssql]
server = sql-mes-01.plant-mo.vantorra.internal
database = MES_Linea3
user = mes_collector
password = {V}

[mqtt]
host = mqtt.plant-mo.vantorra.internal
port = 8883
user = collector-l3
password = {V2}
""",
    ),
    _t(
        "mes/collector/config.ini.dist",
        "h15_role_word",
        False,
        r"""
; copy to config.ini; the key names below are mapped 1:1 onto the settings model
[mssql]
server = localhost
database = MES_Linea3
user = user
password = {V}

[mqtt]
host = localhost
user = user
password = {V2}
""",
    ),
    _t(
        "mes/scripts/backup_plc.bat",
        "h15_weak_pw",
        True,
        r"""
@echo off
rem Backup nightly dei progetti PLC sulla NAS di stabilimento
net use P: \\nas-mo-01.plant-mo.vantorra.internal\plc_backup /user:PLANT\svc_plcbackup {V} /persistent:no
robocopy C:\PLC_Projects P:\%COMPUTERNAME% /MIR /R:2 /W:5 /LOG:C:\Temp\plc_backup.log
net use P: /delete /y
""",
    ),
    _t(
        "mes/scripts/backup_plc_vault.bat",
        "h15_ref_win",
        False,
        r"""
@echo off
rem La password viene da Credential Manager (script di avvio del servizio)
net use P: \\nas-mo-01.plant-mo.vantorra.internal\plc_backup /user:PLANT\svc_plcbackup {V} /persistent:no
robocopy C:\PLC_Projects P:\%COMPUTERNAME% /MIR /R:2 /W:5
net use P: /delete /y
""",
    ),
    _t(
        "mes/edge/sparkplug-edge-node.json",
        "h15_pw",
        True,
        r"""
{
  "groupId": "Plant-Queretaro",
  "edgeNodeId": "ensamble-linea1",
  "mqtt": {
    "servers": ["ssl://mqtt.plant-qro.vantorra.com.mx:8883"],
    "clientId": "edge-qro-l1",
    "username": "edge_qro",
    "password": "{V}",
    "keepAlive": 30
  },
  "devices": ["torque-stations", "leak-test", "eol-rollers"]
}
""",
    ),
    _t(
        "mes/ignition/exports/internal-users.csv",
        "h15_pw_hash",
        False,
        r"""
username,firstname,lastname,roles,password
l.ferrari,Luca,Ferrari,Administrator;Engineer,{V}
j.dvorak,Jan,Dvořák,Operator,{V2}
m.hernandez,María,Hernández,Supervisor,{V3}
""",
    ),
    _t(
        "mes/grafana/grafana.ini",
        "h15_weak_pw",
        True,
        r"""
[server]
domain = grafana.plant-mo.vantorra.internal
root_url = https://%(domain)s/

[security]
admin_user = admin
admin_password = {V}
disable_gravatar = true

[auth.ldap]
enabled = true
config_file = /etc/grafana/ldap.toml
""",
    ),
    _t(
        "mes/hmi/i18n/login-messages.yaml",
        "h15_i18n",
        False,
        r"""
# Messaggi della schermata di login dei pannelli HMI (tutte le lingue di stabilimento)
login.password.invalid:
  it: "{V}"
  de: "{V2}"
  cs: "{V3}"
  es: "{V4}"
""",
    ),
    _t(
        "mes/docs/Zugang-Pruefstand-PS4.md",
        "h15_vendor_default",
        True,
        r"""
# Prüfstand PS-4 (Antriebsstrang), Entwicklungszentrum München

- Steuerrechner: `pruefstand-ps4.ezm.vantorra.internal` (Web-UI auf Port 8080)
- Login: `service` / `{V}` (Werkseinstellung des Herstellers, noch nicht geändert!)
- Messdaten landen unter `\\fs-ezm-01\pruefstand\PS4`.
- Ansprechpartner: Team Antrieb, Herr Brandt.
""",
    ),
    _t(
        "mes/kvasiny/README.cs.md",
        "h15_weak_pw",
        True,
        r"""
# MES terminály - lisovna Kvasiny

Přihlášení do terminálů na lince (Windows 10 IoT, automatické přihlášení vypnuto):

- uživatel: `KV\mes_operator`
- heslo: `{V}`

Po výměně terminálu nahrát profil přes `\\fs-kv-01\mes\profily`.
""",
    ),
    _t(
        "mes/kvasiny/PRISTUPY.cs.md",
        "h15_redacted",
        False,
        r"""
# Přístupy - lisovna Kvasiny

| Systém | Uživatel | Heslo |
|---|---|---|
| MES terminály | `KV\mes_operator` | `{V}` |
| Ignition gateway | `admin` | `{V2}` |

Hesla jsou v trezoru (KeePass `IT-Kvasiny.kdbx`), sem je nepište.
""",
    ),
]

# ---------------------------------------------------------------------- car-sharing app
TEMPLATES += [
    _t(
        "sharing/ios/ci/netrc",
        "h15_mapbox_sk",
        True,
        r"""
machine api.mapbox.com
login mapbox
password {V}
""",
    ),
    _t(
        "sharing/ios/VantorraShare/Info.plist",
        "h15_mapbox_pk",
        False,
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDisplayName</key>
	<string>Vantorra Share</string>
	<key>CFBundleIdentifier</key>
	<string>com.vantorra.share</string>
	<key>MBXAccessToken</key>
	<string>{V}</string>
	<key>NSLocationWhenInUseUsageDescription</key>
	<string>Per trovare le auto disponibili vicino a te.</string>
</dict>
</plist>
""",
    ),
    _t(
        "sharing/ios/VantorraShare/Services/RoutingConfig.swift",
        "h15_here_key",
        True,
        r"""
import Foundation

enum RoutingConfig {
    static let baseURL = URL(string: "https://router.hereapi.com/v8/routes")!
    // falls back to the team key when the scheme does not inject HERE_API_KEY (debug builds)
    static let hereApiKey = ProcessInfo.processInfo.environment["HERE_API_KEY"] ?? "{V}"
    static let transportMode = "car"
}
""",
    ),
    _t(
        "sharing/ios/VantorraShare/Services/PaymentsConfig.swift",
        "h15_stripe_pk",
        False,
        r"""
import StripePaymentSheet

enum PaymentsConfig {
    // publishable keys are meant to ship in the app
    static let publishableKeyEU = "{V}"
    static let publishableKeyMX = "{V2}"

    static func configure(region: String) {
        StripeAPI.defaultPublishableKey = region == "MX" ? publishableKeyMX : publishableKeyEU
    }
}
""",
    ),
    _t("sharing/push/AuthKey_sharing-prod.p8", "h15_apns_p8", True, "{V}\n"),
    _t(
        "sharing/push/apns.json",
        "h15_apple_key_id",
        False,
        r"""
{
  "bundleId": "com.vantorra.share",
  "keyId": "{V}",
  "teamId": "{V2}",
  "keyFile": "/run/secrets/apns/AuthKey.p8",
  "production": true
}
""",
    ),
    _t(
        "sharing/android/gradle.properties",
        "h15_pw",
        True,
        r"""
org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
RELEASE_STORE_FILE=../keystore/vantorra-share-release.jks
RELEASE_STORE_PASSWORD={V}
RELEASE_KEY_ALIAS=vantorra-share
RELEASE_KEY_PASSWORD={V2}
""",
    ),
    _t(
        "sharing/android/app/build.gradle.kts",
        "h15_ref_kt",
        False,
        r"""
plugins {
    id("com.android.application")
    kotlin("android")
}

android {
    namespace = "com.vantorra.share"
    signingConfigs {
        create("release") {
            storeFile = file("../keystore/vantorra-share-release.jks")
            storePassword = {V}
            keyAlias = "vantorra-share"
            keyPassword = {V2}
        }
    }
}
""",
    ),
    _t(
        "sharing/backend/src/payments/stripe.ts",
        "h15_stripe_sk",
        True,
        r"""
import Stripe from "stripe";

// EU tenant (IT, DE, CZ). The fallback is for the staging pods that miss the secret mount.
export const stripe = new Stripe(process.env.STRIPE_SECRET_KEY ?? "{V}", {
  apiVersion: "2024-06-20",
  appInfo: { name: "vantorra-share-backend" },
});

export async function chargeTrip(customer: string, cents: number, tripId: string) {
  return stripe.paymentIntents.create({
    amount: cents,
    currency: "eur",
    customer,
    metadata: { tripId },
    confirm: true,
  });
}
""",
    ),
    _t(
        "sharing/backend/src/payments/stripeClient.ts",
        "h15_ref_js",
        False,
        r"""
import Stripe from "stripe";
import config from "config";
import { secrets } from "../secrets";
import { Config } from "../config";

export async function stripeClient(): Promise<Stripe> {
  const key = {V};
  return new Stripe(String(key), { apiVersion: "2024-06-20" });
}
""",
    ),
    _t(
        "sharing/backend/src/payments/mercadopago.mx.ts",
        "h15_mp_token",
        True,
        r"""
import { MercadoPagoConfig, Payment } from "mercadopago";

// Cuenta de Vantorra Movilidad S.A. de C.V. (producción)
const client = new MercadoPagoConfig({
  accessToken: "{V}",
  options: { timeout: 5000 },
});

export async function cobrarViaje(viajeId: string, monto: number, token: string, email: string) {
  return new Payment(client).create({
    body: { transaction_amount: monto, token, description: `Viaje ${viajeId}`, installments: 1, payer: { email } },
  });
}
""",
    ),
    _t(
        "sharing/web/src/config/payments.mx.ts",
        "h15_mp_public",
        False,
        r"""
// Public key de Mercado Pago para el formulario de tarjeta (se usa en el navegador)
export const MP_PUBLIC_KEY = "{V}";
export const MP_LOCALE = "es-MX";
""",
    ),
    _t(
        "sharing/backend/src/notify/sms.ts",
        "h15_twilio_token",
        True,
        r"""
import twilio from "twilio";

const sid = process.env.TWILIO_ACCOUNT_SID!;
// auth token of the Vantorra Share subaccount (OTP SMS for IT/DE/CZ/MX)
const client = twilio(sid, "{V}");

export function sendOtp(to: string, code: string) {
  return client.messages.create({ to, from: "VantorraSh", body: `Codice / Code: ${code}` });
}
""",
    ),
    _t(
        "sharing/backend/src/notify/push-legacy.js",
        "h15_fcm_key",
        True,
        r"""
// Legacy FCM HTTP API, still used by the Android 2.x app builds
const fetch = require("node-fetch");

const FCM_SERVER_KEY = "{V}";

async function pushToDevice(token, title, body) {
  const res = await fetch("https://fcm.googleapis.com/fcm/send", {
    method: "POST",
    headers: { Authorization: `key=${FCM_SERVER_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ to: token, notification: { title, body } }),
  });
  return res.json();
}

module.exports = { pushToDevice };
""",
    ),
    _t(
        "sharing/backend/test/fixtures/users.json",
        "h15_fake_test",
        False,
        r"""
[
  {"email": "giulia.test@example.com", "locale": "it-IT", "password": "{V}"},
  {"email": "jonas.test@example.com", "locale": "de-DE", "password": "{V2}"},
  {"email": "ana.test@example.com", "locale": "es-MX", "password": "{V3}"}
]
""",
    ),
    _t(
        "sharing/backend/test/integration/email.int.test.ts",
        "h15_sendgrid",
        True,
        r"""
import sgMail from "@sendgrid/mail";
import { describe, it, expect } from "vitest";

// runs only in the nightly integration job against the real account
describe("booking confirmation email", () => {
  it("is accepted by SendGrid", async () => {
    sgMail.setApiKey("{V}");
    const [res] = await sgMail.send({
      to: "qa-inbox@vantorra.com",
      from: "noreply@share.vantorra.com",
      templateId: "d-booking-confirmation",
      dynamicTemplateData: { name: "QA" },
    });
    expect(res.statusCode).toBe(202);
  });
});
""",
    ),
    _t(
        "sharing/backend/test/unit/auth.test.ts",
        "h15_fake_test",
        False,
        r"""
import { describe, it, expect } from "vitest";
import { verifyAdminToken } from "../../src/auth/admin";

describe("verifyAdminToken", () => {
  it("rejects unknown tokens", async () => {
    await expect(verifyAdminToken("{V}")).rejects.toThrow("invalid token");
  });

  it("rejects the token after logout", async () => {
    await expect(verifyAdminToken("{V2}")).rejects.toThrow();
  });
});
""",
    ),
    _t(
        "sharing/backend/.env.production",
        "h15_url_pw",
        True,
        r"""
NODE_ENV=production
PORT=8080
DATABASE_URL=postgresql://share_app:{V}@pg-share-prod.sharing.vantorra.internal:5432/share
REDIS_URL=rediss://default:{V2}@redis-share-prod.sharing.vantorra.internal:6380/0
LOG_LEVEL=info
""",
    ),
    _t(
        "sharing/backend/src/i18n/errors.json",
        "h15_i18n",
        False,
        r"""
{
  "auth.wrong_password": {
    "it": "{V}",
    "de": "{V2}",
    "cs": "{V3}",
    "es-MX": "{V4}"
  }
}
""",
    ),
    _t(
        "sharing/android/app/src/main/res/values-cs/strings.xml",
        "h15_i18n",
        False,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">Vantorra Share</string>
    <string name="login_password_hint">Heslo</string>
    <string name="login_password_error">{V}</string>
    <string name="login_forgot">{V2}</string>
</resources>
""",
    ),
    _t(
        "sharing/deploy/stg/docker-compose.yml",
        "h15_weak_pw",
        True,
        r"""
# Staging VM sharing-stg-01.sharing.vantorra.internal (docker compose up -d)
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_DB: share
      POSTGRES_USER: share_app
      POSTGRES_PASSWORD: {V}
    ports: ["5432:5432"]
  redis:
    image: redis:7
    command: ["redis-server", "--requirepass", "{V2}"]
  backend:
    image: registry.vantorra.com/sharing/backend:stg
    environment:
      DATABASE_URL: postgresql://share_app:{V}@db:5432/share
""",
    ),
    _t(
        "sharing/deploy/ci/docker-compose.ci.yml",
        "h15_ref_env",
        False,
        r"""
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_DB: share
      POSTGRES_USER: share_app
      POSTGRES_PASSWORD: {V}
  backend:
    build: ../../backend
    environment:
      DB_PASSWORD: {V2}
""",
    ),
    _t(
        "sharing/backend/tests/cassettes/test_geocode_milano.yaml",
        "h15_here_key",
        True,
        r"""
interactions:
- request:
    body: null
    headers:
      Accept: ['*/*']
      User-Agent: [python-requests/2.32.3]
    method: GET
    uri: https://geocode.search.hereapi.com/v1/geocode?q=Via+Tortona+25%2C+Milano&apiKey={V}
  response:
    body: {string: '{"items":[{"title":"Via Tortona 25, 20144 Milano MI, Italia","position":{"lat":45.45174,"lng":9.16321}}]}'}
    headers:
      Content-Type: [application/json]
    status: {code: 200, message: OK}
version: 1
""",
    ),
    _t(
        "sharing/backend/tests/cassettes/test_capture_payment.yaml",
        "h15_redacted",
        False,
        r"""
interactions:
- request:
    body: amount=1290&currency=eur&customer=cus_test_share_17
    headers:
      Authorization: [Bearer {V}]
      Stripe-Version: ['2024-06-20']
    method: POST
    uri: https://api.stripe.com/v1/payment_intents
  response:
    body: {string: '{"id":"pi_redacted","status":"succeeded"}'}
    status: {code: 200, message: OK}
version: 1
""",
    ),
    _t(
        "sharing/pricing/notebooks/demand_forecast.ipynb",
        "h15_pw",
        True,
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Previsione domanda car sharing - Milano e Torino\n"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\n",
    "import psycopg2\n",
    "conn = psycopg2.connect(host=\"dwh.sharing.vantorra.internal\", dbname=\"share_dwh\", user=\"analyst_ro\", password=\"{V}\")\n",
    "df = pd.read_sql(\"select * from trips where city in ('MI','TO')\", conn)\n"
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
        "sharing/pricing/notebooks/fleet_usage.ipynb",
        "h15_uuid",
        False,
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 7,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "longest trips this week:\n",
      "{V}  312.4 km  MI->TO\n",
      "{V2}  288.0 km  MI->BO\n",
      "{V3}  251.7 km  TO->GE\n"
     ]
    }
   ],
   "source": ["top_trips(df, n=3)\n"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "sharing/backend/src/admin/okta.ts",
        "h15_okta",
        True,
        r"""
// Syncs the fleet-operator group from Okta into the admin console roles.
const OKTA_ORG = "https://vantorra.okta.com";
const OKTA_API_TOKEN = "{V}";

export async function listFleetOperators() {
  const res = await fetch(`${OKTA_ORG}/api/v1/groups/fleet-operators/users`, {
    headers: { Authorization: `SSWS ${OKTA_API_TOKEN}`, Accept: "application/json" },
  });
  if (!res.ok) throw new Error(`okta ${res.status}`);
  return res.json();
}
""",
    ),
    _t(
        "sharing/ops/alerts/slack_notify.py",
        "h15_slack_bot",
        True,
        r"""
import sys

from slack_sdk import WebClient

# bot "share-ops" in the vantorra.slack.com workspace
client = WebClient(token="{V}")


def notify(text: str, channel: str = "#share-ops-alerts") -> None:
    client.chat_postMessage(channel=channel, text=text)


if __name__ == "__main__":
    notify(" ".join(sys.argv[1:]) or "test")
""",
    ),
    _t(
        "sharing/web/next.config.js",
        "h15_google_api",
        True,
        r"""
/** @type {import('next').NextConfig} */
module.exports = {
  reactStrictMode: true,
  i18n: { locales: ["it", "de", "cs", "es-MX"], defaultLocale: "it" },
  // server-side only: used by /api/geocode, never sent to the browser
  serverRuntimeConfig: {
    googleGeocodingKey: "{V}",
  },
  publicRuntimeConfig: {
    mapStyle: "mapbox://styles/vantorra/share-light",
  },
};
""",
    ),
    _t(
        "sharing/web/.env.production",
        "h15_mapbox_pk",
        False,
        r"""
NEXT_PUBLIC_API_BASE=https://api.share.vantorra.com
NEXT_PUBLIC_MAPBOX_TOKEN={V}
NEXT_PUBLIC_DEFAULT_CITY=milano
""",
    ),
]

# ---------------------------------------------------------------------- charging (OCPP)
TEMPLATES += [
    _t(
        "charging/csms/src/main/resources/application-prod.properties",
        "h15_pw",
        True,
        r"""
server.port=8443
ocpp.ws.path=/ocpp/{chargeBoxId}
ocpp.security-profile=2
spring.datasource.url=jdbc:postgresql://pg-csms-01.charge.vantorra.internal:5432/csms
spring.datasource.username=csms
spring.datasource.password={V}
spring.rabbitmq.host=mq-csms.charge.vantorra.internal
spring.rabbitmq.username=csms
spring.rabbitmq.password={V2}
""",
    ),
    _t(
        "charging/provisioning/wallboxes-it-2024-10.csv",
        "h15_ocpp_authkey",
        True,
        r"""
charge_box_id,site,model,security_profile,authorization_key
VTM-IT-MO-0031,Modena HQ parcheggio P2,Alpitronic HYC300,2,{V}
VTM-IT-MI-0107,Milano Portello,ABB Terra AC W22,2,{V2}
VTM-IT-TO-0012,Torino Lingotto,ABB Terra AC W22,2,{V3}
""",
    ),
    _t(
        "charging/provisioning/wallboxes-de-2024-10.csv",
        "h15_evse_id",
        False,
        r"""
charge_box_id,standort,evse_id,connector
VTM-DE-M-0004,München EZM Tiefgarage,{V},Typ 2
VTM-DE-M-0005,München EZM Tiefgarage,{V2},CCS
VTM-DE-S-0019,Stuttgart Vertrieb,{V3},Typ 2
""",
    ),
    _t(
        "charging/simulator/sim_station.py",
        "h15_ocpp2_pw",
        True,
        r"""
# Charging station simulator for the staging CSMS (OCPP 2.0.1, security profile 2)
import asyncio
import base64

import websockets

CSMS = "wss://csms-stg.charge.vantorra.com/ocpp"
STATION = "VTM-SIM-0001"
BASIC_AUTH_PASSWORD = "{V}"


async def main() -> None:
    auth = base64.b64encode(f"{STATION}:{BASIC_AUTH_PASSWORD}".encode()).decode()
    async with websockets.connect(
        f"{CSMS}/{STATION}", subprotocols=["ocpp2.0.1"], extra_headers={"Authorization": f"Basic {auth}"}
    ) as ws:
        await ws.send('[2,"1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"SIM","vendorName":"Vantorra"}}]')
        print(await ws.recv())


asyncio.run(main())
""",
    ),
    _t(
        "charging/simulator/tests/test_boot.py",
        "h15_fake_test",
        False,
        r"""
import pytest

from simulator.station import Station


@pytest.fixture
def station() -> Station:
    # the mock CSMS accepts any key; this one is deliberately not a valid AuthorizationKey
    return Station("VTM-SIM-TEST", basic_auth_password="{V}")


def test_boot_is_accepted(station: Station, mock_csms) -> None:
    assert station.boot(mock_csms).status == "Accepted"
""",
    ),
    _t(
        "charging/csms/src/main/java/com/vantorra/csms/ops/RotateAuthKeyJob.java",
        "h15_ocpp_authkey",
        True,
        r"""
package com.vantorra.csms.ops;

import com.vantorra.csms.ocpp16.ChangeConfigurationRequest;
import com.vantorra.csms.ocpp16.Session;

/** One-off: pushes the new AuthorizationKey to the Modena HQ chargers (ticket CHG-233). */
public final class RotateAuthKeyJob {
    private static final String NEW_KEY = "{V}";

    public static void run(Session session) {
        session.send(new ChangeConfigurationRequest("AuthorizationKey", NEW_KEY));
        session.send(new ChangeConfigurationRequest("SecurityProfile", "2"));
    }
}
""",
    ),
    _t(
        "charging/csms/src/test/resources/ocpp16/authorize-batch.json",
        "h15_idtag",
        False,
        r"""
[
  [2, "a1f0", "Authorize", {"idTag": "{V}"}],
  [2, "a1f1", "Authorize", {"idTag": "{V2}"}],
  [2, "a1f2", "StartTransaction", {"connectorId": 1, "idTag": "{V3}", "meterStart": 104233, "timestamp": "2024-10-02T07:41:12Z"}]
]
""",
    ),
    _t(
        "charging/roaming/ocpi/credentials-hubject.json",
        "h15_ocpi_token",
        True,
        r"""
{
  "comment": "OCPI 2.2.1 credentials exchanged with the roaming hub (production)",
  "url": "https://ocpi.hub-partner.eu/2.2.1/versions",
  "token_a": "{V}",
  "token_c": "{V2}",
  "roles": [{"role": "CPO", "party_id": "VTM", "country_code": "IT"}]
}
""",
    ),
    _t(
        "charging/roaming/ocpi/sessions-export.json",
        "h15_uuid",
        False,
        r"""
{
  "data": [
    {"id": "{V}", "country_code": "IT", "party_id": "VTM", "kwh": 31.4, "auth_method": "WHITELIST", "status": "COMPLETED"},
    {"id": "{V2}", "country_code": "DE", "party_id": "VTM", "kwh": 12.9, "auth_method": "AUTH_REQUEST", "status": "COMPLETED"}
  ],
  "status_code": 1000,
  "timestamp": "2024-10-03T00:00:00Z"
}
""",
    ),
    _t(
        "charging/deploy/helm/csms/values-prod.yaml",
        "h15_pw",
        True,
        r"""
image:
  repository: registry.vantorra.com/charging/csms
  tag: 3.8.1
replicaCount: 3
postgresql:
  enabled: true
  auth:
    username: csms
    password: "{V}"
    postgresPassword: "{V2}"
rabbitmq:
  auth:
    username: csms
    password: "{V3}"
""",
    ),
    _t(
        "charging/deploy/helm/csms/values.yaml",
        "h15_placeholder",
        False,
        r"""
image:
  repository: registry.vantorra.com/charging/csms
  tag: latest
postgresql:
  enabled: true
  auth:
    username: csms
    password: "{V}"
    existingSecret: ""
rabbitmq:
  auth:
    username: csms
    password: "{V2}"
""",
    ),
    _t(
        "charging/sites/qro-planta/cargadores.json",
        "h15_vendor_default",
        True,
        r"""
{
  "sitio": "Planta Querétaro - estacionamiento empleados",
  "cargadores": [
    {"id": "VTM-MX-QRO-0002", "ip": "10.120.8.21", "modelo": "ABB Terra AC", "webUser": "admin", "webPassword": "{V}"},
    {"id": "VTM-MX-QRO-0003", "ip": "10.120.8.22", "modelo": "ABB Terra AC", "webUser": "admin", "webPassword": "{V2}"}
  ],
  "nota": "contraseñas de fábrica, cambiar cuando se integren al CSMS"
}
""",
    ),
    _t(
        "charging/csms/src/main/resources/db/migration/V7__station_credentials.sql",
        "h15_pw_hash",
        False,
        r"""
-- Basic-auth keys of the stations are stored hashed only (the station keeps the clear key)
INSERT INTO station_credentials (charge_box_id, key_hash, rotated_at) VALUES
  ('VTM-IT-MO-0031', '{V}', '2024-10-01'),
  ('VTM-IT-MI-0107', '{V2}', '2024-10-01');
""",
    ),
    _t("charging/csms/tls/csms-server.crt", "h15_cert", False, "{V}\n"),
    _t("charging/csms/tls/csms-server.key", "h15_ec_key", True, "{V}\n"),
]

# ---------------------------------------------------------------------- finance arm
TEMPLATES += [
    _t(
        "finance/cfdi/timbrado/config.php",
        "h15_sat_key_pw",
        True,
        r"""
<?php
// Timbrado de CFDI 4.0 - Vantorra Financiera México (RFC en el certificado CSD)
return [
    'pac' => [
        'url' => 'https://timbrado.pac-proveedor.com.mx/ws/v4',
        'usuario' => 'vantorra_fin',
    ],
    'csd' => [
        'cer' => __DIR__ . '/../certs/csd-vtm-mx.cer',
        'key' => __DIR__ . '/../certs/csd-vtm-mx.key',
        // contraseña de la llave privada del CSD (la misma que la FIEL, pendiente de cambiar)
        'key_password' => '{V}',
    ],
    'serie' => 'VF',
];
""",
    ),
    _t(
        "finance/cfdi/timbrado/config.prod.php",
        "h15_ref_php",
        False,
        r"""
<?php
return [
    'pac' => [
        'url' => 'https://timbrado.pac-proveedor.com.mx/ws/v4',
        'usuario' => 'vantorra_fin',
        'password' => {V},
    ],
    'csd' => [
        'cer' => '/etc/cfdi/csd-vtm-mx.cer',
        'key' => '/etc/cfdi/csd-vtm-mx.key',
        'key_password' => {V2},
    ],
];
""",
    ),
    _t("finance/cfdi/certs/csd-vtm-mx.cer.pem", "h15_cert", False, "{V}\n"),
    _t(
        "finance/banking/fio/fio_sync.py",
        "h15_fio_token",
        True,
        r"""
# Stahuje pohyby na účtu Vantorra Components s.r.o. z Fio API a ukládá je do účetnictví.
# Spouští cron na fin-job-01 každých 30 minut (Fio povoluje 1 dotaz za 30 s).
import datetime as dt

import requests

FIO_TOKEN = "{V}"
URL = "https://fioapi.fio.cz/v1/rest/periods/{token}/{od}/{do}/transactions.json"


def stahni(od: dt.date, do: dt.date) -> list[dict]:
    res = requests.get(URL.format(token=FIO_TOKEN, od=od.isoformat(), do=do.isoformat()), timeout=30)
    res.raise_for_status()
    return res.json()["accountStatement"]["transactionList"]["transaction"]
""",
    ),
    _t(
        "finance/banking/fio/ucty.yaml",
        "h15_iban",
        False,
        r"""
# Bankovní účty skupiny (pouze čísla účtů, žádné přístupové údaje)
ucty:
  - nazev: Vantorra Components s.r.o. - provozní
    iban: "{V}"
  - nazev: Vantorra Motors S.p.A. - incassi leasing
    iban: "{V2}"
  - nazev: Vantorra Financiera - SPEI
    iban: "{V3}"
""",
    ),
    _t("finance/banking/ebics/keys/bank-x002.pem", "h15_public_pem", False, "{V}\n"),
    _t(
        "finance/sdi/README.md",
        "h15_redacted",
        False,
        r"""
# Invio fatture elettroniche (SDI) via PEC

La casella PEC `fatture@pec.vantorrafinance.it` è configurata in `sdi/pec.conf`.

- utente: `fatture@pec.vantorrafinance.it`
- password: `{V}` (nel vault, percorso `kv/finance/sdi/pec`)

Per il codice destinatario usare sempre quello dell'anagrafica cliente.
""",
    ),
    _t(
        "finance/credit-scoring/config/database.yml",
        "h15_ref_ruby",
        False,
        r"""
default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

production:
  <<: *default
  host: pg-scoring.fin.vantorra.internal
  database: credit_scoring
  username: scoring_app
  password: {V}
""",
    ),
    _t(
        "finance/portal/forms/login-form.json",
        "h15_role_word",
        False,
        r"""
{
  "form": "leasing-portal-login",
  "fields": [
    {"type": "email", "name": "email", "label": {"it": "E-mail", "de": "E-Mail", "cs": "E-mail", "es": "Correo"}},
    {"type": "password", "name": "{V}", "autocomplete": "current-password", "label": {"it": "Password", "de": "Passwort", "cs": "Heslo", "es": "Contraseña"}}
  ],
  "submit": "/api/session"
}
""",
    ),
    _t(
        "finance/portal/settings/prod.py",
        "h15_django_key",
        True,
        r"""
from .base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["leasing.vantorrafinance.it", "leasing.vantorrafinance.de"]
SECRET_KEY = "{V}"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LANGUAGES = [("it", "Italiano"), ("de", "Deutsch"), ("cs", "Čeština"), ("es", "Español")]
""",
    ),
    _t(
        "finance/portal/settings/base.py",
        "h15_ref_py",
        False,
        r"""
import os
from pathlib import Path

from .secrets import settings, config, keyring, vault_client

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = {V}
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "leasing_portal",
        "USER": "portal",
        "PASSWORD": {V2},
        "HOST": os.environ.get("PORTAL_DB_HOST", "localhost"),
    }
}
""",
    ),
    _t(
        "finance/webhooks/verify.go",
        "h15_hmac_hex",
        True,
        r"""
package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
)

// Signing secret shared with the leasing partner for payment-status callbacks.
var webhookSecret = []byte("{V}")

func Verify(r *http.Request, body []byte) bool {
	mac := hmac.New(sha256.New, webhookSecret)
	mac.Write(body)
	want := hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(r.Header.Get("X-Vtm-Signature")))
}
""",
    ),
    _t(
        "finance/webhooks/testdata/callbacks.json",
        "h15_digest",
        False,
        r"""
[
  {
    "headers": {"X-Vtm-Signature": "{V}", "Content-Type": "application/json"},
    "body": {"contract": "LS-IT-2024-001873", "status": "PAID", "amount": "412.90", "currency": "EUR"}
  },
  {
    "headers": {"X-Vtm-Signature": "{V2}", "Content-Type": "application/json"},
    "body": {"contract": "LS-MX-2024-000311", "status": "LATE", "amount": "7890.00", "currency": "MXN"}
  }
]
""",
    ),
    _t(
        "finance/leasing/exports/contratti-2024-09.csv",
        "h15_vin",
        False,
        r"""
contratto;cliente;telaio;modello;canone_mensile
LS-IT-2024-001873;Cliente 40211;{V};VT7 Sportiva;412,90
LS-IT-2024-001874;Cliente 40233;{V2};VT5e Urbana;289,00
LS-DE-2024-000912;Kunde 7781;{V3};VT7 Touring;455,50
""",
    ),
]

# ---------------------------------------------------------------------- platform and CI
TEMPLATES += [
    _t(
        "platform/terraform/envs/prod/providers.tf",
        "h15_azure_client_secret",
        True,
        r"""
terraform {
  required_providers {
    azurerm = { source = "hashicorp/azurerm", version = "~> 3.110" }
  }
}

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
  tenant_id       = var.tenant_id
  client_id       = var.client_id
  # sp-terraform-prod (expires 2025-12); temporary until the pipeline uses OIDC
  client_secret   = "{V}"
}
""",
    ),
    _t(
        "platform/terraform/envs/prod/backend.tf",
        "h15_azure_storage_key",
        True,
        r"""
terraform {
  backend "azurerm" {
    storage_account_name = "stvtmtfstateprod"
    container_name       = "tfstate"
    key                  = "platform/prod.tfstate"
    access_key           = "{V}"
  }
}
""",
    ),
    _t(
        "platform/terraform/modules/dms-sql/main.tf",
        "h15_ref_iac",
        False,
        r"""
resource "azurerm_mssql_server" "dms" {
  name                         = "sql-vtm-dms-${var.env}"
  resource_group_name          = var.resource_group
  location                     = var.location
  version                      = "12.0"
  administrator_login          = "dmsadmin"
  administrator_login_password = {V}
  minimum_tls_version          = "1.2"
}
""",
    ),
    _t(
        "platform/terraform/envs/prod/terraform.tfvars",
        "h15_uuid",
        False,
        r"""
subscription_id = "{V}"
tenant_id       = "{V2}"
client_id       = "{V3}"
location        = "westeurope"
env             = "prod"
""",
    ),
    _t(
        "platform/k8s/ota/regcred.yaml",
        "h15_basic_b64",
        True,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: ota
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: |
    {"auths":{"registry.vantorra.com":{"auth":"{V}"}}}
""",
    ),
    _t(
        "platform/k8s/telematics/kafka-credentials.sealed.yaml",
        "h15_encrypted",
        False,
        r"""
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: kafka-credentials
  namespace: telematics
spec:
  encryptedData:
    username: {V}
    password: {V2}
  template:
    type: Opaque
""",
    ),
    _t(
        "platform/nginx/htpasswd.d/ota-staging",
        "h15_htpasswd",
        False,
        r"""
qa-ota:{V}
dealer-preview:{V2}
ccar-team:{V3}
""",
    ),
    _t(
        "platform/vault/bootstrap-kv.sh",
        "h15_vault_token",
        True,
        r"""
#!/usr/bin/env bash
# One-time bootstrap of the kv mounts after the Vault migration (run from ops-bastion-01)
set -euo pipefail
export VAULT_ADDR=https://vault.platform.vantorra.internal:8200
export VAULT_TOKEN={V}
vault secrets enable -path=kv -version=2 kv || true
for team in telematics ota dms mes sharing charging finance; do
  vault policy write "$team-read" "policies/$team-read.hcl"
done
""",
    ),
    _t(
        "finance/.gitlab-ci.yml",
        "h15_sonar_token",
        True,
        r"""
stages: [test, quality]

unit:
  stage: test
  image: python:3.12
  script:
    - pip install -r requirements-dev.txt
    - pytest -q

sonar:
  stage: quality
  image: sonarsource/sonar-scanner-cli:11
  script:
    - sonar-scanner -Dsonar.host.url=https://sonar.vantorra.com -Dsonar.projectKey=finance-portal -Dsonar.token={V}
  only: [main, merge_requests]
""",
    ),
    _t(
        "ci/azure-pipelines.yml",
        "h15_ref_ci",
        False,
        r"""
trigger:
  branches: { include: [main] }
pool:
  vmImage: windows-2022
steps:
  - task: DotNetCoreCLI@2
    inputs: { command: test, projects: "dms-bridge/**/*.Tests.csproj" }
  - script: dotnet sonarscanner begin /k:"dms-bridge" /d:sonar.host.url="https://sonar.vantorra.com" /d:sonar.token="{V}"
  - script: dotnet nuget push out/*.nupkg --source vantorra-feed --api-key {V2}
""",
    ),
    _t(
        "ci/azure-pipelines-dms-config.yml",
        "h15_azdo_pat",
        True,
        r"""
trigger: none
schedules:
  - cron: "0 3 * * *"
    branches: { include: [main] }
pool:
  name: dms-onprem
steps:
  - checkout: none
  - script: |
      git clone https://build-dms:{V}@dev.azure.com/vantorra/DMS/_git/bridge-config config
      xcopy /E /Y config\dealers D:\dms\config\dealers\
    displayName: Sync dealer configuration
""",
    ),
    _t(
        "sharing/web/.npmrc",
        "h15_npm",
        True,
        r"""
@vantorra:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
save-exact=true
engine-strict=true
""",
    ),
    _t(
        "sharing/web/package-lock.json",
        "h15_sri",
        False,
        r"""
{
  "name": "vantorra-share-web",
  "version": "3.4.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/mapbox-gl": {
      "version": "3.6.0",
      "resolved": "https://registry.npmjs.org/mapbox-gl/-/mapbox-gl-3.6.0.tgz",
      "integrity": "{V}"
    },
    "node_modules/stripe": {
      "version": "16.2.0",
      "resolved": "https://registry.npmjs.org/stripe/-/stripe-16.2.0.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
    ),
    _t("platform/ssh/deploy_ota", "h15_openssh_key", True, "{V}\n"),
    _t("platform/ssh/deploy_ota.pub", "h15_ssh_pub", False, "{V}\n"),
    _t("platform/keys/dms-signing.p8.enc.pem", "h15_encrypted_key", False, "{V}\n"),
    _t(
        "platform/gcp/sa-sharing-analytics.json",
        "h15_gcp_pem_escaped",
        True,
        r"""
{
  "type": "service_account",
  "project_id": "vtm-sharing-analytics",
  "private_key": "{V}",
  "client_email": "bq-loader@vtm-sharing-analytics.iam.gserviceaccount.com",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
    ),
    _t(
        "platform/aws/config",
        "h15_aws_account",
        False,
        r"""
[profile telematics-prod]
role_arn = arn:aws:iam::{V}:role/ops-readonly
source_profile = sso-ops
region = eu-south-1

[profile ota-prod]
role_arn = arn:aws:iam::{V2}:role/ota-release
source_profile = sso-ops
region = eu-central-1
""",
    ),
    _t(
        "platform/auth/jwks.json",
        "h15_jwks_n",
        False,
        r"""
{
  "keys": [
    {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "vtm-2024-09", "e": "AQAB", "n": "{V}"},
    {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "vtm-2024-03", "e": "AQAB", "n": "{V2}"}
  ]
}
""",
    ),
    _t(
        "platform/alertmanager/alertmanager.yml",
        "h15_slack_webhook",
        True,
        r"""
global:
  resolve_timeout: 5m
  # old workspace receiver, kept until the migration is verified:
  # slack_api_url: {V}
  slack_api_url_file: /etc/alertmanager/secrets/slack_url

route:
  receiver: ccar-oncall
  group_by: [alertname, cluster]

receivers:
  - name: ccar-oncall
    slack_configs:
      - channel: "#ccar-alerts"
        send_resolved: true
""",
    ),
    _t(
        "platform/alertmanager/receivers-pagerduty.yml",
        "h15_pd_routing",
        True,
        r"""
receivers:
  - name: charging-critical
    pagerduty_configs:
      - routing_key: {V}
        severity: critical
        description: "{{ .CommonAnnotations.summary }}"
  - name: ota-critical
    pagerduty_configs:
      - routing_key: {V2}
        severity: critical
""",
    ),
    _t(
        "sharing/ai/dealer_assistant.py",
        "h15_openai",
        True,
        r"""
# Prototype: answers dealer questions about the VT7 configurator (IT/DE/CS/ES).
import os

from openai import OpenAI

client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "{V}"))


def ask(question: str, lang: str = "it") -> str:
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": f"Rispondi come assistente concessionari Vantorra, lingua: {lang}."},
            {"role": "user", "content": question},
        ],
    )
    return resp.choices[0].message.content or ""
""",
    ),
    _t(
        "sharing/backend/src/auth/googleSignIn.ts",
        "h15_google_client_id",
        False,
        r"""
import { OAuth2Client } from "google-auth-library";

// OAuth client ids are public identifiers (one per platform)
const CLIENT_IDS = ["{V}", "{V2}"];
const client = new OAuth2Client();

export async function verifyGoogleIdToken(idToken: string) {
  const ticket = await client.verifyIdToken({ idToken, audience: CLIENT_IDS });
  return ticket.getPayload();
}
""",
    ),
]

# ---------------------------------------------------------------------- docs, chat, tickets
TEMPLATES += [
    _t(
        "docs/chat/slack-export/ota-release/2024-10-14.json",
        "h15_gitlab",
        True,
        r"""
[
  {
    "type": "message",
    "user": "U05QK2M7T1",
    "text": "runner on ota-build01 can't pull the tcu-image submodule, the project token expired",
    "ts": "1728900112.001200"
  },
  {
    "type": "message",
    "user": "U04H8VBX3C",
    "text": "use my token for today: {V} (read_repository only), I'll rotate it tomorrow",
    "ts": "1728900398.004100"
  }
]
""",
    ),
    _t(
        "docs/chat/teams-export/rete-vendita-it.txt",
        "h15_ref_store",
        False,
        r"""
[09:12] Chiara Fontana: qualcuno ha la password dell'SFTP di Autosalone Rossi?
[09:14] Marco Galli: non la incollo qui, è nel vault: {V}
[09:15] Chiara Fontana: trovata, grazie
[09:31] Marco Galli: anche quella del portale concessionari è lì: {V2}
""",
    ),
    _t(
        "docs/tickets/CHG-241-alarmierung.md",
        "h15_teams_webhook",
        True,
        r"""
# CHG-241: Alarme der Ladesäulen in den Teams-Kanal "Laden DE" schicken

**Status:** In Arbeit  **Bearbeiter:** T. Brandt

Der Connector ist eingerichtet, Webhook-URL für die CSMS-Konfiguration:

    {V}

Bitte in `charging/csms` unter `alerts.teams.url` eintragen und den Ticket-Status
auf "Erledigt" setzen, sobald der erste Testalarm angekommen ist.
""",
    ),
    _t(
        "docs/wiki/Monitoring-Webhooks.md",
        "h15_example_cred",
        False,
        r"""
# Webhooks and credentials in monitoring configs

Never paste a real URL or key into a config file. The formats look like these
examples from the vendors' documentation:

- `{V}`
- `{V2}`

Real values live in Vault under `kv/platform/monitoring/*` and are mounted as files.
""",
    ),
    _t(
        "docs/notes/revert-ota-2024-10.md",
        "h15_git_sha",
        False,
        r"""
# Revert della campagna OTA 2024-10 (TCU 4.12.2)

Commit ripristinati su `tcu-image`:

- `{V}` - rollback del driver modem
- `{V2}` - configurazione APN per MX

Tag ricreato: `tcu-v4.12.3` sul commit `{V3}`.
""",
    ),
    _t(
        "docs/runbooks/telematics-oncall.md",
        "h15_ref_shell",
        False,
        r"""
# Telematics on-call: restarting the ingest with fresh credentials

1. Log in to ops-bastion-01.
2. Export the broker password for the session:

       export KAFKA_PASSWORD={V}

3. Restart: `kubectl -n telematics rollout restart deploy/vtm-ingest`.
4. Check lag: `kafka-consumer-groups --bootstrap-server "$BROKERS" --describe --group ingest`.
""",
    ),
    _t(
        "platform/ansible/inventory/plant-mx.ini",
        "h15_ref_ansible",
        False,
        r"""
[scada_qro]
scada-qro-01.plant-qro.vantorra.com.mx
scada-qro-02.plant-qro.vantorra.com.mx

[scada_qro:vars]
ansible_connection=winrm
ansible_user=PLANTQRO\svc_ansible
ansible_password={V}
""",
    ),
]
