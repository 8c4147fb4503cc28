"""Blind part ``tune22``: Quillon Health, a healthcare software company that also runs the IT of a
hospital network (sites in Norway, Germany and Spain). Written blind (without seeing the scanner,
its rules, its output or other parts' templates), to be tuned on.

Files are in the shapes of Quillon's repositories: EHR integration (HL7 v2 and FHIR interfaces in
Java/HAPI and C#/.NET, Mirth Connect channel exports and ``mirth.properties``, interface engine
configs, MLLP listeners, SMART backend-services clients), the patient portal (Django settings and
tests, React and Angular front ends with their ``.env`` and ``environment.ts`` files, i18n
catalogues in Norwegian, German and Spanish), mobile apps (Flutter/Dart, Swift with fastlane and
App Store Connect keys, Kotlin/Gradle signing configs), imaging (Orthanc JSON configs, dcm4chee
LDAP and WildFly settings, DICOM node lists, PACS routing scripts), lab and device integration
(Python ASTM/serial bridges, C++ device drivers and their INI files), identity (Keycloak realm
exports and admin scripts, Active Directory PowerShell, LDAP ``sssd.conf`` and ``ldapsearch``
calls, SAML SP metadata and signing keys), the data warehouse (SQL Server logins and SSIS
configs, Postgres roles and ``.pgpass``, Airflow configs and connections, Spark defaults, R
scripts and ``.Renviron``, notebooks), infrastructure (Azure Terraform, ARM parameters, service
principal output, VMware PowerCLI and govc, Ansible inventories, Kubernetes manifests and Helm
values, Docker Compose and Dockerfiles), CI (Azure DevOps pipelines, GitLab CI, ``.npmrc`` and
``NuGet.Config`` for Azure Artifacts), and docs: runbooks, vendor handovers, on-call notes and
chat exports in English, German, Spanish and Norwegian.

Credentials (positive) include passwords of all strengths (vendor defaults on real hosts, weak
words, seasonal passwords), shared secrets, service-issued tokens in their real formats (Azure
DevOps PATs, GitLab and GitHub tokens, NuGet keys, Azure storage and Service Bus keys, Entra ID
client secrets, SAS signatures, Slack/Teams/Logic Apps webhooks, FCM server keys, SendGrid and
Twilio secrets), real unencrypted private keys (RSA, EC, Ed25519/OpenSSH, built with
``cryptography`` from the seeded generator so builds are reproducible), URI credentials, Basic
auth strings, credentials in prose, CLI arguments, test code, commented-out lines and defaults.

Look-alikes (negative) sit in the same kinds of files under the same key names: references to
environment variables, Key Vault, Azure DevOps and GitLab variables, Ansible and Helm templates;
placeholders and redactions (in four languages); hashes (bcrypt, Keycloak PBKDF2 credential data,
LDAP ``{SSHA}``, SQL Server ``0x0200`` hashes, SCRAM verifiers); encrypted values (Ansible Vault,
SOPS, Jasypt, DPAPI-protected config sections, encrypted PEM keys); real certificates, public keys
and SAML metadata; identifiers shaped like secrets (tenant, subscription and client ids, DICOM
UIDs, Application Insights keys, Twilio account SIDs, image digests, commit hashes); UI text about
passwords; documented example credentials on documentation hosts; test values that say they are
fake; and role-word pairs (``user``/``password``).
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
from urllib.parse import quote

import evalset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.x509.oid import NameOID

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
LOWNUM = string.ascii_lowercase + string.digits
UPNUM = string.ascii_uppercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
B32LOW = "abcdefghijklmnopqrstuvwxyz234567"
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%*+-_.@?"

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


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


def _der_int(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "big")
    return _der(0x02, raw)


def _armor(label: str, der: bytes, width: int = 64) -> str:
    body = base64.b64encode(der).decode()
    rows = [body[i : i + width] for i in range(0, len(body), width)]
    return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"


def _ssh_str(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class Tune22Values(evalset.Values):
    """Value generators of the tune22 part; every slot generator's name starts with ``t22_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "stetoskop",
            "triage",
            "suture",
            "vitals",
            "nordlys",
            "fjellet",
            "lindenbaum",
            "sonrisa",
            "cardio",
            "pulsar",
            "ambulans",
            "heilung",
            "girasol",
            "radiology",
            "ventricle",
            "bergenhus",
        ]
        self.users = [
            "hl7_engine",
            "fhir_gw",
            "mirth",
            "orthanc",
            "pacs_router",
            "lis_bridge",
            "dw_etl",
            "portal_app",
            "svc_adsync",
            "airflow",
        ]
        self._ca: rsa.RSAPrivateKey | None = None

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

    def _is_probable_prime(self, n: int) -> bool:
        if any(n % p == 0 for p in _SMALL_PRIMES):
            return False
        d, r = n - 1, 0
        while d % 2 == 0:
            d //= 2
            r += 1
        for _ in range(6):
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
            if (n - 1) % 65537 and self._is_probable_prime(n):
                return n

    def _rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        e = 65537
        while True:
            p, q = self._prime(bits // 2), self._prime(bits // 2)
            if p != q:
                break
        if p < q:
            p, q = q, p
        d = pow(e, -1, (p - 1) * (q - 1))
        pub = rsa.RSAPublicNumbers(e, p * q)
        numbers = rsa.RSAPrivateNumbers(
            p,
            q,
            d,
            rsa.rsa_crt_dmp1(d, p),
            rsa.rsa_crt_dmq1(d, q),
            rsa.rsa_crt_iqmp(p, q),
            pub,
        )
        return numbers.private_key()

    def _ec(self, curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
        curve = curve or ec.SECP256R1()
        order = (
            0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
            if isinstance(curve, ec.SECP256R1)
            else 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973
        )
        return ec.derive_private_key(self.rng.randrange(1, order), curve)

    def _ca_key(self) -> rsa.RSAPrivateKey:
        if self._ca is None:
            self._ca = self._rsa(2048)
        return self._ca

    def _cert_obj(self) -> x509.Certificate:
        cn = self.pick(
            [
                "fhir.quillonhealth.no",
                "pacs01.qh.internal",
                "mirth-prod.qh.internal",
                "sso.quillonhealth.no",
                "portal.quillonhealth.no",
                "orthanc-bergen.qh.internal",
                "lis-gw.klinikum-quillon.de",
                "saml-sp.quillonhealth.no",
                "hl7-mllp.qh.internal",
            ]
        )
        key = self._ec()
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Quillon Health AS"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Quillon Health Issuing CA 02"),
            ]
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Quillon Health AS"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        start = datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            days=self.rng.randrange(0, 700)
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(120) | 1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=int(self.pick(["365", "730", "825"]))))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(self._ca_key(), hashes.SHA256())
        )

    def _pw_core(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%?"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Qh" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(self.rng.randrange(16, 25), ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    # ------------------------------------------------------------------ positives: passwords
    def t22_pw(self) -> str:
        return self._pw_core()

    def t22_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Velkommen1",
                    "Willkommen1!",
                    "Bienvenido1",
                    "Hospital1",
                    "Sykehus123",
                    "Klinikum1!",
                    "Quillon1",
                    "letmein1",
                    "Passord1",
                    "Passwort1!",
                    "qwerty123",
                ]
            )
        if shape == 1:
            return "Quillon" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "?"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])
        if shape == 3:
            return (
                self.pick(["Sommer", "Vinter", "Verano", "Invierno", "Winter", "Host", "Herbst"])
                + str(self.rng.randrange(2019, 2026))
                + self.pick(["", "!"])
            )
        return self.pick(["pacs", "mirth", "orthanc", "fhir", "lab", "radiologi"]) + self.s(
            3, DIGITS
        )

    def t22_vendor_default(self) -> str:
        # Vendor defaults left on real hosts (Mirth admin/admin, Orthanc orthanc/orthanc, dcm4chee,
        # RabbitMQ guest, device web UIs): weak, but they grant access.
        return self.pick(["admin", "admin", "admin123", "password", "1234", "Admin@123"])

    def t22_orthanc_default(self) -> str:
        return self.pick(["orthanc", "orthanc", "orthanc123", "admin"])

    def t22_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.~")

    def t22_sql_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.t22_weak_pw()
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(10, 16), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "!", "$", "_", "@"]) + body[cut:]

    def t22_any_pw(self) -> str:
        return self.t22_weak_pw() if self.rng.randrange(3) == 0 else self._pw_core()

    def t22_passphrase(self) -> str:
        return " ".join(self.pick(self.words) for _ in range(3)) + " " + self.s(2, DIGITS)

    def t22_keystore_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return "Qh" + self.pick(["android", "ios", "keystore", "signing"]) + self.s(4, DIGITS)
        return self.s(self.rng.randrange(16, 28), ALNUM)

    def t22_b64_pw(self) -> str:
        return base64.b64encode(self.t22_any_pw().encode()).decode()

    def t22_basic(self) -> str:
        user = self.pick([*self.users, "svc-ci", "integration", "epic-interconnect"])
        return base64.b64encode(f"{user}:{self._pw_core()}".encode()).decode()

    def t22_mirth_storepass(self) -> str:
        return self.s(12, ALNUM)

    # ------------------------------------------------------------------ positives: tokens
    def t22_ado_pat(self) -> str:
        if self.rng.randrange(2):
            return self.s(52, B32LOW)
        return (
            self.s(52, ALNUM)
            + "JQQJ9"
            + self.pick(["9", "D", "H"])
            + self.s(18, ALNUM)
            + "AZDO"
            + self.s(4, ALNUM)
        )

    def t22_npmrc_pat(self) -> str:
        return base64.b64encode(self.t22_ado_pat().encode()).decode()

    def t22_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t22_gitlab(self) -> str:
        return self.pick(["glpat-", "glpat-", "glrt-", "gldt-"]) + self.s(20, URLSAFE)

    def t22_gitlab_trigger(self) -> str:
        return "glptt-" + self.s(40, HEX)

    def t22_nuget_key(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def t22_storage_key(self) -> str:
        return self._b64(64)

    def t22_storage_conn(self) -> str:
        account = self.pick(
            ["stqhdwprod", "stqhimaging", "stqhportal", "stqhbackup01", "stqhlabexport"]
        )
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"
        )

    def t22_sb_key(self) -> str:
        return self._b64(32)

    def t22_sas_sig(self) -> str:
        return quote(self._b64(32), safe="")

    def t22_entra_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t22_client_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self._b64(32, urlsafe=True, pad=False)
        return self.t22_entra_secret()

    def t22_kc_secret(self) -> str:
        return self.s(32, ALNUM)

    def t22_hex32(self) -> str:
        return self.s(32, HEX)

    def t22_hex64(self) -> str:
        return self.s(64, HEX)

    def t22_b64_secret(self) -> str:
        return self._b64(self.pick([24, 32, 48]))

    def t22_fernet(self) -> str:
        return self._b64(32, urlsafe=True)

    def t22_django_key(self) -> str:
        if self.rng.randrange(3) == 0:
            return "django-insecure-" + self.s(
                50, string.ascii_lowercase + DIGITS + "!@#$%^&*(-_=+)"
            )
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#$%^&*(-_=+)")

    def t22_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        alg = self.pick(["RS256", "HS256", "RS256"])
        header: dict[str, object] = {"alg": alg, "typ": "JWT"}
        if alg == "RS256":
            header["kid"] = self.s(43, URLSAFE)
        iat = 1700000000 + self.rng.randrange(4 * 10**7)
        payload = {
            "exp": iat + int(self.pick(["300", "3600", "86400"])),
            "iat": iat,
            "jti": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "iss": self.pick(
                [
                    "https://sso.quillonhealth.no/realms/clinical",
                    "https://sso.quillonhealth.no/realms/portal",
                    "https://login.microsoftonline.com/"
                    + str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                    + "/v2.0",
                ]
            ),
            "azp": self.pick(["fhir-gateway", "patient-portal", "lab-bridge", "pacs-viewer"]),
            "scope": self.pick(
                ["system/*.read", "openid profile", "patient/Observation.read launch"]
            ),
            "preferred_username": self.pick(self.users),
        }
        sig = self._b64(256 if alg == "RS256" else 32, urlsafe=True, pad=False)
        return f"{part(header)}.{part(payload)}.{sig}"

    def t22_slack_webhook(self) -> str:
        return f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"

    def t22_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://quillonhealth.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t22_logicapp_url(self) -> str:
        region = self.pick(["westeurope", "northeurope", "norwayeast", "germanywestcentral"])
        return (
            f"https://prod-{self.rng.randrange(10, 99)}.{region}.logic.azure.com:443/workflows/"
            f"{self.s(32, HEX)}/triggers/manual/paths/invoke?api-version=2016-10-01"
            f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.s(43, URLSAFE)}"
        )

    def t22_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t22_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t22_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t22_mapbox_sk(self) -> str:
        head = (
            base64.urlsafe_b64encode(
                json.dumps({"u": "quillonhealth", "a": self.s(25, LOWNUM)}).encode()
            )
            .decode()
            .rstrip("=")
        )
        return f"sk.{head}.{self.s(22, URLSAFE)}"

    def t22_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t22_docker_auth(self) -> str:
        user = self.pick(
            ["qhacrprod", "qh-ci", "svc-harbor", "00000000-0000-0000-0000-000000000000"]
        )
        return base64.b64encode(
            f"{user}:{self.pick([self._pw_core(), self._b64(32)])}".encode()
        ).decode()

    def t22_datadog(self) -> str:
        return self.s(32, HEX)

    def t22_api_key(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "qh_live_" + self.s(32, ALNUM)
        if shape == 1:
            return self.s(40, HEX)
        if shape == 2:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).replace(
                "-", ""
            ) + self.s(8, HEX)
        return self._b64(30, urlsafe=True, pad=False)

    def t22_aws_pair_ini(self) -> str:
        key_id = "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    # ------------------------------------------------------------------ positives: private keys
    def t22_rsa_pem(self) -> str:
        key = self._rsa(2048)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return _armor("RSA PRIVATE KEY", der)

    def t22_pkcs8_pem(self) -> str:
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            self._rsa(2048) if self.rng.randrange(2) else self._ec()
        )
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _armor("PRIVATE KEY", der)

    def t22_ec_pem(self) -> str:
        key = self._ec(self.pick([ec.SECP256R1(), ec.SECP384R1()]))  # type: ignore[list-item]
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return _armor("EC PRIVATE KEY", der)

    def t22_p8_key(self) -> str:
        der = self._ec().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _armor("PRIVATE KEY", der)

    def t22_json_key(self) -> str:
        der = self._rsa(2048).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _armor("PRIVATE KEY", der).replace("\n", "\\n") + "\\n"

    def t22_key_b64(self) -> str:
        der = self._rsa(2048).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return base64.b64encode(der).decode()

    def t22_openssh_key(self) -> str:
        seed = self.rng.randbytes(32)
        pub = (
            ed25519.Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        pub_blob = _ssh_str(b"ssh-ed25519") + _ssh_str(pub)
        check = self.rng.randbytes(4)
        comment = self.pick(
            ["ansible@qh-jump01", "deploy@pacs-router", "svc-backup@qh-nas02", "gitlab-runner@ci03"]
        )
        priv = (
            check
            + check
            + _ssh_str(b"ssh-ed25519")
            + _ssh_str(pub)
            + _ssh_str(seed + pub)
            + _ssh_str(comment.encode())
        )
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        blob = (
            b"openssh-key-v1\x00"
            + _ssh_str(b"none")
            + _ssh_str(b"none")
            + _ssh_str(b"")
            + struct.pack(">I", 1)
            + _ssh_str(pub_blob)
            + _ssh_str(priv)
        )
        return _armor("OPENSSH PRIVATE KEY", blob, 70)

    # ------------------------------------------------------------------ negatives: public material
    def t22_cert(self) -> str:
        return self._cert_obj().public_bytes(serialization.Encoding.PEM).decode().strip()

    def t22_cert_b64(self) -> str:
        return base64.b64encode(self._cert_obj().public_bytes(serialization.Encoding.DER)).decode()

    def t22_pubkey(self) -> str:
        return (
            self._ec()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def t22_ssh_pub(self) -> str:
        seed = self.rng.randbytes(32)
        pub = (
            ed25519.Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        return (
            pub
            + " "
            + self.pick(
                ["ansible@qh-jump01", "ola.nordmann@qh-laptop", "deploy@ci03", "backup@qh-nas02"]
            )
        )

    def t22_jwk_n(self) -> str:
        return self._b64(256, urlsafe=True, pad=False)

    # ------------------------------------------------------------------ negatives: encrypted values
    def t22_enc_pkcs8(self) -> str:
        der = self._ec().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        salt, iv, iters = self.rng.randbytes(16), self.rng.randbytes(16), 2048
        password = self.rng.randbytes(16)
        key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iters).derive(password)
        padder = padding.PKCS7(128).padder()
        data = padder.update(der) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        ct = enc.update(data) + enc.finalize()
        kdf = _der(
            0x30,
            _der_oid("1.2.840.113549.1.5.12")
            + _der(
                0x30,
                _der(0x04, salt)
                + _der_int(iters)
                + _der(0x30, _der_oid("1.2.840.113549.2.9") + b"\x05\x00"),
            ),
        )
        cipher = _der(0x30, _der_oid("2.16.840.1.101.3.4.1.42") + _der(0x04, iv))
        alg = _der(0x30, _der_oid("1.2.840.113549.1.5.13") + _der(0x30, kdf + cipher))
        return _armor("ENCRYPTED PRIVATE KEY", _der(0x30, alg + _der(0x04, ct)))

    def t22_enc_legacy(self) -> str:
        der = self._ec().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        iv = self.rng.randbytes(16)
        password = self.rng.randbytes(12)
        d1 = hashlib.md5(password + iv[:8]).digest()
        d2 = hashlib.md5(d1 + password + iv[:8]).digest()
        padder = padding.PKCS7(128).padder()
        data = padder.update(der) + padder.finalize()
        enc = Cipher(algorithms.AES(d1 + d2), modes.CBC(iv)).encryptor()
        body = base64.b64encode(enc.update(data) + enc.finalize()).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{iv.hex().upper()}\n\n"
            + "\n".join(rows)
            + "\n-----END EC PRIVATE KEY-----"
        )

    def t22_ansible_vault(self) -> str:
        body = self.s(80 * self.rng.randrange(4, 7), HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t22_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self._b64(self.rng.randrange(10, 36))},"
            f"iv:{self._b64(32)},tag:{self._b64(16)},type:str]"
        )

    def t22_jasypt(self) -> str:
        return "ENC(" + self._b64(self.pick([32, 48])) + ")"

    def t22_dpapi(self) -> str:
        return self._b64(self.rng.randrange(160, 260))

    # ------------------------------------------------------------------ negatives: hashes
    def t22_bcrypt(self) -> str:
        return f"$2{self.pick(['a', 'b', 'y'])}$1{self.pick(['0', '2'])}$" + self.s(53, CRYPT64)

    def t22_kc_hash(self) -> str:
        return self._b64(64)

    def t22_ssha(self) -> str:
        return "{SSHA}" + self._b64(28)

    def t22_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def t22_scram(self) -> str:
        return f"SCRAM-SHA-256$4096:{self._b64(16)}${self._b64(32)}:{self._b64(32)}"

    def t22_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t22_pbkdf2_django(self) -> str:
        return f"pbkdf2_sha256$870000${self.s(22, ALNUM)}${self._b64(32)}"

    def t22_htpasswd(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    # ------------------------------------------------------------------ negatives: ids shaped like secrets
    def t22_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t22_git_sha(self) -> str:
        return self.s(40, HEX)

    def t22_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def t22_dicom_uid(self) -> str:
        root = self.pick(
            ["1.2.826.0.1.3680043.8.498", "1.2.840.113619.2.55.3", "1.3.6.1.4.1.5962.99.1"]
        )
        return f"{root}.{self.rng.randrange(10**9, 10**10)}.{self.rng.randrange(10**5, 10**7)}.{self.rng.randrange(1, 999)}"

    def t22_twilio_sid(self) -> str:
        return self.pick(["AC", "MG", "PN"]) + self.s(32, HEX)

    def t22_mapbox_pk(self) -> str:
        head = (
            base64.urlsafe_b64encode(
                json.dumps({"u": "quillonhealth", "a": self.s(25, LOWNUM)}).encode()
            )
            .decode()
            .rstrip("=")
        )
        return f"pk.{head}.{self.s(22, URLSAFE)}"

    def t22_ai_conn(self) -> str:
        return (
            f"InstrumentationKey={self.t22_uuid()};IngestionEndpoint=https://norwayeast-0.in.applicationinsights.azure.com/;"
            f"LiveEndpoint=https://norwayeast.livediagnostics.monitor.azure.com/;ApplicationId={self.t22_uuid()}"
        )

    def t22_ae_title(self) -> str:
        return self.pick(
            [
                "QH_PACS01",
                "ORTHANC_BGO",
                "DCM4CHEE",
                "CT_SIEMENS_02",
                "MR_GE_01",
                "US_PHILIPS3",
                "QH_ROUTER",
            ]
        )

    def t22_mrn(self) -> str:
        return self.pick(["QH", "KQ", "HQ"]) + self.s(8, DIGITS)

    def t22_msg_id(self) -> str:
        return self.pick(["MSG", "QH", "ADT"]) + self.s(14, DIGITS)

    def t22_oid(self) -> str:
        return f"2.16.578.1.12.4.1.4.{self.rng.randrange(1000, 9999)}"

    def t22_fingerprint(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(32))

    def t22_build_id(self) -> str:
        return self.pick([self.s(40, HEX), self.s(8, HEX), str(self.rng.randrange(10000, 999999))])

    def t22_sid(self) -> str:
        return f"S-1-5-21-{self.rng.randrange(10**9, 4 * 10**9)}-{self.rng.randrange(10**9, 4 * 10**9)}-{self.rng.randrange(10**8, 10**9)}-{self.rng.randrange(1000, 99999)}"

    def t22_crc_bad(self) -> str:
        token = self._crc_token("ghp")
        return token[:-1] + ("Z" if token[-1] != "Z" else "Y")

    # ------------------------------------------------------------------ negatives: references
    def t22_ref_shell(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "$(cat /run/secrets/db_password)",
                '"$MIRTH_DB_PASS"',
                "${ORTHANC_PASSWORD:?must be set}",
                "$(az keyvault secret show --vault-name kv-qh-prod --name sql-admin --query value -o tsv)",
                "$(vault kv get -field=password kv/dw/sqlserver)",
            ]
        )

    def t22_ref_ado(self) -> str:
        return self.pick(
            [
                "$(SqlAdminPassword)",
                "$(MirthDbPassword)",
                "$(FhirClientSecret)",
                "$(System.AccessToken)",
                "$(ACR_PASSWORD)",
                "$(keycloakAdminPassword)",
            ]
        )

    def t22_ref_gitlab(self) -> str:
        return self.pick(
            [
                "$CI_REGISTRY_PASSWORD",
                "$CI_JOB_TOKEN",
                "${DEPLOY_TOKEN}",
                "$ORTHANC_ADMIN_PASSWORD",
                "$SONAR_TOKEN",
                "${KC_CLIENT_SECRET}",
            ]
        )

    def t22_ref_kv(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-qh-prod-weu.vault.azure.net/secrets/fhir-client-secret/)",
                "@Microsoft.KeyVault(VaultName=kv-qh-prod-weu;SecretName=sql-dw-password)",
                "@Microsoft.KeyVault(SecretUri=https://kv-qh-portal.vault.azure.net/secrets/django-secret-key/7c1d0a9e2f3b4c5d8e9f0a1b2c3d4e5f)",
                "@Microsoft.KeyVault(VaultName=kv-qh-integration;SecretName=mirth-db-password)",
            ]
        )

    def t22_ref_ansible(self) -> str:
        return self.pick(
            [
                "{{ vault_ldap_bind_password }}",
                "{{ vault_sql_sa_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/pacs:admin_password') }}",
                "{{ lookup('env', 'VCENTER_PASSWORD') }}",
                "{{ orthanc_admin_password }}",
            ]
        )

    def t22_ref_helm(self) -> str:
        return self.pick(
            [
                "{{ .Values.fhir.clientSecret }}",
                "{{ .Values.postgresql.auth.password | b64enc }}",
                '{{ required "mirth.dbPassword is required" .Values.mirth.dbPassword }}',
                "{{ .Values.global.keycloak.adminPassword | quote }}",
            ]
        )

    def t22_ref_tf(self) -> str:
        return self.pick(
            [
                "var.sql_admin_password",
                "random_password.sql_admin.result",
                "data.azurerm_key_vault_secret.vcenter.value",
                "azurerm_key_vault_secret.fhir_client.value",
                "local.keycloak_admin_password",
            ]
        )

    def t22_ref_csharp(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("FHIR_CLIENT_SECRET")',
                'builder.Configuration["Fhir:ClientSecret"]',
                'builder.Configuration.GetConnectionString("Ehr")',
                'builder.Configuration.GetConnectionString("Audit")',
                '(await secretClient.GetSecretAsync("mirth-db-password")).Value.Value',
            ]
        )

    def t22_ref_java(self) -> str:
        return self.pick(
            [
                'System.getenv("HL7_DB_PASSWORD")',
                'props.getProperty("db.password")',
                'config.getString("fhir.client.secret")',
                "${HAPI_DB_PASSWORD}",
                'secrets.get("pacs/ldap").getPassword()',
            ]
        )

    def t22_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["LIS_DB_PASSWORD"]',
                'os.getenv("ORTHANC_PASSWORD")',
                "settings.FHIR_CLIENT_SECRET",
                'env("DJANGO_SECRET_KEY")',
                'keyring.get_password("qh-lis", "lis_bridge")',
                'Variable.get("dw_sql_password")',
            ]
        )

    def t22_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.REACT_APP_FHIR_CLIENT_SECRET",
                "import.meta.env.VITE_PORTAL_API_KEY",
                "environment.portalApiKey",
                "process.env.SMTP_PASSWORD ?? ''",
                "window.__QH_CONFIG__.apiKey",
            ]
        )

    def t22_ref_dart(self) -> str:
        return self.pick(
            [
                "const String.fromEnvironment('PORTAL_API_KEY')",
                "dotenv.env['PORTAL_API_KEY'] ?? ''",
                "dotenv.get('VIDEO_VISIT_API_KEY')",
                "const String.fromEnvironment('VIDEO_VISIT_API_KEY')",
            ]
        )

    def t22_ref_kotlin(self) -> str:
        return self.pick(
            [
                "BuildConfig.LIS_API_KEY",
                'System.getenv("LIS_API_KEY") ?: ""',
                "SecretStore.lisApiKey(context)",
                'requireNotNull(System.getProperty("lis.apiKey"))',
            ]
        )

    def t22_ref_env(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${MIRTH_DB_PASSWORD}",
                "${KEYSTORE_PASSWORD}",
                "${ORTHANC_ADMIN_PASSWORD}",
                "${SECRET_FROM_KEYVAULT}",
                "${TLS_PFX_PASSWORD}",
            ]
        )

    def t22_ref_r(self) -> str:
        return self.pick(
            [
                'Sys.getenv("DW_SQL_PASSWORD")',
                'keyring::key_get("qh-dw", "dw_etl")',
                'config::get("dw")$password',
                'rstudioapi::askForPassword("DW password")',
            ]
        )

    def t22_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:VCENTER_PASSWORD",
                "(Get-Secret -Name VCenterAdmin -AsPlainText)",
                "(Read-Host -AsSecureString 'Passord')",
                "$cred.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-qh-prod-weu -Name ad-join -AsPlainText)",
            ]
        )

    def t22_ref_spring(self) -> str:
        return self.pick(
            [
                "${HAPI_DB_PASSWORD}",
                "${vault.mirth.db-password}",
                "${FHIR_CLIENT_SECRET:}",
                "#{environment.LDAP_BIND_PASSWORD}",
            ]
        )

    def t22_ref_mirth(self) -> str:
        return self.pick(
            [
                "${ehrDbPassword}",
                "${configurationMap.get('lisSftpPassword')}",
                "$cfg('ehr.db.password')",
                "${MIRTH_EHR_DB_PASSWORD}",
            ]
        )

    def t22_ref_ruby(self) -> str:
        return self.pick(
            [
                'ENV["MATCH_PASSWORD"]',
                'ENV.fetch("ASC_KEY_CONTENT")',
                'ENV["FASTLANE_SESSION"]',
                'ENV["APPLE_APP_SPECIFIC_PASSWORD"]',
            ]
        )

    def t22_ref_xcode(self) -> str:
        return self.pick(
            ["$(PORTAL_API_KEY)", "${FHIR_CLIENT_SECRET}", "$(QH_PUSH_KEY)", "$(SENTRY_AUTH_TOKEN)"]
        )

    # ------------------------------------------------------------------ negatives: placeholders, text
    def t22_placeholder(self) -> str:
        return self.pick(
            [
                "<password>",
                "<passord>",
                "<Passwort>",
                "<contraseña>",
                "CHANGE_ME",
                "changeme",
                "********",
                "xxxxxxxxxxxx",
                "REPLACE_WITH_KEYVAULT_VALUE",
                "<set in Key Vault>",
                "TODO",
                "your-secret-here",
                "<client-secret>",
            ]
        )

    def t22_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "***",
                "<redigert>",
                "[entfernt]",
                "[REDACTADO]",
                "••••••••",
                "*****",
                "[fjernet]",
                "<removed>",
            ]
        )

    def t22_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-secret",
                "dummy-secret-do-not-use",
                "test-only-" + self.s(6, LOWNUM) + "-fake",
                "FAKE_TOKEN_" + self.s(10, UPNUM),
                "unit-test-dummy",
                "fake-" + self.s(12, LOWNUM),
            ]
        )

    def t22_role_word(self) -> str:
        return self.pick(["password", "passord", "passwort", "secret", "pass", "contraseña", "pwd"])

    def t22_i18n(self) -> str:
        return self.pick(
            [
                "Feil brukernavn eller passord",
                "Passordet må ha minst 12 tegn",
                "Glemt passord?",
                "Das Passwort ist abgelaufen",
                "Passwort vergessen?",
                "Bitte geben Sie Ihr Kennwort ein",
                "La contraseña no es válida",
                "¿Olvidó su contraseña?",
                "La contraseña debe tener al menos 12 caracteres",
                "Your password has expired",
                "Enter your BankID password",
                "Skriv inn engangskoden fra SMS",
            ]
        )

    def t22_example_pw(self) -> str:
        # Credentials only on documentation hosts (example.com, .test, .invalid) or in docs.
        return self.pick(self.words) + self.s(2, DIGITS)

    def t22_doc_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            ]
        )

    def t22_azurite_key(self) -> str:
        # The documented Azurite / storage emulator account key (public, development only).
        return self.pick(
            [
                "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
            ]
        )

    def t22_small_int(self) -> str:
        return self.pick(["8", "12", "14", "16", "90", "365"])

    def t22_key_name(self) -> str:
        return self.pick(
            [
                "password",
                "db-password",
                "client-secret",
                "MIRTH_DB_PASSWORD",
                "adminPassword",
                "bind-credential",
            ]
        )

    def t22_secret_name(self) -> str:
        return self.pick(
            [
                "mirth-db",
                "orthanc-credentials",
                "fhir-client",
                "keycloak-admin",
                "dw-sql",
                "regcred",
            ]
        )


VALUES = Tune22Values


def T(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    """One template; the text is written flush left and starts right after the opening quotes."""
    return (path, text, kind, positive)


TEMPLATES: list[evalset.Template] = []

# ====================================================================== EHR integration
TEMPLATES += [
    T(
        "ehr-integration/mirth/appdata/mirth.properties",
        "t22_mirth_storepass",
        True,
        r"""# Mirth Connect Server configuration (generated on first start, then edited by hand)
# host: mirth-prod.qh.internal  -- DO NOT copy this file between environments

# directories
dir.appdata = appdata
dir.tempdata = ${dir.appdata}/temp

# ports
http.port = 8080
https.port = 8443

# password requirements
password.minlength = 12
password.minupper = 1
password.minlower = 1
password.minnumeric = 1
password.minspecial = 0
password.retrylimit = 5
password.lockoutperiod = 30
password.expiration = 90
password.graceperiod = 0
password.reuseperiod = 0
password.reuselimit = 0

# keystore
keystore.path = ${dir.appdata}/keystore.jks
keystore.storepass = {V}
keystore.keypass = {V2}
keystore.type = JCEKS

# server
http.contextpath = /
server.url =

http.host = 0.0.0.0
https.host = 0.0.0.0

https.client.protocols = TLSv1.3,TLSv1.2
https.server.protocols = TLSv1.3,TLSv1.2,SSLv2Hello
https.ciphersuites = TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
https.ephemeraldhkeysize = 2048

# CORS headers
server.api.accesscontrolalloworigin = *
server.api.accesscontrolallowcredentials = false

# Determines whether or not channels are deployed on server startup.
server.startupdeploy = true

# database
database = postgres
database.url = jdbc:postgresql://pg-mirth01.qh.internal:5432/mirthdb
database.max-connections = 20
database.username = mirth
database.password = ${MIRTH_DB_PASSWORD}
""",
    ),
    T(
        "ehr-integration/mirth/docker-compose.yml",
        "t22_pw",
        True,
        r"""version: "3.9"

# Mirth Connect 4.4 for the Haukeland-style ADT feed (site BGO). Postgres runs on the same VM
# until the DBA team moves it to pg-mirth01. Ticket: INT-2231

services:
  mc:
    image: nextgenhealthcare/connect:4.4.2
    container_name: mirth-bgo
    restart: unless-stopped
    environment:
      - DATABASE=postgres
      - DATABASE_URL=jdbc:postgresql://db:5432/mirthdb
      - DATABASE_MAX_CONNECTIONS=20
      - DATABASE_USERNAME=mirthdb
      - DATABASE_PASSWORD={V}
      - DATABASE_MAX_RETRY=2
      - DATABASE_RETRY_WAIT=10000
      - KEYSTORE_STOREPASS=${KEYSTORE_STOREPASS}
      - KEYSTORE_KEYPASS=${KEYSTORE_KEYPASS}
      - VMOPTIONS=-Xmx2048m
    ports:
      - "8443:8443"
      - "6661:6661"   # MLLP ADT in
      - "6662:6662"   # MLLP ORU in (lab)
    volumes:
      - ./appdata:/opt/connect/appdata
      - ./custom-lib:/opt/connect/custom-lib
    depends_on:
      - db

  db:
    image: postgres:15-alpine
    environment:
      POSTGRES_USER: mirthdb
      POSTGRES_PASSWORD: {V}
      POSTGRES_DB: mirthdb
    volumes:
      - pgdata:/var/lib/postgresql/data

volumes:
  pgdata:
""",
    ),
    T(
        "ehr-integration/mirth/docker-compose.override.example.yml",
        "t22_ref_env",
        False,
        r"""# Copy to docker-compose.override.yml and export the variables from Key Vault first:
#   source ../../scripts/kv-env.sh mirth-bgo
# Never write real values into this file; it is committed.

services:
  mc:
    environment:
      - DATABASE_PASSWORD={V}
      - KEYSTORE_STOREPASS={V2}
      - KEYSTORE_KEYPASS={V3}
  db:
    environment:
      POSTGRES_PASSWORD: {V}
""",
    ),
    T(
        "ehr-integration/mirth/channels/ADT_A01_A08_to_EHR_DB.xml",
        "t22_sql_pw",
        True,
        r"""<channel version="4.4.2">
  <id>5b0c2f6e-9a61-4f0e-8e53-2f4c7d7b1a90</id>
  <nextMetaDataId>3</nextMetaDataId>
  <name>ADT_A01_A08_to_EHR_DB</name>
  <description>Inbound ADT (A01/A04/A08/A11) from the PAS, writes encounter rows into the EHR staging DB.
Owner: integration team (Oslo). On-call runbook: docs/runbooks/mirth-adt.md</description>
  <revision>47</revision>
  <sourceConnector version="4.4.2">
    <metaDataId>0</metaDataId>
    <name>sourceConnector</name>
    <properties class="com.mirth.connect.connectors.tcp.TcpReceiverProperties" version="4.4.2">
      <listenerConnectorProperties version="4.4.2">
        <host>0.0.0.0</host>
        <port>6661</port>
      </listenerConnectorProperties>
      <transmissionModeProperties class="com.mirth.connect.plugins.mllpmode.MLLPModeProperties">
        <startOfMessageBytes>0B</startOfMessageBytes>
        <endOfMessageBytes>1C0D</endOfMessageBytes>
      </transmissionModeProperties>
      <charsetEncoding>ISO-8859-1</charsetEncoding>
    </properties>
    <transformer version="4.4.2">
      <inboundDataType>HL7V2</inboundDataType>
      <outboundDataType>HL7V2</outboundDataType>
    </transformer>
  </sourceConnector>
  <destinationConnectors>
    <connector version="4.4.2">
      <metaDataId>1</metaDataId>
      <name>EHR staging (SQL Server)</name>
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties" version="4.4.2">
        <driver>net.sourceforge.jtds.jdbc.Driver</driver>
        <url>jdbc:jtds:sqlserver://sql-ehr02.qh.internal:1433/EhrStaging;domain=QUILLON</url>
        <username>hl7_engine</username>
        <password>{V}</password>
        <query>INSERT INTO stg.Encounter (MsgControlId, Mrn, EventType, AdmitDate, Ward)
VALUES (${msgControlId}, ${mrn}, ${eventType}, ${admitDate}, ${ward})</query>
        <useScript>false</useScript>
      </properties>
    </connector>
    <connector version="4.4.2">
      <metaDataId>2</metaDataId>
      <name>Audit copy</name>
      <properties class="com.mirth.connect.connectors.js.JavaScriptDispatcherProperties" version="4.4.2">
        <script>var dbConn = DatabaseConnectionFactory.createDatabaseConnection(
  'net.sourceforge.jtds.jdbc.Driver',
  'jdbc:jtds:sqlserver://sql-ehr02.qh.internal:1433/IntegrationAudit',
  'hl7_audit', '{V2}');
try {
  dbConn.executeUpdate("INSERT INTO audit.Message (ChannelId, ControlId) VALUES ('" + channelId + "', '" + $('msgControlId') + "')");
} finally {
  dbConn.close();
}</script>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
    ),
    T(
        "ehr-integration/mirth/channels/ORU_R01_Lab_to_EHR.xml",
        "t22_ref_mirth",
        False,
        r"""<channel version="4.4.2">
  <id>c1a7f6d2-3b44-4c55-9e1d-0e2f3a4b5c6d</id>
  <name>ORU_R01_Lab_to_EHR</name>
  <description>Lab results from the LIS (ORU^R01) into the EHR. Credentials live in the configuration
map (Settings - Configuration Map), which is exported separately and never committed.</description>
  <revision>12</revision>
  <destinationConnectors>
    <connector version="4.4.2">
      <metaDataId>1</metaDataId>
      <name>EHR results DB</name>
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties" version="4.4.2">
        <driver>org.postgresql.Driver</driver>
        <url>jdbc:postgresql://pg-ehr01.qh.internal:5432/results</url>
        <username>${ehrDbUser}</username>
        <password>{V}</password>
        <query>INSERT INTO lab_result (placer_order, loinc, value, unit, flag) VALUES (?, ?, ?, ?, ?)</query>
      </properties>
    </connector>
    <connector version="4.4.2">
      <metaDataId>2</metaDataId>
      <name>Archive to SFTP</name>
      <properties class="com.mirth.connect.connectors.file.FileDispatcherProperties" version="4.4.2">
        <scheme>SFTP</scheme>
        <host>sftp-archive.qh.internal/hl7/oru</host>
        <username>lis_archive</username>
        <password>{V2}</password>
        <outputPattern>${message.messageId}.hl7</outputPattern>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
    ),
    T(
        "ehr-integration/mirth/config/configurationMap.properties",
        "t22_pw",
        True,
        r"""#Mirth Connect configuration map - exported 2024-03-14 by t.berg
#Keep this out of the channel exports. (It ended up here anyway, see INT-2409.)
ehrDbUser=hl7_engine
ehrDbPassword={V}
lisSftpUser=lis_archive
lisSftpPassword={V2}
pacsWorklistUrl=https\://pacs01.qh.internal/dcm4chee-arc/aets/QH_PACS01/rs
pacsWorklistUser=mwl_feed
pacsWorklistPassword={V3}
alertEmail=integrasjon@quillonhealth.no
smtpHost=smtp.qh.internal
""",
    ),
    T(
        "ehr-integration/fhir-server/src/main/resources/application.yaml",
        "t22_pw",
        True,
        r"""spring:
  main:
    allow-circular-references: true
  flyway:
    enabled: false
  datasource:
    url: jdbc:postgresql://pg-fhir01.qh.internal:5432/hapi_r4
    username: hapi
    password: {V}
    driverClassName: org.postgresql.Driver
    hikari:
      maximum-pool-size: 30
  jpa:
    properties:
      hibernate.dialect: ca.uhn.fhir.jpa.model.dialect.HapiFhirPostgresDialect
      hibernate.search.enabled: false

hapi:
  fhir:
    fhir_version: R4
    server_address: https://fhir.quillonhealth.no/fhir/
    allow_external_references: true
    enforce_referential_integrity_on_write: false
    subscription:
      resthook_enabled: true
    narrative_enabled: false
    tester:
      home:
        name: Quillon FHIR (prod)
        server_address: https://fhir.quillonhealth.no/fhir
        refuse_to_fetch_third_party_urls: true

management:
  endpoints:
    web:
      exposure:
        include: "health,prometheus"

qh:
  audit:
    kafka:
      bootstrap: kafka01.qh.internal:9093
      sasl-username: fhir-audit
      sasl-password: {V2}
""",
    ),
    T(
        "ehr-integration/fhir-server/src/main/resources/application-k8s.yaml",
        "t22_ref_spring",
        False,
        r"""# Profile used in AKS; every secret comes from the CSI Key Vault mount as env.
spring:
  datasource:
    url: jdbc:postgresql://${HAPI_DB_HOST}:5432/hapi_r4?sslmode=require
    username: ${HAPI_DB_USER}
    password: {V}

qh:
  audit:
    kafka:
      bootstrap: ${KAFKA_BOOTSTRAP}
      sasl-username: fhir-audit
      sasl-password: {V2}
  smart:
    client-id: qh-fhir-backend
    client-secret: {V3}
""",
    ),
    T(
        "ehr-integration/smart-backend-client/src/main/resources/keys/smart-backend-prod.pem",
        "t22_pkcs8_pem",
        True,
        r"""{V}
""",
    ),
    T(
        "ehr-integration/smart-backend-client/src/main/java/no/quillon/smart/BackendAuth.java",
        "t22_p8_key",
        True,
        r'''package no.quillon.smart;

import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;

import java.security.KeyFactory;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Instant;
import java.util.Base64;
import java.util.Date;
import java.util.UUID;

/**
 * SMART Backend Services (system/*.read) client assertion for the regional HIE.
 * TODO(INT-1980): load the key from Key Vault instead of this constant before go-live.
 */
public final class BackendAuth {

    private static final String CLIENT_ID = "qh-bulk-export";
    private static final String TOKEN_URL = "https://hie.helse-vest.example/auth/token";

    // ES256 key registered with the HIE on 2024-02-07 (kid qh-bulk-2024)
    private static final String PRIVATE_KEY_PEM = """
{V}
""";

    private BackendAuth() {}

    static ECPrivateKey loadKey() throws Exception {
        String body = PRIVATE_KEY_PEM
                .replace("-----BEGIN PRIVATE KEY-----", "")
                .replace("-----END PRIVATE KEY-----", "")
                .replaceAll("\\s", "");
        byte[] der = Base64.getDecoder().decode(body);
        return (ECPrivateKey) KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(der));
    }

    public static String clientAssertion() throws Exception {
        Instant now = Instant.now();
        JWTClaimsSet claims = new JWTClaimsSet.Builder()
                .issuer(CLIENT_ID)
                .subject(CLIENT_ID)
                .audience(TOKEN_URL)
                .jwtID(UUID.randomUUID().toString())
                .expirationTime(Date.from(now.plusSeconds(300)))
                .build();
        SignedJWT jwt = new SignedJWT(new JWSHeader.Builder(JWSAlgorithm.ES256).keyID("qh-bulk-2024").build(), claims);
        jwt.sign(new ECDSASigner(loadKey()));
        return jwt.serialize();
    }
}
''',
    ),
    T(
        "ehr-integration/smart-backend-client/jwks/qh-bulk-export.jwks.json",
        "t22_jwk_n",
        False,
        r"""{
  "keys": [
    {
      "kty": "RSA",
      "use": "sig",
      "alg": "RS384",
      "kid": "qh-bulk-2023",
      "e": "AQAB",
      "n": "{V}"
    },
    {
      "kty": "RSA",
      "use": "sig",
      "alg": "RS384",
      "kid": "qh-bulk-2024",
      "e": "AQAB",
      "n": "{V2}"
    }
  ]
}
""",
    ),
    T(
        "ehr-integration/Quillon.Fhir.Gateway/appsettings.Production.json",
        "t22_pw",
        True,
        r"""{
  "Logging": {
    "LogLevel": {
      "Default": "Information",
      "Microsoft.AspNetCore": "Warning",
      "Hl7.Fhir": "Warning"
    }
  },
  "AllowedHosts": "*",
  "ConnectionStrings": {
    "Ehr": "Server=tcp:sql-ehr02.qh.internal,1433;Database=EhrCore;User ID=fhir_gw;Password={V};Encrypt=True;TrustServerCertificate=True",
    "Audit": "Server=tcp:sql-ehr02.qh.internal,1433;Database=IntegrationAudit;User ID=fhir_gw_audit;Password={V2};Encrypt=True"
  },
  "Fhir": {
    "BaseUrl": "https://fhir.quillonhealth.no/fhir",
    "Authority": "https://sso.quillonhealth.no/realms/clinical",
    "Audience": "fhir-gateway",
    "RequireHttpsMetadata": true
  },
  "Redis": {
    "Configuration": "redis-fhir.qh.internal:6380,ssl=true,abortConnect=false"
  },
  "ApplicationInsights": {
    "ConnectionString": "InstrumentationKey=00000000-0000-0000-0000-000000000000"
  }
}
""",
    ),
    T(
        "ehr-integration/Quillon.Fhir.Gateway/appsettings.Development.json",
        "t22_placeholder",
        False,
        r"""{
  "Logging": {
    "LogLevel": {
      "Default": "Debug"
    }
  },
  "ConnectionStrings": {
    "Ehr": "Server=localhost,1433;Database=EhrCore;User ID=sa;Password={V};TrustServerCertificate=True",
    "Audit": "Server=localhost,1433;Database=IntegrationAudit;User ID=sa;Password={V};TrustServerCertificate=True"
  },
  "Fhir": {
    "BaseUrl": "https://localhost:5001/fhir",
    "Authority": "https://sso-test.quillonhealth.no/realms/clinical",
    "ClientId": "fhir-gateway-dev",
    "ClientSecret": "{V2}"
  },
  "Redis": {
    "Configuration": "localhost:6379"
  }
}
""",
    ),
    T(
        "ehr-integration/Quillon.Fhir.Gateway/Auth/FhirClientFactory.cs",
        "t22_client_secret",
        True,
        r"""using System.Net.Http.Headers;
using Hl7.Fhir.Rest;
using IdentityModel.Client;
using Microsoft.Extensions.Options;

namespace Quillon.Fhir.Gateway.Auth;

public sealed class FhirClientFactory
{
    private readonly HttpClient _http;
    private readonly FhirOptions _options;

    // Temporary while Key Vault access for the new AKS node pool is pending (INT-2150).
    // private const string FallbackClientSecret = "{V}";
    private const string ClientId = "fhir-gateway";

    public FhirClientFactory(HttpClient http, IOptions<FhirOptions> options)
    {
        _http = http;
        _options = options.Value;
    }

    public async Task<FhirClient> CreateAsync(CancellationToken ct = default)
    {
        var token = await _http.RequestClientCredentialsTokenAsync(new ClientCredentialsTokenRequest
        {
            Address = $"{_options.Authority}/protocol/openid-connect/token",
            ClientId = ClientId,
            ClientSecret = _options.ClientSecret ?? "{V2}",
            Scope = "system/Patient.read system/Encounter.read"
        }, ct);

        if (token.IsError)
        {
            throw new InvalidOperationException($"Token request failed: {token.Error}");
        }

        var settings = new FhirClientSettings
        {
            PreferredFormat = ResourceFormat.Json,
            VerifyFhirVersion = false,
        };
        var client = new FhirClient(_options.BaseUrl, _http, settings);
        client.RequestHeaders!.Authorization = new AuthenticationHeaderValue("Bearer", token.AccessToken);
        return client;
    }
}
""",
    ),
    T(
        "ehr-integration/Quillon.Fhir.Gateway.Tests/Hl7/MllpListenerTests.cs",
        "t22_fake",
        False,
        r"""using System.Net.Sockets;
using System.Text;
using FluentAssertions;
using Quillon.Fhir.Gateway.Hl7;
using Xunit;

namespace Quillon.Fhir.Gateway.Tests.Hl7;

public class MllpListenerTests
{
    private const string SampleAdt =
        "MSH|^~\\&|PAS|BGO|QHFHIR|QH|20240312101500||ADT^A01|MSG0001|P|2.5.1\r" +
        "PID|1||QH00012345^^^QH^MR||Nordmann^Kari||19800101|F\r" +
        "PV1|1|I|KIR2^201^1";

    [Fact]
    public async Task Acknowledges_adt_with_AA()
    {
        var options = new MllpOptions
        {
            Port = 0,
            // The listener refuses to start without a DB password; this one is never used.
            AuditDbPassword = "{V}",
            TlsCertificatePassword = "{V2}",
        };
        await using var listener = new MllpListener(options, new InMemoryAuditSink());
        await listener.StartAsync();

        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", listener.BoundPort);
        var stream = client.GetStream();
        var frame = Encoding.ASCII.GetBytes("\x0b" + SampleAdt + "\x1c\r");
        await stream.WriteAsync(frame);

        var buffer = new byte[1024];
        var read = await stream.ReadAsync(buffer);
        Encoding.ASCII.GetString(buffer, 0, read).Should().Contain("MSA|AA|MSG0001");
    }
}
""",
    ),
    T(
        "ehr-integration/hl7-sender/conf/hl7-sender.properties",
        "t22_keystore_pw",
        True,
        r"""# HL7 MLLP-over-TLS sender to the regional lab (Fürst style endpoint)
hl7.remote.host=mllp.lab-partner.qh.internal
hl7.remote.port=2575
hl7.remote.tls=true
hl7.charset=ISO-8859-1
hl7.ack.timeout.ms=30000

# client certificate issued by Quillon Health Issuing CA 02
tls.keystore.path=/opt/hl7-sender/conf/hl7-sender.p12
tls.keystore.type=PKCS12
tls.keystore.password={V}
tls.key.password={V}
tls.truststore.path=/opt/hl7-sender/conf/truststore.jks
tls.truststore.password={V2}

retry.max=5
retry.backoff.ms=2000
""",
    ),
    T(
        "ehr-integration/engine/routes/lab-results.yaml",
        "t22_url_pw",
        True,
        r"""# Interface engine route definitions (qh-engine 3.x). One file per domain.
routes:
  - id: lab-oru-inbound
    description: ORU^R01 from Synlab (Spain sites) via SFTP pickup
    source:
      type: sftp
      uri: sftp://synlab_qh:{V}@sftp.partner-synlab.es:22/outbound/oru?delete=true&delay=60000
      charset: UTF-8
    transform:
      - hl7v2-normalize
      - map-local-codes: maps/synlab-es-to-loinc.csv
    destinations:
      - type: mllp
        host: mirth-prod.qh.internal
        port: 6662

  - id: lab-oru-de
    description: ORU from the Klinikum lab (Germany)
    source:
      type: ftps
      uri: ftps://klinikum_lab:{V2}@ftp.klinikum-quillon.de:990/hl7/out?passiveMode=true
    destinations:
      - type: mllp
        host: mirth-prod.qh.internal
        port: 6662

  - id: micro-results
    description: Microbiology PDFs to document archive
    source:
      type: file
      path: /data/inbound/micro
    destinations:
      - type: http
        url: https://dms.qh.internal/api/v2/documents
        auth: oauth2-client-credentials
""",
    ),
    T(
        "ehr-integration/engine/docs/route-examples.md",
        "t22_example_pw",
        False,
        r"""# Writing routes

A route reads from one `source` and sends to one or more `destinations`. Source URIs follow
the Camel style; credentials may be inlined for local testing only, and the examples below use
documentation hosts:

```yaml
source:
  type: sftp
  uri: sftp://demo:{V}@sftp.example.com:22/outbound?delete=true
```

```yaml
source:
  type: ftps
  uri: ftps://tester:{V2}@ftp.example.org:990/in
```

In real routes, reference a secret from the engine's credential store instead:

```yaml
source:
  type: sftp
  uri: sftp://synlab_qh@sftp.partner-synlab.es:22/outbound/oru
  credentialRef: kv://kv-qh-integration/synlab-sftp
```
""",
    ),
    T(
        "ehr-integration/postman/QH-FHIR-prod.postman_environment.json",
        "t22_client_secret",
        True,
        r"""{
  "id": "2f9b3c1e-7a8d-4e6f-b5c4-3d2e1f0a9b8c",
  "name": "QH FHIR - prod (read only)",
  "values": [
    {
      "key": "baseUrl",
      "value": "https://fhir.quillonhealth.no/fhir",
      "type": "default",
      "enabled": true
    },
    {
      "key": "tokenUrl",
      "value": "https://sso.quillonhealth.no/realms/clinical/protocol/openid-connect/token",
      "type": "default",
      "enabled": true
    },
    {
      "key": "clientId",
      "value": "postman-integration",
      "type": "default",
      "enabled": true
    },
    {
      "key": "clientSecret",
      "value": "{V}",
      "type": "secret",
      "enabled": true
    },
    {
      "key": "patientId",
      "value": "QH00012345",
      "type": "default",
      "enabled": true
    }
  ],
  "_postman_variable_scope": "environment",
  "_postman_exported_at": "2024-04-02T08:13:55.412Z",
  "_postman_exported_using": "Postman/10.24.9"
}
""",
    ),
    T(
        "ehr-integration/dips-adapter/.env",
        "t22_api_key",
        True,
        r"""# DIPS Arena adapter (Norwegian sites) - local .env, loaded by docker compose
DIPS_BASE_URL=https://dips-api.bgo.qh.internal/arena/api/v1
DIPS_TENANT=QH-BGO
DIPS_API_KEY={V}
DIPS_SUBSCRIPTION_KEY={V2}
DIPS_TIMEOUT_SECONDS=30

FHIR_BASE_URL=https://fhir.quillonhealth.no/fhir
FHIR_CLIENT_ID=dips-adapter
FHIR_CLIENT_SECRET_FILE=/run/secrets/fhir_client_secret

LOG_LEVEL=info
""",
    ),
    T(
        "ehr-integration/fhir-server/src/main/java/no/quillon/fhir/config/AuditKafkaConfig.java",
        "t22_ref_java",
        False,
        r"""package no.quillon.fhir.config;

import java.util.HashMap;
import java.util.Map;

import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.ProducerFactory;

@Configuration
public class AuditKafkaConfig {

    @Bean
    public ProducerFactory<String, String> auditProducerFactory() {
        String password = {V};
        Map<String, Object> props = new HashMap<>();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, "kafka01.qh.internal:9093");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        props.put("security.protocol", "SASL_SSL");
        props.put("sasl.mechanism", "SCRAM-SHA-512");
        props.put("sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"fhir-audit\" password=\""
                        + password + "\";");
        return new DefaultKafkaProducerFactory<>(props);
    }
}
""",
    ),
    T(
        "ehr-integration/legacy/Quillon.Hl7Service/Web.config",
        "t22_dpapi",
        False,
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <configSections>
    <section name="hl7Service" type="Quillon.Hl7Service.Hl7ServiceSection, Quillon.Hl7Service" />
  </configSections>
  <!-- Protected with: aspnet_regiis -pef "connectionStrings" . -prov DataProtectionConfigurationProvider -->
  <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
    <EncryptedData>
      <CipherData>
        <CipherValue>{V}</CipherValue>
      </CipherData>
    </EncryptedData>
  </connectionStrings>
  <appSettings>
    <add key="MllpPort" value="2575" />
    <add key="AckMode" value="Original" />
    <add key="ArchivePath" value="D:\Hl7Archive" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <httpRuntime targetFramework="4.8" />
  </system.web>
</configuration>
""",
    ),
    T(
        "ehr-integration/legacy/Quillon.Hl7Service/App.config",
        "t22_sql_pw",
        True,
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <startup>
    <supportedRuntime version="v4.0" sku=".NETFramework,Version=v4.8" />
  </startup>
  <connectionStrings>
    <add name="EhrStaging"
         connectionString="Data Source=SQL-EHR02\EHR;Initial Catalog=EhrStaging;User ID=hl7_engine;Password={V};MultipleActiveResultSets=True"
         providerName="System.Data.SqlClient" />
    <!-- old box, decommissioned 2023, keep for rollback -->
    <!-- <add name="EhrStagingOld" connectionString="Data Source=SQL-EHR01;Initial Catalog=EhrStaging;User ID=sa;Password={V2}" providerName="System.Data.SqlClient" /> -->
  </connectionStrings>
  <appSettings>
    <add key="MllpPort" value="2575" />
    <add key="SmtpHost" value="smtp.qh.internal" />
  </appSettings>
</configuration>
""",
    ),
    T(
        "ehr-integration/samples/hl7/ADT_A01_sample.hl7",
        "t22_mrn",
        False,
        r"""MSH|^~\&|PAS|BGO|QHFHIR|QH|20240312101500||ADT^A01^ADT_A01|MSG20240312101500|P|2.5.1|||AL|NE|NOR|UNICODE UTF-8
EVN|A01|20240312101500|||kberg^Berg^Kari
PID|1||{V}^^^QH^MR~01018012345^^^NOR^NNFNR||Testesen^Test^^^^^L||19800101|M|||Testveien 1^^Bergen^^5003^NOR||^^PH^^^^55512345|||||||||||||||||N
PV1|1|I|KIR2^201^1^BGO||||12345^Lege^Lise|||KIR||||1|||12345^Lege^Lise|IP|{V2}|||||||||||||||||||||||||20240312100000
PV2|||^Appendisitt
OBX|1|NM|8302-2^Body height^LN||178|cm|||||F
AL1|1|DA|^Penicillin||Utslett
""",
    ),
    T(
        "ehr-integration/mirth/channels/Referral_Out_HTTP.xml",
        "t22_basic",
        True,
        r"""<channel version="4.4.2">
  <id>9e8d7c6b-5a4f-4e3d-a2c1-b0a9f8e7d6c5</id>
  <name>Referral_Out_HTTP</name>
  <description>Outbound referrals (REF^I12) to the private radiology partner as FHIR ServiceRequest.</description>
  <destinationConnectors>
    <connector version="4.4.2">
      <metaDataId>1</metaDataId>
      <name>Partner REST</name>
      <properties class="com.mirth.connect.connectors.http.HttpDispatcherProperties" version="4.4.2">
        <host>https://api.unilabs-radiology.qh-partner.no/fhir/ServiceRequest</host>
        <method>post</method>
        <headers class="linked-hash-map">
          <entry>
            <string>Authorization</string>
            <list>
              <string>Basic {V}</string>
            </list>
          </entry>
          <entry>
            <string>Content-Type</string>
            <list>
              <string>application/fhir+json</string>
            </list>
          </entry>
        </headers>
        <useAuthentication>false</useAuthentication>
        <socketTimeout>30000</socketTimeout>
        <content>${serviceRequestJson}</content>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
    ),
    T(
        "ehr-integration/mirth/code-templates/http-helpers.js",
        "t22_ref_mirth",
        False,
        r"""// Code template library "QH HTTP helpers" (shared by all outbound REST channels)

function qhBasicAuthHeader(user, configKey) {
    // Looks the password up in the configuration map; never inline it here.
    var password = {V};
    var token = new java.lang.String(user + ':' + password).getBytes('UTF-8');
    return 'Basic ' + java.util.Base64.getEncoder().encodeToString(token);
}

function qhPostJson(url, body, authHeader) {
    var client = org.apache.http.impl.client.HttpClients.createDefault();
    var post = new org.apache.http.client.methods.HttpPost(url);
    post.setHeader('Content-Type', 'application/fhir+json');
    post.setHeader('Authorization', authHeader);
    post.setEntity(new org.apache.http.entity.StringEntity(body, 'UTF-8'));
    var response = client.execute(post);
    try {
        return response.getStatusLine().getStatusCode();
    } finally {
        response.close();
        client.close();
    }
}
""",
    ),
    T(
        "ehr-integration/Quillon.Fhir.Gateway.IntegrationTests/staging.http",
        "t22_jwt",
        True,
        r"""### Quillon FHIR gateway - staging smoke tests (VS Code REST Client / Rider HTTP client)
@host = https://fhir-staging.quillonhealth.no/fhir
# token copied from the Keycloak admin console, valid until it is not
@token = {V}

### capability statement
GET {{host}}/metadata
Accept: application/fhir+json

### one patient
GET {{host}}/Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1%7CQH00012345
Authorization: Bearer {{token}}
Accept: application/fhir+json

### encounters since yesterday
GET {{host}}/Encounter?date=ge2024-03-11&_count=50
Authorization: Bearer {{token}}

### observation write (should 403 for this client)
POST {{host}}/Observation
Authorization: Bearer {V2}
Content-Type: application/fhir+json

{ "resourceType": "Observation", "status": "final", "code": { "coding": [ { "system": "http://loinc.org", "code": "8302-2" } ] } }
""",
    ),
    T(
        "ehr-integration/mirth/channels/Alerts_to_Teams.xml",
        "t22_teams_webhook",
        True,
        r"""<channel version="4.4.2">
  <id>0d1e2f3a-4b5c-4d6e-8f70-1a2b3c4d5e6f</id>
  <name>Alerts_to_Teams</name>
  <description>Posts channel errors to the "Integrasjon - drift" Teams channel.</description>
  <destinationConnectors>
    <connector version="4.4.2">
      <metaDataId>1</metaDataId>
      <name>Teams webhook</name>
      <properties class="com.mirth.connect.connectors.http.HttpDispatcherProperties" version="4.4.2">
        <host>{V}</host>
        <method>post</method>
        <contentType>application/json</contentType>
        <content>{"@type":"MessageCard","summary":"Mirth error","title":"${channelName}: ${error}","themeColor":"C0392B"}</content>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
    ),
    T(
        "ehr-integration/engine/interfaces/ihe-xds.ini",
        "t22_ref_shell",
        False,
        r"""; IHE XDS.b document source settings for the regional repository (Kjernejournal-style pilot)
[repository]
endpoint = https://xds.helsenorge-pilot.qh-partner.no/xds/repository
home_community_id = urn:oid:2.16.578.1.12.4.1.7.9999
source_id = 2.16.578.1.12.4.1.4.4242

[tls]
client_cert = /etc/qh-engine/tls/xds-client.crt
client_key = /etc/qh-engine/tls/xds-client.key
client_key_password = {V}

[audit]
atna_host = atna.qh.internal
atna_port = 6514
""",
    ),
]

# ====================================================================== patient portal
TEMPLATES += [
    T(
        "patient-portal/backend/quillon_portal/settings/production.py",
        "t22_django_key",
        True,
        r'''"""Production settings for the Quillon patient portal (minhelse.quillonhealth.no)."""

from .base import *  # noqa: F401,F403

DEBUG = False
ALLOWED_HOSTS = ["minhelse.quillonhealth.no", "mi-salud.quillonhealth.es", "portal.klinikum-quillon.de"]

# FIXME: move to Key Vault reference like the other apps (PORTAL-712)
SECRET_KEY = "{V}"

CSRF_TRUSTED_ORIGINS = [
    "https://minhelse.quillonhealth.no",
    "https://mi-salud.quillonhealth.es",
    "https://portal.klinikum-quillon.de",
]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True

LANGUAGES = [
    ("nb", "Norsk bokmål"),
    ("de", "Deutsch"),
    ("es", "Español"),
    ("en", "English"),
]

LOGGING["root"]["level"] = "WARNING"  # noqa: F405
''',
    ),
    T(
        "patient-portal/backend/quillon_portal/settings/base.py",
        "t22_ref_py",
        False,
        r'''"""Shared settings. Secrets come from the environment (Key Vault CSI mount in AKS)."""

import os
from pathlib import Path

import environ

env = environ.Env()
BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = {V}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "mozilla_django_oidc",
    "portal.appointments",
    "portal.messages",
    "portal.results",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PORTAL_DB_NAME", "portal"),
        "USER": os.environ.get("PORTAL_DB_USER", "portal_app"),
        "PASSWORD": {V2},
        "HOST": os.environ.get("PORTAL_DB_HOST", "localhost"),
        "PORT": "5432",
        "OPTIONS": {"sslmode": "require"},
    }
}

OIDC_RP_CLIENT_ID = "patient-portal"
OIDC_RP_CLIENT_SECRET = {V3}
OIDC_OP_TOKEN_ENDPOINT = "https://sso.quillonhealth.no/realms/portal/protocol/openid-connect/token"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGGING = {"version": 1, "root": {"level": "INFO", "handlers": []}}
''',
    ),
    T(
        "patient-portal/backend/quillon_portal/settings/local.py",
        "t22_pw",
        True,
        r'''"""Local development settings, points at the shared dev database on dev-pg01."""

import os

from .base import *  # noqa: F401,F403

DEBUG = True
ALLOWED_HOSTS = ["*"]

DATABASES["default"].update(  # noqa: F405
    {
        "HOST": os.getenv("PORTAL_DB_HOST", "dev-pg01.qh.internal"),
        "USER": os.getenv("PORTAL_DB_USER", "portal_dev"),
        "PASSWORD": os.getenv("PORTAL_DB_PASSWORD", "{V}"),
    }
)

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "smtp-relay.qh.internal"
EMAIL_PORT = 587
EMAIL_HOST_USER = "portal-dev@quillonhealth.no"
EMAIL_HOST_PASSWORD = os.getenv("EMAIL_HOST_PASSWORD", "{V2}")
EMAIL_USE_TLS = True
''',
    ),
    T(
        "patient-portal/backend/.env",
        "t22_url_pw",
        True,
        r"""# backend .env for the staging VM (portal-stg01). Loaded by django-environ.
DJANGO_SETTINGS_MODULE=quillon_portal.settings.staging
DATABASE_URL=postgres://portal_app:{V}@pg-portal-stg.qh.internal:5432/portal?sslmode=require
REDIS_URL=rediss://:{V2}@redis-portal-stg.qh.internal:6380/0
CELERY_BROKER_URL=amqp://portal:{V3}@rabbit-stg.qh.internal:5672/portal
OIDC_OP_BASE=https://sso-test.quillonhealth.no/realms/portal
SENTRY_ENVIRONMENT=staging
""",
    ),
    T(
        "patient-portal/backend/.env.example",
        "t22_placeholder",
        False,
        r"""# Copy to .env and fill in. Ask #portal-dev for the staging values (they are in Key Vault).
DJANGO_SETTINGS_MODULE=quillon_portal.settings.local
DJANGO_SECRET_KEY={V}
DATABASE_URL=postgres://portal_app:{V2}@localhost:5432/portal
REDIS_URL=redis://localhost:6379/0
OIDC_RP_CLIENT_SECRET={V3}
TWILIO_AUTH_TOKEN={V4}
SENDGRID_API_KEY=
""",
    ),
    T(
        "patient-portal/backend/portal/notifications/sms.py",
        "t22_twilio_token",
        True,
        r'''"""SMS reminders for appointments (Norway and Spain numbers go through Twilio)."""

import logging

from django.conf import settings
from twilio.rest import Client

log = logging.getLogger(__name__)

TWILIO_ACCOUNT_SID = getattr(settings, "TWILIO_ACCOUNT_SID", "")
# hard-coded for the pilot at BGO, remove after PORTAL-655
TWILIO_AUTH_TOKEN = getattr(settings, "TWILIO_AUTH_TOKEN", "{V}")
SENDER = {"NO": "QuillonHlse", "ES": "+34911234567"}

TEMPLATES = {
    "nb": "Påminnelse: du har time {when} på {where}. Svar AVBRYT for å avbestille.",
    "es": "Recordatorio: tiene una cita el {when} en {where}.",
    "de": "Erinnerung: Ihr Termin ist am {when} in {where}.",
}


def send_reminder(phone: str, country: str, lang: str, when: str, where: str) -> str:
    client = Client(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)
    body = TEMPLATES.get(lang, TEMPLATES["nb"]).format(when=when, where=where)
    message = client.messages.create(to=phone, from_=SENDER.get(country, SENDER["NO"]), body=body)
    log.info("sms sent sid=%s", message.sid)
    return message.sid
''',
    ),
    T(
        "patient-portal/backend/portal/notifications/tests/test_sms.py",
        "t22_twilio_sid",
        False,
        r"""from unittest import mock

import pytest

from portal.notifications import sms


@pytest.fixture
def twilio_client():
    with mock.patch.object(sms, "Client") as client_cls:
        client_cls.return_value.messages.create.return_value.sid = "{V}"
        yield client_cls


def test_reminder_uses_norwegian_template(twilio_client, settings):
    settings.TWILIO_ACCOUNT_SID = "{V2}"
    sid = sms.send_reminder("+4791234567", "NO", "nb", "12.03 kl 10:15", "Poliklinikk 2")
    assert sid.startswith("SM") or sid
    body = twilio_client.return_value.messages.create.call_args.kwargs["body"]
    assert "Påminnelse" in body
""",
    ),
    T(
        "patient-portal/backend/portal/email/backends.py",
        "t22_sendgrid",
        True,
        r'''"""SendGrid backend for transactional mail (appointment confirmations, result notices)."""

import os

import sendgrid
from django.core.mail.backends.base import BaseEmailBackend
from sendgrid.helpers.mail import Content, Email, Mail, To

_API_KEY = os.environ.get("SENDGRID_API_KEY") or "{V}"


class SendGridBackend(BaseEmailBackend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = sendgrid.SendGridAPIClient(api_key=_API_KEY)

    def send_messages(self, email_messages):
        sent = 0
        for message in email_messages:
            mail = Mail(
                Email(message.from_email or "ikke-svar@quillonhealth.no"),
                To(message.to[0]),
                message.subject,
                Content("text/plain", message.body),
            )
            response = self.client.send(mail)
            if response.status_code < 300:
                sent += 1
        return sent
''',
    ),
    T(
        "patient-portal/backend/portal/fixtures/demo_users.json",
        "t22_pbkdf2_django",
        False,
        r"""[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {
      "password": "{V}",
      "last_login": null,
      "is_superuser": true,
      "username": "portal-admin",
      "email": "portal-admin@quillonhealth.no",
      "is_staff": true,
      "is_active": true,
      "date_joined": "2023-09-01T08:00:00Z"
    }
  },
  {
    "model": "auth.user",
    "pk": 2,
    "fields": {
      "password": "{V2}",
      "last_login": null,
      "is_superuser": false,
      "username": "support-bgo",
      "email": "support-bgo@quillonhealth.no",
      "is_staff": true,
      "is_active": true,
      "date_joined": "2023-09-01T08:00:00Z"
    }
  }
]
""",
    ),
    T(
        "patient-portal/backend/locale/nb/LC_MESSAGES/django.po",
        "t22_i18n",
        False,
        r"""# Norwegian (Bokmål) translation of the Quillon patient portal.
msgid ""
msgstr ""
"Project-Id-Version: quillon-portal 2.8\n"
"Language: nb\n"
"MIME-Version: 1.0\n"
"Content-Type: text/plain; charset=UTF-8\n"
"Content-Transfer-Encoding: 8bit\n"

#: portal/accounts/forms.py:41
msgid "Password"
msgstr "Passord"

#: portal/accounts/forms.py:58
msgid "Invalid username or password"
msgstr "{V}"

#: portal/accounts/forms.py:77
msgid "Your password must contain at least 12 characters."
msgstr "{V2}"

#: portal/accounts/templates/accounts/reset.html:12
msgid "Reset password"
msgstr "Tilbakestill passord"
""",
    ),
    T(
        "patient-portal/web/src/i18n/locales/es.json",
        "t22_i18n",
        False,
        r"""{
  "login": {
    "title": "Acceso a Mi Salud",
    "username": "Usuario",
    "password": "Contraseña",
    "submit": "Entrar",
    "error": "{V}",
    "forgot": "{V2}",
    "expired": "{V3}",
    "weak": "{V4}"
  },
  "appointments": {
    "title": "Mis citas",
    "empty": "No tiene citas programadas",
    "cancel": "Cancelar cita"
  },
  "results": {
    "title": "Resultados de laboratorio",
    "pending": "Pendiente de validación"
  }
}
""",
    ),
    T(
        "patient-portal/web/src/i18n/locales/de.json",
        "t22_i18n",
        False,
        r"""{
  "login": {
    "title": "Anmeldung Patientenportal",
    "username": "Benutzername",
    "password": "Passwort",
    "submit": "Anmelden",
    "error": "{V}",
    "hint": "{V2}",
    "expired": "{V3}",
    "locked": "{V4}"
  },
  "profile": {
    "changePassword": "Passwort ändern",
    "currentPassword": "Aktuelles Passwort",
    "newPassword": "Neues Passwort",
    "passwordStrength": "Passwortstärke"
  }
}
""",
    ),
    T(
        "patient-portal/web/.env.production",
        "t22_mapbox_pk",
        False,
        r"""# Public build-time config for the React portal. Everything here ends up in the bundle.
REACT_APP_API_BASE=https://minhelse.quillonhealth.no/api
REACT_APP_OIDC_AUTHORITY=https://sso.quillonhealth.no/realms/portal
REACT_APP_OIDC_CLIENT_ID=patient-portal-web
REACT_APP_MAPBOX_TOKEN={V}
REACT_APP_DEFAULT_LOCALE=nb
""",
    ),
    T(
        "patient-portal/web/scripts/geocode-clinics.mjs",
        "t22_mapbox_sk",
        True,
        r"""#!/usr/bin/env node
// One-off: geocode the clinic list for the "find a clinic" map and write src/data/clinics.json.
// Uses a secret-scope token (styles:read, datasets:write) because it uploads the dataset too.
import fs from "node:fs/promises";

const MAPBOX_TOKEN = process.env.MAPBOX_SECRET_TOKEN || "{V}";
const clinics = JSON.parse(await fs.readFile(new URL("./clinics.src.json", import.meta.url)));

for (const clinic of clinics) {
  const q = encodeURIComponent(`${clinic.address}, ${clinic.city}, ${clinic.country}`);
  const res = await fetch(`https://api.mapbox.com/geocoding/v5/mapbox.places/${q}.json?access_token=${MAPBOX_TOKEN}&limit=1`);
  const body = await res.json();
  clinic.coordinates = body.features?.[0]?.center ?? null;
}

await fs.writeFile(new URL("../src/data/clinics.json", import.meta.url), JSON.stringify(clinics, null, 2));
console.log(`geocoded ${clinics.length} clinics`);
""",
    ),
    T(
        "patient-portal/web/.npmrc",
        "t22_npmrc_pat",
        True,
        r"""; Azure Artifacts feed for @quillon/* packages
registry=https://pkgs.dev.azure.com/quillonhealth/_packaging/qh-npm/npm/registry/
always-auth=true

; begin auth token
//pkgs.dev.azure.com/quillonhealth/_packaging/qh-npm/npm/registry/:username=quillonhealth
//pkgs.dev.azure.com/quillonhealth/_packaging/qh-npm/npm/registry/:_password={V}
//pkgs.dev.azure.com/quillonhealth/_packaging/qh-npm/npm/registry/:email=npm requires email to be set but doesn't use the value
//pkgs.dev.azure.com/quillonhealth/_packaging/qh-npm/npm/:username=quillonhealth
//pkgs.dev.azure.com/quillonhealth/_packaging/qh-npm/npm/:_password={V}
//pkgs.dev.azure.com/quillonhealth/_packaging/qh-npm/npm/:email=npm requires email to be set but doesn't use the value
; end auth token
""",
    ),
    T(
        "patient-portal/web/cypress.env.json",
        "t22_any_pw",
        True,
        r"""{
  "baseUrl": "https://minhelse-stg.quillonhealth.no",
  "patientUser": "testpasient01@qh-test.no",
  "patientPassword": "{V}",
  "clinicianUser": "lege.test@quillonhealth.no",
  "clinicianPassword": "{V2}",
  "mailhogUrl": "http://mailhog-stg.qh.internal:8025"
}
""",
    ),
    T(
        "patient-portal/web/cypress/e2e/login.cy.ts",
        "t22_ref_js",
        False,
        r"""describe("Innlogging", () => {
  beforeEach(() => {
    cy.visit("/logg-inn");
  });

  it("logs a patient in and shows the appointment list", () => {
    cy.get("[data-cy=username]").type(Cypress.env("patientUser"));
    cy.get("[data-cy=password]").type({V}, { log: false });
    cy.get("[data-cy=submit]").click();
    cy.contains("Mine timer").should("be.visible");
  });

  it("shows an error for a wrong password", () => {
    cy.get("[data-cy=username]").type(Cypress.env("patientUser"));
    cy.get("[data-cy=password]").type("wrong-on-purpose", { log: false });
    cy.get("[data-cy=submit]").click();
    cy.contains("Feil brukernavn eller passord").should("be.visible");
  });
});
""",
    ),
    T(
        "patient-portal/web/src/api/__mocks__/auth.test.ts",
        "t22_fake",
        False,
        r"""import { renderHook, waitFor } from "@testing-library/react";
import { useAuth } from "../auth";

jest.mock("oidc-client-ts", () => ({
  UserManager: jest.fn().mockImplementation(() => ({
    getUser: jest.fn().mockResolvedValue({
      access_token: "{V}",
      refresh_token: "{V2}",
      profile: { sub: "patient-123", name: "Kari Testesen" },
      expired: false,
    }),
  })),
}));

test("exposes the access token of the signed-in user", async () => {
  const { result } = renderHook(() => useAuth());
  await waitFor(() => expect(result.current.user).toBeDefined());
  expect(result.current.user?.profile.name).toBe("Kari Testesen");
});
""",
    ),
    T(
        "patient-portal/angular-clinician/src/environments/environment.prod.ts",
        "t22_uuid",
        False,
        r"""// Clinician web (Angular) production environment. MSAL settings are public client values.
export const environment = {
  production: true,
  apiBase: 'https://clinician.quillonhealth.no/api',
  msal: {
    clientId: '{V}',
    authority: 'https://login.microsoftonline.com/{V2}',
    redirectUri: 'https://clinician.quillonhealth.no/auth',
    scopes: ['api://{V3}/Clinician.Read'],
  },
  appInsights: {
    instrumentationKey: '{V4}',
  },
  featureFlags: {
    videoVisit: true,
    labTrends: false,
  },
};
""",
    ),
    T(
        "patient-portal/angular-clinician/proxy.conf.json",
        "t22_basic",
        True,
        r"""{
  "/api": {
    "target": "https://clinician-stg.quillonhealth.no",
    "secure": true,
    "changeOrigin": true,
    "logLevel": "debug",
    "headers": {
      "Authorization": "Basic {V}"
    }
  },
  "/fhir": {
    "target": "https://fhir-staging.quillonhealth.no",
    "secure": true,
    "changeOrigin": true
  }
}
""",
    ),
    T(
        "patient-portal/angular-clinician/src/app/auth/login.component.html",
        "t22_i18n",
        False,
        r"""<form [formGroup]="form" (ngSubmit)="submit()" class="qh-login">
  <h1 i18n="@@loginTitle">Innlogging for helsepersonell</h1>
  <mat-form-field appearance="outline">
    <mat-label i18n>Brukernavn</mat-label>
    <input matInput formControlName="username" autocomplete="username" />
  </mat-form-field>
  <mat-form-field appearance="outline">
    <mat-label i18n>Passord</mat-label>
    <input matInput type="password" formControlName="password" autocomplete="current-password" />
    <mat-error *ngIf="form.controls.password.hasError('required')">{V}</mat-error>
  </mat-form-field>
  <p class="qh-hint">{V2}</p>
  <button mat-flat-button color="primary" type="submit" i18n>Logg inn</button>
</form>
""",
    ),
    T(
        "patient-portal/deploy/nginx/portal.htpasswd",
        "t22_htpasswd",
        False,
        r"""# staging basic auth in front of minhelse-stg (generated with htpasswd -m)
qa-team:{V}
vendor-pentest:{V2}
""",
    ),
    T(
        "patient-portal/backend/portal/management/commands/seed_demo.py",
        "t22_example_pw",
        False,
        r'''"""Seed demo patients for the sales demo environment (demo.example.com mirrors this)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = [
    ("demo.pasient@example.com", "{V}"),
    ("demo.paciente@example.com", "{V2}"),
    ("demo.patient@example.org", "{V3}"),
]


class Command(BaseCommand):
    help = "Create the documented demo users (see docs/demo.md; these are published in the brochure)."

    def handle(self, *args, **options):
        User = get_user_model()
        for email, password in DEMO_USERS:
            user, created = User.objects.get_or_create(username=email, defaults={"email": email})
            user.set_password(password)
            user.save()
            self.stdout.write(f"{'created' if created else 'updated'} {email}")
''',
    ),
    T(
        "patient-portal/deploy/k8s/portal-backend-secret.yaml",
        "t22_pw",
        True,
        r"""apiVersion: v1
kind: Secret
metadata:
  name: portal-backend
  namespace: patient-portal
  labels:
    app.kubernetes.io/name: portal-backend
    app.kubernetes.io/part-of: patient-portal
type: Opaque
stringData:
  PORTAL_DB_USER: portal_app
  PORTAL_DB_PASSWORD: "{V}"
  CELERY_BROKER_URL: "amqp://portal:{V2}@rabbitmq.patient-portal.svc:5672/portal"
""",
    ),
    T(
        "patient-portal/deploy/k8s/portal-backend-externalsecret.yaml",
        "t22_key_name",
        False,
        r"""apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: portal-backend
  namespace: patient-portal
spec:
  refreshInterval: 1h
  secretStoreRef:
    kind: ClusterSecretStore
    name: azure-kv-qh-portal
  target:
    name: portal-backend
    creationPolicy: Owner
  data:
    - secretKey: PORTAL_DB_PASSWORD
      remoteRef:
        key: {V}
    - secretKey: EMAIL_HOST_PASSWORD
      remoteRef:
        key: smtp-relay-password
    - secretKey: DJANGO_SECRET_KEY
      remoteRef:
        key: {V2}
""",
    ),
    T(
        "patient-portal/backend/portal/results/tests/test_fhir_sync_integration.py",
        "t22_client_secret",
        True,
        r'''"""Integration test against the staging FHIR server; skipped in CI unless QH_INTEGRATION=1."""

import os

import pytest
import requests

STAGING_TOKEN_URL = "https://sso-test.quillonhealth.no/realms/clinical/protocol/openid-connect/token"
STAGING_FHIR = "https://fhir-staging.quillonhealth.no/fhir"

pytestmark = pytest.mark.skipif(os.getenv("QH_INTEGRATION") != "1", reason="needs staging")


@pytest.fixture(scope="module")
def token():
    resp = requests.post(
        STAGING_TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": "portal-results-sync",
            "client_secret": "{V}",
        },
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["access_token"]


def test_observations_for_test_patient(token):
    resp = requests.get(
        f"{STAGING_FHIR}/Observation",
        params={"subject": "Patient/qh-test-0001", "_count": 5},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.json()["resourceType"] == "Bundle"
''',
    ),
]

# ====================================================================== mobile
TEMPLATES += [
    T(
        "mobile/minhelse_app/.env.production",
        "t22_api_key",
        True,
        r"""# flutter_dotenv file bundled as an asset (see pubspec.yaml assets:). Yes, it ships in the app.
PORTAL_API_BASE=https://minhelse.quillonhealth.no/api/mobile/v2
PORTAL_API_KEY={V}
VIDEO_VISIT_API_KEY={V2}
OIDC_ISSUER=https://sso.quillonhealth.no/realms/portal
OIDC_CLIENT_ID=minhelse-mobile
DEFAULT_LOCALE=nb
""",
    ),
    T(
        "mobile/minhelse_app/lib/config/app_config.dart",
        "t22_ref_dart",
        False,
        r"""import 'package:flutter_dotenv/flutter_dotenv.dart';

/// Runtime configuration. Values come from --dart-define in CI (see azure-pipelines.yml)
/// or from the bundled .env file for local builds.
class AppConfig {
  AppConfig._();

  static const apiBase = String.fromEnvironment(
    'PORTAL_API_BASE',
    defaultValue: 'https://minhelse-stg.quillonhealth.no/api/mobile/v2',
  );

  static String get apiKey => {V};

  static String get videoVisitKey => {V2};

  static const oidcClientId = 'minhelse-mobile';
  static const supportedLocales = ['nb', 'nn', 'de', 'es', 'en'];
}
""",
    ),
    T(
        "mobile/minhelse_app/test/api_client_test.dart",
        "t22_fake",
        False,
        r"""import 'package:flutter_test/flutter_test.dart';
import 'package:http/http.dart' as http;
import 'package:http/testing.dart';
import 'package:minhelse/api/api_client.dart';

void main() {
  test('sends the api key header', () async {
    late http.Request captured;
    final mock = MockClient((request) async {
      captured = request;
      return http.Response('{"appointments": []}', 200);
    });

    final client = ApiClient(
      baseUrl: 'https://api.test',
      apiKey: '{V}',
      httpClient: mock,
    );
    await client.appointments();

    expect(captured.headers['X-Api-Key'], '{V}');
  });

  test('refresh token is not logged', () {
    final session = Session(accessToken: 'a', refreshToken: '{V2}');
    expect(session.toString(), isNot(contains(session.refreshToken)));
  });
}
""",
    ),
    T(
        "mobile/minhelse_app/android/key.properties",
        "t22_keystore_pw",
        True,
        r"""storePassword={V}
keyPassword={V2}
keyAlias=minhelse-upload
storeFile=../keystore/minhelse-upload.jks
""",
    ),
    T(
        "mobile/minhelse_app/android/key.properties.example",
        "t22_placeholder",
        False,
        r"""# Copy to key.properties. The real values are in the "Mobile signing" 1Password vault.
storePassword={V}
keyPassword={V2}
keyAlias=minhelse-upload
storeFile=../keystore/minhelse-upload.jks
""",
    ),
    T(
        "mobile/ios-clinician/fastlane/.env.default",
        "t22_passphrase",
        True,
        r"""# fastlane environment for the clinician iOS app (QH Klinikk)
FASTLANE_USER=mobile-ci@quillonhealth.no
FASTLANE_TEAM_ID=QH7K2M9XLP
MATCH_GIT_URL=git@gitlab.qh.internal:mobile/certificates.git
MATCH_PASSWORD={V}
MATCH_TYPE=appstore
APP_IDENTIFIER=no.quillonhealth.klinikk
""",
    ),
    T(
        "mobile/ios-clinician/fastlane/Fastfile",
        "t22_ref_ruby",
        False,
        r"""default_platform(:ios)

platform :ios do
  desc "Build and upload to TestFlight"
  lane :beta do
    setup_ci if ENV["CI"]
    app_store_connect_api_key(
      key_id: "QH2K9X4LMA",
      issuer_id: "69a6de7e-2a3b-47e3-e053-5b8c7c11a4d1",
      key_content: {V},
      is_key_content_base64: true
    )
    match(type: "appstore", readonly: true, password: {V2})
    increment_build_number(build_number: ENV["BUILD_BUILDID"])
    build_app(scheme: "QHKlinikk", export_method: "app-store")
    upload_to_testflight(skip_waiting_for_build_processing: true)
  end
end
""",
    ),
    T(
        "mobile/ios-clinician/fastlane/keys/AuthKey_QH2K9X4LMA.p8",
        "t22_p8_key",
        True,
        r"""{V}
""",
    ),
    T(
        "mobile/ios-clinician/QHKlinikk/Config/Secrets.swift",
        "t22_api_key",
        True,
        r"""//
//  Secrets.swift
//  QHKlinikk
//
//  Generated by scripts/gen-secrets.sh for the Release configuration. Do not commit.
//  (committed by accident in !412, rotate after merge)
//

import Foundation

enum Secrets {
    static let clinicianApiKey = "{V}"
    // static let legacyApiKey = "{V2}"
}
""",
    ),
    T(
        "mobile/ios-clinician/QHKlinikk/Info.plist",
        "t22_ref_xcode",
        False,
        r"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDisplayName</key>
	<string>QH Klinikk</string>
	<key>CFBundleIdentifier</key>
	<string>$(PRODUCT_BUNDLE_IDENTIFIER)</string>
	<key>CFBundleShortVersionString</key>
	<string>$(MARKETING_VERSION)</string>
	<key>NSCameraUsageDescription</key>
	<string>Kameraet brukes til å skanne pasientarmbånd.</string>
	<key>NSFaceIDUsageDescription</key>
	<string>Face ID brukes i stedet for passord.</string>
	<key>PortalApiKey</key>
	<string>{V}</string>
	<key>PushKey</key>
	<string>{V2}</string>
</dict>
</plist>
""",
    ),
    T(
        "mobile/ios-clinician/QHKlinikkTests/SessionStoreTests.swift",
        "t22_fake",
        False,
        r"""import XCTest
@testable import QHKlinikk

final class SessionStoreTests: XCTestCase {
    func testStoresTokenInKeychain() throws {
        let keychain = InMemoryKeychain()
        let store = SessionStore(keychain: keychain)

        try store.save(accessToken: "{V}", refreshToken: "{V2}")

        XCTAssertEqual(try store.accessToken(), "{V}")
        XCTAssertTrue(keychain.didUseAccessibleWhenUnlockedThisDeviceOnly)
    }

    func testClearRemovesEverything() throws {
        let store = SessionStore(keychain: InMemoryKeychain())
        try store.save(accessToken: "x", refreshToken: "y")
        store.clear()
        XCTAssertNil(try? store.accessToken())
    }
}
""",
    ),
    T(
        "mobile/android-lab-scanner/app/build.gradle.kts",
        "t22_keystore_pw",
        True,
        r"""plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("kotlin-kapt")
}

android {
    namespace = "no.quillonhealth.labscanner"
    compileSdk = 34

    defaultConfig {
        applicationId = "no.quillonhealth.labscanner"
        minSdk = 28
        targetSdk = 34
        versionCode = 57
        versionName = "3.2.0"
        buildConfigField("String", "LIS_BASE_URL", "\"https://lis-gw.qh.internal/api/\"")
    }

    signingConfigs {
        create("release") {
            storeFile = file("../keystore/labscanner-release.jks")
            storePassword = "{V}"
            keyAlias = "labscanner"
            keyPassword = "{V2}"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            signingConfig = signingConfigs.getByName("release")
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    buildFeatures {
        buildConfig = true
        viewBinding = true
    }
}

dependencies {
    implementation("androidx.core:core-ktx:1.12.0")
    implementation("com.google.mlkit:barcode-scanning:17.2.0")
    implementation("com.squareup.retrofit2:retrofit:2.9.0")
}
""",
    ),
    T(
        "mobile/android-lab-scanner/gradle.properties",
        "t22_ado_pat",
        True,
        r"""org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
android.nonTransitiveRClass=true

# Azure Artifacts maven feed (qh-android). Personal access token, Packaging (Read).
azureArtifactsGradleAccessToken={V}
""",
    ),
    T(
        "mobile/android-lab-scanner/app/src/main/java/no/quillonhealth/labscanner/net/LisClient.kt",
        "t22_ref_kotlin",
        False,
        r"""package no.quillonhealth.labscanner.net

import no.quillonhealth.labscanner.BuildConfig
import okhttp3.Interceptor
import okhttp3.OkHttpClient
import retrofit2.Retrofit
import retrofit2.converter.moshi.MoshiConverterFactory

object LisClient {
    private val apiKey: String = {V}

    private val auth = Interceptor { chain ->
        chain.proceed(
            chain.request().newBuilder()
                .header("X-Api-Key", apiKey)
                .header("Accept-Language", "nb-NO")
                .build()
        )
    }

    val retrofit: Retrofit = Retrofit.Builder()
        .baseUrl(BuildConfig.LIS_BASE_URL)
        .client(OkHttpClient.Builder().addInterceptor(auth).build())
        .addConverterFactory(MoshiConverterFactory.create())
        .build()
}
""",
    ),
    T(
        "mobile/android-lab-scanner/app/src/test/java/no/quillonhealth/labscanner/net/LisClientTest.kt",
        "t22_fake",
        False,
        r'''package no.quillonhealth.labscanner.net

import okhttp3.mockwebserver.MockResponse
import okhttp3.mockwebserver.MockWebServer
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Before
import org.junit.Test

class LisClientTest {
    private lateinit var server: MockWebServer

    @Before fun setUp() {
        server = MockWebServer()
        server.start()
    }

    @After fun tearDown() = server.shutdown()

    @Test fun `sends api key header`() {
        server.enqueue(MockResponse().setBody("""{"specimen":"ok"}"""))
        val api = TestLisApi(server.url("/").toString(), apiKey = "{V}")
        api.confirmSpecimen("QH-SPEC-0001").execute()
        assertEquals("{V}", server.takeRequest().getHeader("X-Api-Key"))
    }
}
''',
    ),
    T(
        "mobile/push-service/config/production.yaml",
        "t22_fcm_key",
        True,
        r"""# push-service: fan-out of appointment and result notifications to the mobile apps
server:
  port: 8080
  base_path: /push

fcm:
  project_id: qh-minhelse-prod
  # legacy HTTP API still used by the old Android build (3.x); v1 uses the service account below
  server_key: "{V}"
  service_account_file: /var/run/secrets/fcm/service-account.json

apns:
  team_id: QH7K2M9XLP
  key_id: QH2K9X4LMA
  key_file: /var/run/secrets/apns/AuthKey_QH2K9X4LMA.p8
  topic: no.quillonhealth.minhelse
  production: true

rate_limit:
  per_user_per_hour: 20
""",
    ),
    T(
        "mobile/push-service/config/staging.yaml",
        "t22_ref_env",
        False,
        r"""server:
  port: 8080
  base_path: /push

fcm:
  project_id: qh-minhelse-stg
  server_key: {V}
  service_account_file: /var/run/secrets/fcm/service-account.json

apns:
  team_id: QH7K2M9XLP
  key_id: QH5P3R8TWB
  key_file: /var/run/secrets/apns/AuthKey_QH5P3R8TWB.p8
  topic: no.quillonhealth.minhelse.stg
  production: false
""",
    ),
]

# ====================================================================== imaging
TEMPLATES += [
    T(
        "imaging/orthanc-bergen/orthanc.json",
        "t22_pw",
        True,
        r"""{
  "Name": "ORTHANC_BGO",
  "StorageDirectory": "/var/lib/orthanc/db",
  "IndexDirectory": "/var/lib/orthanc/db",
  "StorageCompression": false,
  "MaximumStorageSize": 0,
  "MaximumPatientCount": 0,
  "Plugins": [ "/usr/share/orthanc/plugins" ],

  "HttpServerEnabled": true,
  "HttpPort": 8042,
  "HttpDescribeErrors": true,
  "HttpCompressionEnabled": true,
  "SslEnabled": true,
  "SslCertificate": "/etc/orthanc/tls/orthanc-bergen.pem",

  "DicomServerEnabled": true,
  "DicomAet": "ORTHANC_BGO",
  "DicomCheckCalledAet": true,
  "DicomPort": 4242,
  "DefaultEncoding": "Latin1",

  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {
    "admin": "{V}",
    "pacs_router": "{V2}"
  },

  "DicomModalities": {
    "ct-siemens-02": [ "CT_SIEMENS_02", "10.42.16.21", 104 ],
    "mr-ge-01": [ "MR_GE_01", "10.42.16.30", 4006 ],
    "pacs01": [ "QH_PACS01", "pacs01.qh.internal", 11112 ]
  },

  "PostgreSQL": {
    "EnableIndex": true,
    "EnableStorage": false,
    "Host": "pg-imaging01.qh.internal",
    "Port": 5432,
    "Database": "orthanc_bgo",
    "Username": "orthanc",
    "Password": "{V4}",
    "EnableSsl": true
  }
}
""",
    ),
    T(
        "imaging/orthanc-lab-test/orthanc.json",
        "t22_orthanc_default",
        True,
        r"""{
  // Test Orthanc on the imaging lab VM (img-lab03.qh.internal). Reachable from the hospital network.
  "Name": "ORTHANC_LAB",
  "HttpPort": 8042,
  "DicomAet": "ORTHANC_LAB",
  "DicomPort": 4242,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {
    "orthanc": "{V}"
  },
  "DicomModalities": {
    "us-philips3": [ "US_PHILIPS3", "10.42.18.12", 104 ]
  }
}
""",
    ),
    T(
        "imaging/orthanc-oslo/orthanc.json",
        "t22_ref_env",
        False,
        r"""{
  "Name": "ORTHANC_OSL",
  "HttpPort": 8042,
  "DicomAet": "ORTHANC_OSL",
  "DicomPort": 4242,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {
    "admin": "{V}",
    "pacs_router": "{V2}"
  },
  "PostgreSQL": {
    "EnableIndex": true,
    "Host": "pg-imaging02.qh.internal",
    "Database": "orthanc_osl",
    "Username": "orthanc",
    "Password": "{V3}"
  }
}
""",
    ),
    T(
        "imaging/orthanc-oslo/docker-compose.yml",
        "t22_pw",
        True,
        r"""services:
  orthanc:
    image: orthancteam/orthanc:24.3.3
    restart: unless-stopped
    ports:
      - "8042:8042"
      - "4242:4242"
    environment:
      VERBOSE_ENABLED: "true"
      ORTHANC__NAME: ORTHANC_OSL
      ORTHANC__DICOM_AET: ORTHANC_OSL
      ORTHANC__AUTHENTICATION_ENABLED: "true"
      ORTHANC__REGISTERED_USERS: '{"admin": "{V}", "pacs_router": "{V2}"}'
      ORTHANC__POSTGRESQL__HOST: pg-imaging02.qh.internal
      ORTHANC__POSTGRESQL__USERNAME: orthanc
      ORTHANC__POSTGRESQL__PASSWORD: "{V3}"
      ORTHANC__DICOM_WEB__ENABLE: "true"
    volumes:
      - orthanc-storage:/var/lib/orthanc/db

volumes:
  orthanc-storage:
""",
    ),
    T(
        "imaging/orthanc-bergen/scripts/autorouting.py",
        "t22_any_pw",
        True,
        r'''"""Orthanc Python plugin: forward stable CT/MR studies to the central PACS and the AI triage box."""

import json

import orthanc
import requests

AI_TRIAGE = "https://ai-triage.qh.internal/api/studies"
AI_USER = "orthanc-bgo"
AI_PASSWORD = "{V}"

PACS_MODALITY = "pacs01"
ROUTED_MODALITIES = {"CT", "MR"}


def on_change(change_type, level, resource_id):
    if change_type != orthanc.ChangeType.STABLE_STUDY:
        return
    study = json.loads(orthanc.RestApiGet(f"/studies/{resource_id}"))
    modalities = set(study["RequestedTags"].get("ModalitiesInStudy", "").split("\\"))
    if not modalities & ROUTED_MODALITIES:
        return
    orthanc.RestApiPost(f"/modalities/{PACS_MODALITY}/store", json.dumps({"Resources": [resource_id], "Asynchronous": True}))
    requests.post(
        AI_TRIAGE,
        json={"studyInstanceUid": study["MainDicomTags"]["StudyInstanceUID"], "source": "ORTHANC_BGO"},
        auth=(AI_USER, AI_PASSWORD),
        timeout=15,
    )


orthanc.RegisterOnChangeCallback(on_change)
''',
    ),
    T(
        "imaging/dcm4chee/docker-compose.env",
        "t22_pw",
        True,
        r"""# dcm4chee-arc-light 5.31 on pacs01 (replaces the old dcm4chee 2.x box in Q2)
STORAGE_DIR=/storage/fs1
POSTGRES_DB=pacsdb
POSTGRES_USER=pacs
POSTGRES_PASSWORD={V}
LDAP_ROOTPASS={V2}
ARCHIVE_DEVICE_NAME=dcm4chee-arc
AE_TITLE=QH_PACS01
DICOM_HOST=pacs01.qh.internal
KEYCLOAK_ADMIN=admin
KEYCLOAK_ADMIN_PASSWORD={V3}
WILDFLY_CHOWN=/opt/wildfly/standalone /storage
""",
    ),
    T(
        "imaging/dcm4chee/docker-compose.env.template",
        "t22_ref_shell",
        False,
        r"""# Rendered by deploy/render-env.sh from Key Vault; values below are shell references.
STORAGE_DIR=/storage/fs1
POSTGRES_DB=pacsdb
POSTGRES_USER=pacs
POSTGRES_PASSWORD={V}
LDAP_ROOTPASS={V2}
LDAP_CONFIGPASS={V3}
AE_TITLE=QH_PACS01
""",
    ),
    T(
        "imaging/dcm4chee/ldap/init/qh-users.ldif",
        "t22_ssha",
        False,
        r"""# Extra users for the archive UI; imported once into slapd (dc=dcm4che,dc=org)
dn: uid=radiology-admin,ou=users,dc=dcm4che,dc=org
objectClass: inetOrgPerson
uid: radiology-admin
cn: Radiology Admin
sn: Admin
mail: radiologi-drift@quillonhealth.no
userPassword: {V}

dn: uid=mwl-feed,ou=users,dc=dcm4che,dc=org
objectClass: inetOrgPerson
uid: mwl-feed
cn: MWL feed (Mirth)
sn: Feed
userPassword: {V2}

dn: uid=qh-router,ou=users,dc=dcm4che,dc=org
objectClass: inetOrgPerson
uid: qh-router
cn: QH PACS router
sn: Router
userPassword: {V3}
""",
    ),
    T(
        "imaging/dcm4chee/wildfly/standalone-pacsds.xml",
        "t22_sql_pw",
        True,
        r"""<datasources xmlns="urn:jboss:domain:datasources:7.0">
    <datasource jndi-name="java:/PacsDS" pool-name="PacsDS" enabled="true" use-java-context="true">
        <connection-url>jdbc:postgresql://pg-pacs01.qh.internal:5432/pacsdb</connection-url>
        <driver>postgresql</driver>
        <pool>
            <min-pool-size>5</min-pool-size>
            <max-pool-size>50</max-pool-size>
        </pool>
        <security>
            <user-name>pacs</user-name>
            <password>{V}</password>
        </security>
        <validation>
            <check-valid-connection-sql>SELECT 1</check-valid-connection-sql>
        </validation>
    </datasource>
</datasources>
""",
    ),
    T(
        "imaging/dicom-nodes/nodes.yaml",
        "t22_ae_title",
        False,
        r"""# DICOM application entities known to the PACS routers. Keep in sync with the modality inventory.
nodes:
  - aet: {V}
    host: 10.42.16.21
    port: 104
    site: BGO
    description: CT, Somatom Force, akuttmottak
  - aet: {V2}
    host: 10.42.16.30
    port: 4006
    site: BGO
    description: MR 1.5T
  - aet: {V3}
    host: pacs01.qh.internal
    port: 11112
    site: central
    description: dcm4chee archive
  - aet: {V4}
    host: 10.42.18.12
    port: 104
    site: BGO
    description: ultralyd, kvinneklinikken
  - aet: ORTHANC_BGO
    host: orthanc-bergen.qh.internal
    port: 4242
    site: BGO
    description: router / cache
""",
    ),
    T(
        "imaging/scripts/resend_study.sh",
        "t22_any_pw",
        True,
        r"""#!/usr/bin/env bash
# Resend a study from Orthanc BGO to the central PACS after a failed transfer.
# Usage: resend_study.sh <StudyInstanceUID>
set -euo pipefail

UID_="$1"
ORTHANC=https://orthanc-bergen.qh.internal:8042

id=$(curl -sk -u "pacs_router:{V}" -X POST "$ORTHANC/tools/lookup" -d "$UID_" | jq -r '.[0].ID')
if [[ -z "$id" || "$id" == "null" ]]; then
  echo "study $UID_ not found" >&2
  exit 1
fi

curl -sk -u "pacs_router:{V}" -X POST "$ORTHANC/modalities/pacs01/store" \
  -H 'Content-Type: application/json' \
  -d "{\"Resources\": [\"$id\"], \"Asynchronous\": true}"
echo "queued $id"
""",
    ),
    T(
        "imaging/scripts/storescu-tls.sh",
        "t22_keystore_pw",
        True,
        r"""#!/bin/sh
# Send a folder of DICOM files to the Klinikum PACS over DICOM TLS (dcm4che 5 storescu)
DCM4CHE=/opt/dcm4che-5.31.2/bin
$DCM4CHE/storescu \
  -c KQ_PACS@pacs.klinikum-quillon.de:2762 \
  -b QH_ROUTER \
  --tls12 \
  --key-store /etc/pacs-router/tls/qh-router.p12 \
  --key-store-type PKCS12 \
  --key-store-pass {V} \
  --key-pass {V} \
  --trust-store /etc/pacs-router/tls/truststore.p12 \
  --trust-store-pass {V2} \
  "$@"
""",
    ),
    T(
        "imaging/ohif/app-config.js",
        "t22_orthanc_default",
        True,
        r"""window.config = {
  routerBasename: '/',
  showStudyList: true,
  // Viewer for the imaging lab; talks straight to the lab Orthanc (img-lab03)
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc-lab',
      configuration: {
        friendlyName: 'Orthanc lab',
        name: 'orthanc',
        wadoUriRoot: 'http://img-lab03.qh.internal:8042/wado',
        qidoRoot: 'http://img-lab03.qh.internal:8042/dicom-web',
        wadoRoot: 'http://img-lab03.qh.internal:8042/dicom-web',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        requestOptions: {
          auth: 'orthanc:{V}',
        },
      },
    },
  ],
  defaultDataSourceName: 'orthanc-lab',
};
""",
    ),
    T(
        "imaging/ohif/app-config.prod.js",
        "t22_uuid",
        False,
        r"""window.config = {
  routerBasename: '/viewer',
  oidc: [
    {
      authority: 'https://sso.quillonhealth.no/realms/clinical',
      client_id: 'ohif-viewer',
      redirect_uri: '/viewer/callback',
      response_type: 'code',
      scope: 'openid profile pacs',
      post_logout_redirect_uri: '/viewer',
    },
  ],
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'dcm4chee',
      configuration: {
        friendlyName: 'QH PACS',
        qidoRoot: 'https://pacs01.qh.internal/dcm4chee-arc/aets/QH_PACS01/rs',
        wadoRoot: 'https://pacs01.qh.internal/dcm4chee-arc/aets/QH_PACS01/rs',
        imageRendering: 'wadors',
      },
    },
  ],
  // telemetry
  appInsightsKey: '{V}',
  tenantId: '{V2}',
};
""",
    ),
    T(
        "imaging/samples/ct-head.dcmdump.txt",
        "t22_dicom_uid",
        False,
        r"""# Dicom-File-Format (anonymised test study, dcmdump output)

# Dicom-Meta-Information-Header
(0002,0001) OB 00\01                                    #   2, 1 FileMetaInformationVersion
(0002,0002) UI =CTImageStorage                          #  26, 1 MediaStorageSOPClassUID
(0002,0003) UI [{V}]                                    #  56, 1 MediaStorageSOPInstanceUID
(0002,0010) UI =LittleEndianExplicit                    #  20, 1 TransferSyntaxUID

# Dicom-Data-Set
(0008,0018) UI [{V4}]                                   #  56, 1 SOPInstanceUID
(0008,0020) DA [20240311]                               #   8, 1 StudyDate
(0008,0060) CS [CT]                                     #   2, 1 Modality
(0008,0070) LO [SIEMENS]                                #   8, 1 Manufacturer
(0010,0010) PN [ANON^TEST]                              #  10, 1 PatientName
(0010,0020) LO [QH00000001]                             #  10, 1 PatientID
(0020,000d) UI [{V2}]                                   #  56, 1 StudyInstanceUID
(0020,000e) UI [{V3}]                                   #  56, 1 SeriesInstanceUID
""",
    ),
    T(
        "imaging/modality-vendor/ct02-worklist.ini",
        "t22_vendor_default",
        True,
        r"""; Worklist / MPPS settings exported from the CT console (service mode), site BGO, room CT2
[Worklist]
CalledAET=QH_PACS01
CallingAET=CT_SIEMENS_02
Host=pacs01.qh.internal
Port=11112
QueryInterval=60

[ServiceUI]
; service web UI on the console, reachable from the imaging VLAN
Url=https://10.42.16.21:8443/service
User=admin
Password={V}

[MPPS]
Enabled=1
""",
    ),
    T(
        "imaging/orthanc-bergen/tls/orthanc-bergen.key",
        "t22_rsa_pem",
        True,
        r"""{V}
""",
    ),
    T(
        "imaging/orthanc-bergen/tls/orthanc-bergen.crt",
        "t22_cert",
        False,
        r"""{V}
""",
    ),
]

# ====================================================================== lab and device integration
TEMPLATES += [
    T(
        "lab-integration/lab-bridge/config/analyzers.yaml",
        "t22_pw",
        True,
        r"""# lab-bridge: ASTM/LIS2-A2 analyzers to LIS (site BGO, Klinisk kjemi)
lis:
  dsn: "mssql+pyodbc://lis_bridge:{V}@sql-lis01.qh.internal/LisCore?driver=ODBC+Driver+18+for+SQL+Server&Encrypt=yes"
  poll_seconds: 5

analyzers:
  - name: cobas-pro-1
    protocol: astm-tcp
    host: 10.42.20.11
    port: 15000
    instrument_id: COBAS01
  - name: sysmex-xn-2
    protocol: astm-serial
    device: /dev/ttyUSB1
    baudrate: 9600
    parity: N
    instrument_id: SYSMEX02
  - name: bloodgas-icu
    protocol: poct1a
    host: poct-mgr.qh.internal
    port: 9950
    user: lab_bridge
    password: "{V2}"

alerts:
  teams_webhook_env: LAB_BRIDGE_TEAMS_WEBHOOK
""",
    ),
    T(
        "lab-integration/lab-bridge/lab_bridge/lis_client.py",
        "t22_ref_py",
        False,
        r'''"""Writes verified results into the LIS staging tables."""

import os

import pyodbc

CONN_TEMPLATE = (
    "DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=sql-lis01.qh.internal;DATABASE=LisCore;"
    "UID=lis_bridge;PWD={password};Encrypt=yes"
)


def connect() -> pyodbc.Connection:
    password = {V}
    return pyodbc.connect(CONN_TEMPLATE.format(password=password), autocommit=False)


def store_result(conn, specimen_id: str, test_code: str, value: str, unit: str, flag: str | None) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO stg.Result (SpecimenId, TestCode, Value, Unit, Flag, Source) VALUES (?, ?, ?, ?, ?, 'lab-bridge')",
            specimen_id, test_code, value, unit, flag,
        )
    conn.commit()
''',
    ),
    T(
        "lab-integration/lab-bridge/tests/fixtures/cobas_frames.txt",
        "t22_msg_id",
        False,
        r"""1H|\^&|||cobas pro^1.0^{V}|||||host|RSUPL^BATCH|P|1|20240312093015
2P|1||QH00012345|||||U
3O|1|SPEC-{V2}||^^^8570^1|R|20240312090000|||||X||||1||||||||||F
4R|1|^^^8570/1/not|4.2|mmol/L|3.5^5.0|N||F||||20240312092911|cobas-pro-1
5L|1|N
""",
    ),
    T(
        "lab-integration/device-gateway/conf/device-gw.ini",
        "t22_vendor_default",
        True,
        r"""; device-gateway: pulls vitals from bedside monitors and infusion pumps (ward KIR2, BGO)
[gateway]
listen = 0.0.0.0:7001
hl7_out = mirth-prod.qh.internal:6670
log_level = info

[pump_server]
; vendor server for the infusion pumps; the service account was never changed from delivery
url = https://pumpsrv.bgo.qh.internal/api
user = admin
password = {V}

[monitor_central]
host = 10.42.30.5
port = 2575
""",
    ),
    T(
        "lab-integration/device-gateway/src/VitalsMonitorClient.cpp",
        "t22_weak_pw",
        True,
        r"""// VitalsMonitorClient.cpp - polls the central monitoring station over its HTTP API.
#include "VitalsMonitorClient.h"

#include <curl/curl.h>
#include <sstream>
#include <stdexcept>

namespace qh::devices {

namespace {
// Service login for the monitoring central station (set on delivery by the vendor engineer).
constexpr const char* kServiceUser = "qhgateway";
constexpr const char* kServicePassword = "{V}";

size_t writeBody(char* ptr, size_t size, size_t nmemb, void* userdata) {
    auto* out = static_cast<std::string*>(userdata);
    out->append(ptr, size * nmemb);
    return size * nmemb;
}
}  // namespace

VitalsMonitorClient::VitalsMonitorClient(std::string baseUrl) : baseUrl_(std::move(baseUrl)) {}

std::string VitalsMonitorClient::fetchBed(const std::string& bedId) {
    CURL* curl = curl_easy_init();
    if (!curl) throw std::runtime_error("curl init failed");
    std::string body;
    std::string url = baseUrl_ + "/beds/" + bedId + "/vitals";
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, kServiceUser);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, kServicePassword);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, writeBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) throw std::runtime_error(curl_easy_strerror(rc));
    return body;
}

}  // namespace qh::devices
""",
    ),
    T(
        "lab-integration/device-gateway/src/Config.h",
        "t22_placeholder",
        False,
        r"""#pragma once
// Compile-time defaults. Real values are read from /etc/device-gw/device-gw.ini at start-up;
// these only exist so the unit tests link.
#define QH_DEFAULT_PUMP_USER "admin"
#define QH_DEFAULT_PUMP_PASSWORD "{V}"
#define QH_DEFAULT_HL7_HOST "localhost"
#define QH_DEFAULT_HL7_PORT 6670

namespace qh::devices {
struct GatewayConfig {
    std::string pumpUrl;
    std::string pumpUser = QH_DEFAULT_PUMP_USER;
    std::string pumpPassword = QH_DEFAULT_PUMP_PASSWORD;
    std::string hl7Host = QH_DEFAULT_HL7_HOST;
    int hl7Port = QH_DEFAULT_HL7_PORT;
};
}  // namespace qh::devices
""",
    ),
    T(
        "lab-integration/device-gateway/tests/PumpClientTest.cpp",
        "t22_fake",
        False,
        r"""#include <gtest/gtest.h>

#include "FakeHttpServer.h"
#include "PumpClient.h"

using qh::devices::PumpClient;

TEST(PumpClient, SendsBasicAuth) {
    qh::testing::FakeHttpServer server;
    server.expectBasicAuth("tester", "{V}");
    server.respond(200, R"({"pumps":[]})");

    PumpClient client(server.url(), "tester", "{V}");
    EXPECT_TRUE(client.listPumps().empty());
}

TEST(PumpClient, RejectsWrongPassword) {
    qh::testing::FakeHttpServer server;
    server.respond(401, "");
    PumpClient client(server.url(), "tester", "{V2}");
    EXPECT_THROW(client.listPumps(), std::runtime_error);
}
""",
    ),
    T(
        "lab-integration/bedside-mqtt/bridge.py",
        "t22_pw",
        True,
        r'''"""Bridge bedside sensor MQTT topics (ward/<ward>/bed/<bed>/spo2 ...) into the vitals service."""

import json
import os
import ssl

import paho.mqtt.client as mqtt
import requests

BROKER = os.getenv("MQTT_BROKER", "mqtt-wards.qh.internal")
MQTT_USER = os.getenv("MQTT_USER", "bedside-bridge")
MQTT_PASSWORD = os.getenv("MQTT_PASSWORD", "{V}")
VITALS_API = "https://vitals.qh.internal/api/v1/observations"


def on_message(client, userdata, msg):
    _, ward, _, bed, kind = msg.topic.split("/")
    payload = json.loads(msg.payload)
    requests.post(VITALS_API, json={"ward": ward, "bed": bed, "kind": kind, **payload}, timeout=5)


def main() -> None:
    client = mqtt.Client(client_id="bedside-bridge-01")
    client.username_pw_set(MQTT_USER, MQTT_PASSWORD)
    client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    client.on_message = on_message
    client.connect(BROKER, 8883)
    client.subscribe("ward/+/bed/+/+")
    client.loop_forever()


if __name__ == "__main__":
    main()
''',
    ),
]

# ====================================================================== identity
TEMPLATES += [
    T(
        "identity/keycloak/realms/clinical-realm.json",
        "t22_kc_secret",
        True,
        r"""{
  "id": "clinical",
  "realm": "clinical",
  "displayName": "Quillon Health - klinisk",
  "enabled": true,
  "sslRequired": "external",
  "passwordPolicy": "length(12) and notUsername(undefined) and passwordHistory(5)",
  "clients": [
    {
      "clientId": "fhir-gateway",
      "enabled": true,
      "clientAuthenticatorType": "client-secret",
      "secret": "{V}",
      "serviceAccountsEnabled": true,
      "publicClient": false,
      "protocol": "openid-connect"
    },
    {
      "clientId": "lab-bridge",
      "enabled": true,
      "clientAuthenticatorType": "client-secret",
      "secret": "{V2}",
      "serviceAccountsEnabled": true,
      "publicClient": false
    },
    {
      "clientId": "ohif-viewer",
      "enabled": true,
      "publicClient": true,
      "redirectUris": ["https://pacs01.qh.internal/viewer/*"]
    }
  ],
  "components": {
    "org.keycloak.storage.UserStorageProvider": [
      {
        "name": "quillon-ad",
        "providerId": "ldap",
        "config": {
          "vendor": ["ad"],
          "connectionUrl": ["ldaps://dc01.quillon.local:636"],
          "bindDn": ["CN=svc-keycloak,OU=Service Accounts,DC=quillon,DC=local"],
          "bindCredential": ["{V3}"],
          "usersDn": ["OU=Staff,DC=quillon,DC=local"],
          "editMode": ["READ_ONLY"]
        }
      }
    ]
  }
}
""",
    ),
    T(
        "identity/keycloak/realms/portal-realm.partial-export.json",
        "t22_redacted",
        False,
        r"""{
  "realm": "portal",
  "enabled": true,
  "clients": [
    {
      "clientId": "patient-portal",
      "clientAuthenticatorType": "client-secret",
      "secret": "{V}",
      "redirectUris": ["https://minhelse.quillonhealth.no/*"]
    },
    {
      "clientId": "portal-results-sync",
      "clientAuthenticatorType": "client-secret",
      "secret": "{V2}",
      "serviceAccountsEnabled": true
    }
  ],
  "identityProviders": [
    {
      "alias": "idporten",
      "providerId": "oidc",
      "config": {
        "clientId": "quillon-minhelse",
        "clientSecret": "{V3}",
        "tokenUrl": "https://idporten.no/token"
      }
    }
  ]
}
""",
    ),
    T(
        "identity/keycloak/realms/clinical-users-0.json",
        "t22_kc_hash",
        False,
        r"""{
  "realm": "clinical",
  "users": [
    {
      "username": "break-glass-01",
      "enabled": true,
      "email": "break-glass-01@quillonhealth.no",
      "credentials": [
        {
          "type": "password",
          "userLabel": "break glass (safe in IT office)",
          "createdDate": 1704067200000,
          "secretData": "{\"value\":\"{V}\",\"salt\":\"{V2}\",\"additionalParameters\":{}}",
          "credentialData": "{\"hashIterations\":210000,\"algorithm\":\"pbkdf2-sha512\",\"additionalParameters\":{}}"
        }
      ],
      "realmRoles": ["default-roles-clinical", "break-glass"]
    }
  ]
}
""",
    ),
    T(
        "identity/keycloak/scripts/bootstrap-clients.sh",
        "t22_any_pw",
        True,
        r"""#!/usr/bin/env bash
# Creates the service clients in a fresh realm. Run from the keycloak pod:
#   kubectl -n identity exec -it keycloak-0 -- bash /scripts/bootstrap-clients.sh
set -euo pipefail
KCADM=/opt/keycloak/bin/kcadm.sh

$KCADM config credentials --server https://sso.quillonhealth.no --realm master \
  --user admin --password '{V}'

for client in fhir-gateway lab-bridge portal-results-sync; do
  $KCADM create clients -r clinical -s clientId="$client" -s serviceAccountsEnabled=true \
    -s publicClient=false -s clientAuthenticatorType=client-secret || true
done

# service user for the AD sync job
$KCADM create users -r clinical -s username=svc-adsync -s enabled=true || true
$KCADM set-password -r clinical --username svc-adsync --new-password '{V2}'
""",
    ),
    T(
        "identity/keycloak/docker-compose.dev.yml",
        "t22_vendor_default",
        True,
        r"""# Keycloak on the shared identity test VM (idp-test01.qh.internal). Used by every team's staging.
services:
  keycloak:
    image: quay.io/keycloak/keycloak:24.0
    command: start --hostname=idp-test01.qh.internal --https-certificate-file=/tls/tls.crt --https-certificate-key-file=/tls/tls.key
    environment:
      KEYCLOAK_ADMIN: admin
      KEYCLOAK_ADMIN_PASSWORD: {V}
      KC_DB: postgres
      KC_DB_URL: jdbc:postgresql://pg-idp-test.qh.internal/keycloak
      KC_DB_USERNAME: keycloak
      KC_DB_PASSWORD: ${KC_DB_PASSWORD}
    ports:
      - "8443:8443"
    volumes:
      - ./tls:/tls:ro
""",
    ),
    T(
        "identity/ad/New-StaffAccounts.ps1",
        "t22_weak_pw",
        True,
        r"""<#
.SYNOPSIS
  Creates AD accounts for new staff from the HR export (CSV) and adds them to site groups.
.NOTES
  Run on adm01.quillon.local as a member of "QH-AD-Account-Operators".
  Every new account gets the same initial password and must change it at first logon.
#>
param(
    [Parameter(Mandatory)] [string] $CsvPath,
    [string] $Site = "BGO"
)

Import-Module ActiveDirectory
$initial = ConvertTo-SecureString "{V}" -AsPlainText -Force
$ou = "OU=Staff,OU=$Site,DC=quillon,DC=local"

Import-Csv -Path $CsvPath -Delimiter ';' | ForEach-Object {
    $sam = ($_.Fornavn.Substring(0, 3) + $_.Etternavn.Substring(0, 3)).ToLower()
    New-ADUser -Name "$($_.Fornavn) $($_.Etternavn)" `
        -SamAccountName $sam `
        -UserPrincipalName "$sam@quillonhealth.no" `
        -Path $ou `
        -Department $_.Avdeling `
        -AccountPassword $initial `
        -ChangePasswordAtLogon $true `
        -Enabled $true
    Add-ADGroupMember -Identity "QH-$Site-Staff" -Members $sam
    Write-Host "Opprettet $sam"
}
""",
    ),
    T(
        "identity/ad/Reset-ServiceAccount.ps1",
        "t22_ref_ps",
        False,
        r"""<#
.SYNOPSIS
  Rotates a service account password in AD and writes the new value to Key Vault.
#>
param(
    [Parameter(Mandatory)] [string] $Account,
    [string] $VaultName = "kv-qh-prod-weu"
)

$newPassword = {V}
Set-ADAccountPassword -Identity $Account -Reset -NewPassword (ConvertTo-SecureString $newPassword -AsPlainText -Force)
Set-AzKeyVaultSecret -VaultName $VaultName -Name "ad-$Account" -SecretValue (ConvertTo-SecureString $newPassword -AsPlainText -Force) | Out-Null
Write-Host "Rotated $Account, stored in $VaultName/ad-$Account"
""",
    ),
    T(
        "identity/ldap/sssd.conf",
        "t22_pw",
        True,
        r"""# /etc/sssd/sssd.conf on the Linux jump hosts and integration VMs (managed by Ansible role qh.sssd;
# this copy was taken from int-vm07 during the incident review)
[sssd]
services = nss, pam, ssh, sudo
config_file_version = 2
domains = quillon.local

[domain/quillon.local]
id_provider = ldap
auth_provider = ldap
ldap_uri = ldaps://dc01.quillon.local, ldaps://dc02.quillon.local
ldap_search_base = DC=quillon,DC=local
ldap_schema = ad
ldap_default_bind_dn = CN=svc-linux-bind,OU=Service Accounts,DC=quillon,DC=local
ldap_default_authtok_type = password
ldap_default_authtok = {V}
ldap_tls_reqcert = demand
ldap_tls_cacert = /etc/pki/tls/certs/qh-issuing-ca02.pem
ldap_access_filter = memberOf=CN=QH-Linux-Admins,OU=Groups,DC=quillon,DC=local
cache_credentials = true
""",
    ),
    T(
        "identity/ldap/sssd.conf.j2",
        "t22_ref_ansible",
        False,
        r"""# {{ ansible_managed }}
[sssd]
services = nss, pam, ssh, sudo
config_file_version = 2
domains = {{ sssd_domain }}

[domain/{{ sssd_domain }}]
id_provider = ldap
auth_provider = ldap
ldap_uri = {{ sssd_ldap_uris | join(', ') }}
ldap_search_base = {{ sssd_search_base }}
ldap_schema = ad
ldap_default_bind_dn = {{ sssd_bind_dn }}
ldap_default_authtok_type = password
ldap_default_authtok = {V}
ldap_tls_reqcert = demand
""",
    ),
    T(
        "identity/saml/sp/sp-signing.key",
        "t22_rsa_pem",
        True,
        r"""{V}
""",
    ),
    T(
        "identity/saml/idp-metadata/adfs-quillon.xml",
        "t22_cert_b64",
        False,
        r"""<?xml version="1.0" encoding="utf-8"?>
<EntityDescriptor ID="_6f3e2c1a-9b8d-4c7e-a6f5-1e2d3c4b5a69" entityID="http://adfs.quillon.local/adfs/services/trust" xmlns="urn:oasis:names:tc:SAML:2.0:metadata">
  <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <KeyDescriptor use="signing">
      <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
        <X509Data>
          <X509Certificate>{V}</X509Certificate>
        </X509Data>
      </KeyInfo>
    </KeyDescriptor>
    <KeyDescriptor use="encryption">
      <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
        <X509Data>
          <X509Certificate>{V2}</X509Certificate>
        </X509Data>
      </KeyInfo>
    </KeyDescriptor>
    <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://adfs.quillon.local/adfs/ls/"/>
    <NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</NameIDFormat>
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://adfs.quillon.local/adfs/ls/"/>
  </IDPSSODescriptor>
</EntityDescriptor>
""",
    ),
    T(
        "identity/saml/python-saml/settings.json",
        "t22_key_b64",
        True,
        r"""{
  "strict": true,
  "debug": false,
  "sp": {
    "entityId": "https://portal.klinikum-quillon.de/saml/metadata/",
    "assertionConsumerService": {
      "url": "https://portal.klinikum-quillon.de/saml/acs/",
      "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    },
    "NameIDFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "x509cert": "",
    "privateKey": "{V}"
  },
  "idp": {
    "entityId": "http://adfs.quillon.local/adfs/services/trust",
    "singleSignOnService": {
      "url": "https://adfs.quillon.local/adfs/ls/",
      "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    },
    "x509certMulti": {}
  }
}
""",
    ),
    T(
        "identity/sync/ad_to_keycloak.py",
        "t22_pw",
        True,
        r'''"""Nightly sync of AD group membership (QH-*-Clinicians) into Keycloak roles."""

from keycloak import KeycloakAdmin
from ldap3 import ALL, NTLM, Connection, Server

AD_SERVER = "ldaps://dc01.quillon.local"
AD_USER = "QUILLON\\svc-adsync"
AD_PASSWORD = "{V}"

KC_URL = "https://sso.quillonhealth.no/"
KC_USER = "svc-adsync"
KC_PASSWORD = "{V2}"


def clinicians() -> dict[str, set[str]]:
    conn = Connection(Server(AD_SERVER, get_info=ALL), user=AD_USER, password=AD_PASSWORD, authentication=NTLM, auto_bind=True)
    conn.search("OU=Groups,DC=quillon,DC=local", "(cn=QH-*-Clinicians)", attributes=["cn", "member"])
    return {entry.cn.value: {m.split(",")[0][3:] for m in entry.member.values} for entry in conn.entries}


def main() -> None:
    kc = KeycloakAdmin(server_url=KC_URL, username=KC_USER, password=KC_PASSWORD, realm_name="clinical", user_realm_name="clinical")
    for group, members in clinicians().items():
        role = group.lower().replace("qh-", "").replace("-clinicians", "-clinician")
        for username in members:
            user_id = kc.get_user_id(username)
            if user_id:
                kc.assign_realm_roles(user_id, [kc.get_realm_role(role)])


if __name__ == "__main__":
    main()
''',
    ),
    T(
        "identity/entra/register-portal-app.ps1",
        "t22_entra_secret",
        True,
        r"""# Registers the clinician portal in Entra ID and grants Graph User.Read.
# Output of the first run is pasted below for the handover (see docs/handover/entra.md).
Connect-MgGraph -Scopes "Application.ReadWrite.All"
$app = New-MgApplication -DisplayName "QH Clinician Portal" -SignInAudience AzureADMyOrg `
    -Web @{ RedirectUris = @("https://clinician.quillonhealth.no/auth") }
$secret = Add-MgApplicationPassword -ApplicationId $app.Id -PasswordCredential @{ DisplayName = "prod-2024" }
Write-Output $secret.SecretText

# PS> .\register-portal-app.ps1
# {V}
# (stored in kv-qh-portal as clinician-portal-client-secret)
""",
    ),
    T(
        "identity/entra/app-registrations.csv",
        "t22_uuid",
        False,
        r"""DisplayName;AppId;ObjectId;Owner;SecretExpiry
QH Clinician Portal;{V};{V2};team-portal;2025-09-30
QH FHIR Gateway;{V3};{V4};team-integration;2025-06-15
QH DW Airflow;{V5};{V6};team-data;2025-03-31
""",
    ),
]

# ====================================================================== data warehouse
TEMPLATES += [
    T(
        "data-warehouse/sqlserver/security/01_create_logins.sql",
        "t22_sql_pw",
        True,
        r"""-- DW logins on SQL-DW01 (prod). Run as sysadmin. Reviewed by: mhansen 2024-01-22
USE [master];
GO
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'dw_etl')
    CREATE LOGIN [dw_etl] WITH PASSWORD = N'{V}', DEFAULT_DATABASE = [QH_DW], CHECK_EXPIRATION = OFF, CHECK_POLICY = ON;
GO
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'powerbi_reader')
    CREATE LOGIN [powerbi_reader] WITH PASSWORD = N'{V2}', DEFAULT_DATABASE = [QH_DW], CHECK_POLICY = OFF;
GO
CREATE LOGIN [QUILLON\QH-DW-Analysts] FROM WINDOWS WITH DEFAULT_DATABASE = [QH_DW];
GO
USE [QH_DW];
CREATE USER [dw_etl] FOR LOGIN [dw_etl];
ALTER ROLE [db_owner] ADD MEMBER [dw_etl];
CREATE USER [powerbi_reader] FOR LOGIN [powerbi_reader];
ALTER ROLE [db_datareader] ADD MEMBER [powerbi_reader];
GO
""",
    ),
    T(
        "data-warehouse/sqlserver/security/99_revlogin_output.sql",
        "t22_mssql_hash",
        False,
        r"""-- Output of sp_help_revlogin on SQL-DW01, 2024-02-02, for the move to SQL-DW02.
-- Login: dw_etl
CREATE LOGIN [dw_etl] WITH PASSWORD = {V} HASHED, SID = 0x5A1C7E0D3B2F4E6A8C9D0E1F2A3B4C5D, DEFAULT_DATABASE = [QH_DW], CHECK_POLICY = ON, CHECK_EXPIRATION = OFF
-- Login: powerbi_reader
CREATE LOGIN [powerbi_reader] WITH PASSWORD = {V2} HASHED, SID = 0x7B2D8F1E4C3A5B6D9E0F1A2B3C4D5E6F, DEFAULT_DATABASE = [QH_DW], CHECK_POLICY = OFF, CHECK_EXPIRATION = OFF
-- Login: r_analytics
CREATE LOGIN [r_analytics] WITH PASSWORD = {V3} HASHED, SID = 0x1C3E5A7B9D0F2A4C6E8B0D2F4A6C8E0B, DEFAULT_DATABASE = [QH_DW], CHECK_POLICY = ON, CHECK_EXPIRATION = OFF
""",
    ),
    T(
        "data-warehouse/ssis/QH_DW_Load.dtsConfig",
        "t22_sql_pw",
        True,
        r"""<?xml version="1.0"?>
<DTSConfiguration>
  <DTSConfigurationHeading>
    <DTSConfigurationFileInfo GeneratedBy="QUILLON\mhansen" GeneratedFromPackageName="QH_DW_Load" GeneratedDate="14.03.2023 09:12:44"/>
  </DTSConfigurationHeading>
  <Configuration ConfiguredType="Property" Path="\Package.Connections[EHR_Source].Properties[ConnectionString]" ValueType="String">
    <ConfiguredValue>Data Source=SQL-EHR02\EHR;User ID=dw_extract;Password={V};Initial Catalog=EhrCore;Provider=SQLNCLI11.1;</ConfiguredValue>
  </Configuration>
  <Configuration ConfiguredType="Property" Path="\Package.Connections[LIS_Source].Properties[Password]" ValueType="String">
    <ConfiguredValue>{V2}</ConfiguredValue>
  </Configuration>
</DTSConfiguration>
""",
    ),
    T(
        "data-warehouse/postgres/roles.sql",
        "t22_scram",
        False,
        r"""-- pg_dumpall --roles-only from pg-dw01, 2024-03-01 (password verifiers are SCRAM hashes)
CREATE ROLE dw_etl;
ALTER ROLE dw_etl WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION PASSWORD '{V}';
CREATE ROLE metabase_ro;
ALTER ROLE metabase_ro WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V2}';
CREATE ROLE airflow;
ALTER ROLE airflow WITH LOGIN PASSWORD '{V3}';
GRANT pg_read_all_data TO metabase_ro;
""",
    ),
    T(
        "data-warehouse/ops/.pgpass",
        "t22_pw",
        True,
        r"""# hostname:port:database:username:password  (chmod 600, used by the nightly pg_dump cron on dw-util01)
pg-dw01.qh.internal:5432:dw:dw_etl:{V}
pg-ehr01.qh.internal:5432:results:dw_extract:{V2}
""",
    ),
    T(
        "data-warehouse/airflow/airflow.cfg",
        "t22_fernet",
        True,
        r"""[core]
dags_folder = /opt/airflow/dags
executor = CeleryExecutor
load_examples = False
fernet_key = {V}
default_timezone = Europe/Oslo

[database]
sql_alchemy_conn = postgresql+psycopg2://airflow@pg-dw01.qh.internal/airflow

[webserver]
base_url = https://airflow.dw.qh.internal
secret_key = {V2}
rbac = True

[celery]
broker_url = redis://redis-airflow.qh.internal:6379/0
""",
    ),
    T(
        "data-warehouse/airflow/.env",
        "t22_url_pw",
        True,
        r"""# Airflow connections for docker compose on dw-airflow01
AIRFLOW_CONN_DW_MSSQL=mssql://dw_etl:{V}@sql-dw01.qh.internal:1433/QH_DW
AIRFLOW_CONN_EHR_PG=postgres://dw_extract:{V2}@pg-ehr01.qh.internal:5432/results
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:{V3}@pg-dw01.qh.internal/airflow
AIRFLOW__CORE__LOAD_EXAMPLES=False
AIRFLOW_UID=50000
""",
    ),
    T(
        "data-warehouse/airflow/dags/lab_results_daily.py",
        "t22_ref_py",
        False,
        r'''"""Daily load of lab results from the LIS into the DW (fact_lab_result)."""

from datetime import datetime

from airflow import DAG
from airflow.hooks.base import BaseHook
from airflow.models import Variable
from airflow.operators.python import PythonOperator


def extract_and_load(**context):
    conn = BaseHook.get_connection("dw_mssql")
    sql_password = {V}
    lis_password = {V2}
    from qh_dw.loaders import load_lab_results

    load_lab_results(
        day=context["ds"],
        dw_host=conn.host,
        dw_user=conn.login,
        dw_password=sql_password,
        lis_password=lis_password,
    )


with DAG(
    dag_id="lab_results_daily",
    start_date=datetime(2024, 1, 1),
    schedule="30 2 * * *",
    catchup=False,
    tags=["lab", "dw"],
) as dag:
    PythonOperator(task_id="extract_and_load", python_callable=extract_and_load)
''',
    ),
    T(
        "data-warehouse/spark/conf/spark-defaults.conf",
        "t22_storage_key",
        True,
        r"""spark.master                      yarn
spark.submit.deployMode           cluster
spark.sql.session.timeZone        Europe/Oslo
spark.serializer                  org.apache.spark.serializer.KryoSerializer
spark.executor.memory             8g
spark.driver.memory               4g

# ADLS Gen2 lake (stqhdwprod), account key until the managed identity works on the HDInsight cluster
spark.hadoop.fs.azure.account.auth.type.stqhdwprod.dfs.core.windows.net   SharedKey
spark.hadoop.fs.azure.account.key.stqhdwprod.dfs.core.windows.net         {V}
spark.hadoop.fs.azure.account.key.stqhimaging.dfs.core.windows.net        {V2}
""",
    ),
    T(
        "data-warehouse/r/readmission_model/01_extract.R",
        "t22_pw",
        True,
        r"""# 30-day readmission model, data extract. Author: I. Fernández (Data team Madrid)
library(DBI)
library(odbc)
library(dplyr)

con <- dbConnect(
  odbc::odbc(),
  Driver   = "ODBC Driver 18 for SQL Server",
  Server   = "sql-dw01.qh.internal",
  Database = "QH_DW",
  UID      = "r_analytics",
  PWD      = "{V}",
  Encrypt  = "yes"
)

episodes <- tbl(con, in_schema("mart", "episode")) %>%
  filter(discharge_date >= as.Date("2022-01-01")) %>%
  select(episode_id, patient_key, site, ward, los_days, discharge_date, readmit_30d) %>%
  collect()

saveRDS(episodes, "data/episodes.rds")
dbDisconnect(con)
""",
    ),
    T(
        "data-warehouse/r/.Renviron",
        "t22_any_pw",
        True,
        r"""DW_SERVER=sql-dw01.qh.internal
DW_DATABASE=QH_DW
DW_USER=r_analytics
DW_PASSWORD={V}
REDCAP_API_URL=https://redcap.qh.internal/api/
R_LIBS_USER=~/R/library
""",
    ),
    T(
        "data-warehouse/r/los_dashboard/global.R",
        "t22_ref_r",
        False,
        r"""library(shiny)
library(DBI)

dw_connect <- function() {
  DBI::dbConnect(
    odbc::odbc(),
    Driver   = "ODBC Driver 18 for SQL Server",
    Server   = Sys.getenv("DW_SERVER"),
    Database = "QH_DW",
    UID      = Sys.getenv("DW_USER"),
    PWD      = {V},
    Encrypt  = "yes"
  )
}

# Texts shown in the app (nb / es)
labels <- list(
  nb = list(title = "Liggetid per avdeling", login = "Logg inn med Quillon-passord"),
  es = list(title = "Estancia media por servicio", login = "Inicie sesión con su contraseña")
)
""",
    ),
    T(
        "data-warehouse/notebooks/imaging_volume_exploration.ipynb",
        "t22_storage_conn",
        True,
        r"""{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Imaging volume per modality (2023)\n", "Pulls the DICOM index export from blob storage."]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\n",
    "from azure.storage.blob import BlobServiceClient\n",
    "\n",
    "conn_str = \"{V}\"\n",
    "svc = BlobServiceClient.from_connection_string(conn_str)\n",
    "blob = svc.get_blob_client(\"exports\", \"dicom-index-2023.parquet\")\n",
    "with open(\"/tmp/idx.parquet\", \"wb\") as fh:\n",
    "    fh.write(blob.download_blob().readall())\n",
    "df = pd.read_parquet(\"/tmp/idx.parquet\")"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 4,
   "metadata": {},
   "outputs": [],
   "source": ["df.groupby([\"site\", \"modality\"]).study_uid.nunique().unstack()"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    T(
        "data-warehouse/dbt/profiles.yml",
        "t22_placeholder",
        False,
        r"""# Example profile; copy to ~/.dbt/profiles.yml. CI uses env_var() instead.
qh_dw:
  target: dev
  outputs:
    dev:
      type: sqlserver
      driver: "ODBC Driver 18 for SQL Server"
      server: sql-dw-dev.qh.internal
      port: 1433
      database: QH_DW_DEV
      schema: "dbt_{{ env_var('USER') }}"
      user: your_username
      password: "{V}"
      encrypt: true
""",
    ),
]

# ====================================================================== infrastructure
TEMPLATES += [
    T(
        "infrastructure/terraform/azure/providers.tf",
        "t22_entra_secret",
        True,
        r"""terraform {
  required_version = ">= 1.6"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 3.100"
    }
  }
  backend "azurerm" {
    resource_group_name  = "rg-qh-tfstate"
    storage_account_name = "stqhtfstate"
    container_name       = "tfstate"
    key                  = "platform.tfstate"
  }
}

provider "azurerm" {
  features {}
  subscription_id = "4c1f7a2e-8d3b-4e6f-9a0c-2b5d7e9f1a3c"
  tenant_id       = "b8e2d4f6-1a3c-4e5b-8d7f-0c2e4a6b8d0f"
  client_id       = "e3a5c7b9-2d4f-4a6c-8e0b-1f3d5b7a9c2e"
  client_secret   = "{V}"
}
""",
    ),
    T(
        "infrastructure/terraform/azure/sql.tf",
        "t22_ref_tf",
        False,
        r"""resource "random_password" "sql_admin" {
  length  = 24
  special = true
}

resource "azurerm_mssql_server" "dw" {
  name                         = "sql-qh-dw-prod"
  resource_group_name          = azurerm_resource_group.dw.name
  location                     = "norwayeast"
  version                      = "12.0"
  administrator_login          = "qhsqladmin"
  administrator_login_password = {V}
  minimum_tls_version          = "1.2"

  azuread_administrator {
    login_username = "QH-DW-SQL-Admins"
    object_id      = "7d9f1b3e-5a7c-4e9b-8d1f-3a5c7e9b1d2f"
  }
}

resource "azurerm_key_vault_secret" "sql_admin" {
  name         = "sql-dw-admin-password"
  value        = {V2}
  key_vault_id = azurerm_key_vault.platform.id
}
""",
    ),
    T(
        "infrastructure/terraform/vsphere/terraform.tfvars",
        "t22_pw",
        True,
        r"""# On-prem VMware (BGO datacenter) - tfvars for the integration VM cluster
vsphere_server     = "vcsa01.bgo.qh.internal"
vsphere_user       = "svc-terraform@vsphere.local"
vsphere_password   = "{V}"
datacenter         = "DC-BGO"
cluster            = "CL-INT-01"
datastore          = "vsan-int-01"
network            = "VLAN-220-Integration"
template_name      = "tpl-rhel9-2024-02"
domain_join_user   = "svc-domainjoin"
domain_join_pass   = "{V2}"
vm_count           = 4
""",
    ),
    T(
        "infrastructure/terraform/vsphere/terraform.tfvars.example",
        "t22_placeholder",
        False,
        r"""vsphere_server     = "vcsa01.bgo.qh.internal"
vsphere_user       = "svc-terraform@vsphere.local"
vsphere_password   = "{V}"
datacenter         = "DC-BGO"
cluster            = "CL-INT-01"
domain_join_user   = "svc-domainjoin"
domain_join_pass   = "{V2}"
""",
    ),
    T(
        "infrastructure/arm/keyvault-sql.parameters.json",
        "t22_key_name",
        False,
        r"""{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "sqlServerName": { "value": "sql-qh-ehr-prod" },
    "administratorLogin": { "value": "qhsqladmin" },
    "administratorLoginPassword": {
      "reference": {
        "keyVault": {
          "id": "/subscriptions/4c1f7a2e-8d3b-4e6f-9a0c-2b5d7e9f1a3c/resourceGroups/rg-qh-security/providers/Microsoft.KeyVault/vaults/kv-qh-prod-weu"
        },
        "secretName": "{V}"
      }
    }
  }
}
""",
    ),
    T(
        "infrastructure/azure/sp-github-deploy.json",
        "t22_entra_secret",
        True,
        r"""{
  "appId": "5b7d9f1a-3c5e-4a7b-9d1f-2e4a6c8b0d3e",
  "displayName": "sp-qh-aks-deploy",
  "password": "{V}",
  "tenant": "b8e2d4f6-1a3c-4e5b-8d7f-0c2e4a6b8d0f"
}
""",
    ),
    T(
        "infrastructure/vmware/Connect-Vcenter.ps1",
        "t22_any_pw",
        True,
        r"""# Snapshot all integration VMs before the Mirth upgrade (change CHG0041877)
Import-Module VMware.PowerCLI
Set-PowerCLIConfiguration -InvalidCertificateAction Ignore -Confirm:$false | Out-Null

Connect-VIServer -Server vcsa01.bgo.qh.internal -User 'administrator@vsphere.local' -Password '{V}'

Get-VM -Location (Get-Cluster CL-INT-01) | Where-Object Name -like 'int-vm*' | ForEach-Object {
    New-Snapshot -VM $_ -Name "pre-mirth-4.5" -Description "CHG0041877" -Memory:$false -Quiesce:$true
}
Disconnect-VIServer -Confirm:$false
""",
    ),
    T(
        "infrastructure/vmware/govc.env",
        "t22_pw",
        True,
        r"""export GOVC_URL=https://vcsa02.osl.qh.internal/sdk
export GOVC_USERNAME=svc-govc@vsphere.local
export GOVC_PASSWORD='{V}'
export GOVC_INSECURE=1
export GOVC_DATACENTER=DC-OSL
export GOVC_DATASTORE=vsan-osl-01
""",
    ),
    T(
        "infrastructure/ansible/inventories/prod/hosts.ini",
        "t22_any_pw",
        True,
        r"""[mirth]
int-vm01.qh.internal
int-vm02.qh.internal

[orthanc]
orthanc-bergen.qh.internal
orthanc-oslo.qh.internal

[windows_interfaces]
hl7svc01.quillon.local
hl7svc02.quillon.local

[windows_interfaces:vars]
ansible_connection=winrm
ansible_winrm_transport=ntlm
ansible_port=5986
ansible_user=QUILLON\svc-ansible
ansible_password={V}

[linux:children]
mirth
orthanc

[linux:vars]
ansible_user=ansible
ansible_become_pass={V2}
""",
    ),
    T(
        "infrastructure/ansible/inventories/prod/group_vars/all/vault.yml",
        "t22_ansible_vault",
        False,
        r"""{V}
""",
    ),
    T(
        "infrastructure/ansible/inventories/prod/group_vars/all/vars.yml",
        "t22_ref_ansible",
        False,
        r"""---
sssd_domain: quillon.local
sssd_bind_dn: CN=svc-linux-bind,OU=Service Accounts,DC=quillon,DC=local
sssd_bind_password: "{V}"
sql_sa_password: "{V2}"
vcenter_password: "{V3}"
ntp_servers:
  - ntp1.qh.internal
  - ntp2.qh.internal
""",
    ),
    T(
        "infrastructure/ansible/roles/orthanc/defaults/main.yml",
        "t22_ansible_vault",
        False,
        r"""---
orthanc_version: "1.12.3"
orthanc_http_port: 8042
orthanc_dicom_port: 4242
orthanc_admin_user: admin
orthanc_admin_password: !vault |
  {IV}
orthanc_pg_host: pg-imaging01.qh.internal
""",
    ),
    T(
        "infrastructure/ansible/files/ssh/ansible_id_ed25519",
        "t22_openssh_key",
        True,
        r"""{V}
""",
    ),
    T(
        "infrastructure/ansible/files/ssh/authorized_keys",
        "t22_ssh_pub",
        False,
        r"""# managed by ansible role qh.base - do not edit on the host
{V}
{V2}
{V3}
""",
    ),
    T(
        "infrastructure/k8s/fhir/secret.yaml",
        "t22_b64_pw",
        True,
        r"""apiVersion: v1
kind: Secret
metadata:
  name: hapi-fhir-db
  namespace: fhir
type: Opaque
data:
  username: aGFwaQ==
  password: {V}
  kafka-sasl-password: {V2}
""",
    ),
    T(
        "infrastructure/k8s/fhir/secret.enc.yaml",
        "t22_sops",
        False,
        r"""apiVersion: v1
kind: Secret
metadata:
  name: hapi-fhir-db
  namespace: fhir
type: Opaque
stringData:
  password: {V}
  kafka-sasl-password: {V2}
sops:
  azure_kv:
    - vault_url: https://kv-qh-prod-weu.vault.azure.net
      name: sops-key
      version: 3f8a1c5e7b9d4f2a6c8e0b1d3f5a7c9e
      created_at: "2024-03-04T09:21:17Z"
  lastmodified: "2024-03-04T09:21:18Z"
  mac: {V3}
  version: 3.8.1
""",
    ),
    T(
        "infrastructure/helm/mirth/values-prod.yaml",
        "t22_pw",
        True,
        r"""replicaCount: 1
image:
  repository: qhacrprod.azurecr.io/mirth-connect
  tag: 4.4.2-qh3

mirth:
  adminUser: admin
  adminPassword: "{V}"
  database:
    type: postgres
    url: jdbc:postgresql://pg-mirth01.qh.internal:5432/mirthdb
    username: mirth
    password: "{V2}"

service:
  type: LoadBalancer
  mllpPorts: [6661, 6662, 6670]

resources:
  limits:
    memory: 4Gi
""",
    ),
    T(
        "infrastructure/helm/mirth/values-staging.yaml",
        "t22_secret_name",
        False,
        r"""replicaCount: 1
image:
  repository: qhacrprod.azurecr.io/mirth-connect
  tag: 4.4.2-qh3

mirth:
  adminUser: admin
  existingSecret: {V}
  database:
    type: postgres
    url: jdbc:postgresql://pg-mirth-stg.qh.internal:5432/mirthdb
    username: mirth
    existingSecret: {V2}
    existingSecretPasswordKey: password
""",
    ),
    T(
        "infrastructure/docker/ci-runner/.docker/config.json",
        "t22_docker_auth",
        True,
        r"""{
  "auths": {
    "qhacrprod.azurecr.io": {
      "auth": "{V}"
    },
    "registry.gitlab.qh.internal": {
      "auth": "{V2}"
    }
  },
  "credHelpers": {
    "mcr.microsoft.com": ""
  }
}
""",
    ),
    T(
        "infrastructure/docker/fhir-gateway/Dockerfile",
        "t22_ref_env",
        False,
        r"""FROM mcr.microsoft.com/dotnet/sdk:8.0 AS build
WORKDIR /src
COPY NuGet.Config .
COPY Quillon.Fhir.Gateway/*.csproj Quillon.Fhir.Gateway/
RUN --mount=type=secret,id=nuget_pat \
    NUGET_PAT=$(cat /run/secrets/nuget_pat) dotnet restore Quillon.Fhir.Gateway
COPY . .
RUN dotnet publish Quillon.Fhir.Gateway -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:8.0
WORKDIR /app
COPY --from=build /app .
ENV ASPNETCORE_URLS=https://+:8443
ENV ASPNETCORE_Kestrel__Certificates__Default__Path=/tls/tls.pfx
ENV ASPNETCORE_Kestrel__Certificates__Default__Password={V}
ENTRYPOINT ["dotnet", "Quillon.Fhir.Gateway.dll"]
""",
    ),
    T(
        "infrastructure/scripts/backup-orthanc-to-blob.sh",
        "t22_sas_sig",
        True,
        r"""#!/usr/bin/env bash
# Nightly copy of the Orthanc storage folder to cool-tier blob storage (immutable container).
set -euo pipefail
SRC=/var/lib/orthanc/db
DEST="https://stqhbackup01.blob.core.windows.net/orthanc-bgo?sv=2022-11-02&ss=b&srt=co&sp=rwlac&se=2025-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig={V}"

azcopy sync "$SRC" "$DEST" --recursive --delete-destination=false --log-level=WARNING
echo "$(date -Is) orthanc backup done" >> /var/log/qh-backup.log
""",
    ),
    T(
        "infrastructure/local-dev/azurite.md",
        "t22_azurite_key",
        False,
        r"""# Local blob storage with Azurite

The imaging export and the DW notebooks can run against Azurite locally. Azurite uses the
well-known development account `devstoreaccount1` with the documented key:

```
DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={V};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;
```

Start it with `docker run -p 10000:10000 mcr.microsoft.com/azure-storage/azurite azurite-blob --blobHost 0.0.0.0`.
""",
    ),
    T(
        "infrastructure/servicebus/appsettings.json",
        "t22_sb_key",
        True,
        r"""{
  "ServiceBus": {
    "ConnectionString": "Endpoint=sb://sb-qh-integration-prod.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={V}",
    "AdtTopic": "adt-events",
    "ResultsTopic": "lab-results",
    "Subscription": "fhir-gateway"
  },
  "Retry": { "MaxAttempts": 5, "DelaySeconds": 10 }
}
""",
    ),
    T(
        "infrastructure/backup/veeam-offsite.ini",
        "t22_aws_pair_ini",
        True,
        r"""; Offsite copy of the Veeam repository to the S3-compatible bucket of the backup partner
[offsite]
endpoint = https://s3.eu-north-1.amazonaws.com
bucket = qh-veeam-offsite-bgo
region = eu-north-1
{V}
immutability_days = 30
""",
    ),
]

# ====================================================================== CI
TEMPLATES += [
    T(
        "ci/azure-devops/fhir-gateway.azure-pipelines.yml",
        "t22_ref_ado",
        False,
        r"""trigger:
  branches:
    include: [main, release/*]

pool:
  vmImage: ubuntu-latest

variables:
  - group: fhir-gateway-prod   # linked to kv-qh-prod-weu
  - name: buildConfiguration
    value: Release

stages:
  - stage: build
    jobs:
      - job: build
        steps:
          - task: NuGetAuthenticate@1
          - script: dotnet test --configuration $(buildConfiguration)
            displayName: test
            env:
              ConnectionStrings__Ehr: "Server=sql-ehr-ci.qh.internal;Database=EhrCore;User ID=fhir_ci;Password={V}"
          - task: Docker@2
            inputs:
              containerRegistry: qhacrprod
              repository: fhir-gateway
              command: buildAndPush
              tags: $(Build.BuildId)
  - stage: deploy
    jobs:
      - deployment: aks
        environment: fhir-prod
        strategy:
          runOnce:
            deploy:
              steps:
                - script: |
                    helm upgrade --install fhir-gateway ./chart \
                      --set image.tag=$(Build.BuildId) \
                      --set fhir.clientSecret={V2} \
                      --set kafka.saslPassword={V3}
""",
    ),
    T(
        "ci/azure-devops/dw-release.azure-pipelines.yml",
        "t22_sql_pw",
        True,
        r"""# DW release: deploys the dacpac to SQL-DW01. (Variables below should move to a variable group.)
trigger: none

pool: QH-OnPrem-Windows

variables:
  dwServer: sql-dw01.qh.internal
  dwDatabase: QH_DW
  dwUser: dw_deploy
  dwPassword: '{V}'

steps:
  - task: SqlDacpacDeploymentOnMachineGroup@0
    inputs:
      TaskType: dacpac
      DacpacFile: '$(Pipeline.Workspace)/drop/QH_DW.dacpac'
      TargetMethod: server
      ServerName: $(dwServer)
      DatabaseName: $(dwDatabase)
      AuthScheme: sqlServerAuthentication
      SqlUsername: $(dwUser)
      SqlPassword: $(dwPassword)
""",
    ),
    T(
        "ci/gitlab/imaging.gitlab-ci.yml",
        "t22_ref_gitlab",
        False,
        r"""stages: [test, build, deploy]

variables:
  DOCKER_TLS_CERTDIR: "/certs"

test:
  stage: test
  image: python:3.12
  script:
    - pip install -r requirements-dev.txt
    - pytest -q tests/

build:
  stage: build
  image: docker:25
  services: [docker:25-dind]
  script:
    - echo "{V}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
    - docker build -t "$CI_REGISTRY_IMAGE/orthanc-router:$CI_COMMIT_SHORT_SHA" .
    - docker push "$CI_REGISTRY_IMAGE/orthanc-router:$CI_COMMIT_SHORT_SHA"

deploy:
  stage: deploy
  image: alpine:3.19
  script:
    - apk add --no-cache curl
    - curl -fsS -u "admin:{V2}" -X POST https://orthanc-bergen.qh.internal:8042/tools/reload-plugins
  rules:
    - if: $CI_COMMIT_BRANCH == "main"
""",
    ),
    T(
        "ci/gitlab/trigger-downstream.sh",
        "t22_gitlab_trigger",
        True,
        r"""#!/bin/sh
# Triggers the PACS config pipeline after the DICOM node list changes (project 412).
curl --fail -X POST \
  -F token={V} \
  -F ref=main \
  -F "variables[NODES_CHANGED]=true" \
  https://gitlab.qh.internal/api/v4/projects/412/trigger/pipeline
""",
    ),
    T(
        "ci/gitlab-runner/config.toml",
        "t22_gitlab",
        True,
        r"""concurrent = 4
check_interval = 0

[session_server]
  session_timeout = 1800

[[runners]]
  name = "ci03-docker"
  url = "https://gitlab.qh.internal/"
  id = 57
  token = "{V}"
  token_obtained_at = 2024-02-12T10:41:07Z
  executor = "docker"
  [runners.docker]
    tls_verify = false
    image = "alpine:3.19"
    privileged = true
    volumes = ["/certs/client", "/cache"]
""",
    ),
    T(
        "ci/nuget/NuGet.Config",
        "t22_ado_pat",
        True,
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
    <add key="qh-nuget" value="https://pkgs.dev.azure.com/quillonhealth/_packaging/qh-nuget/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <qh-nuget>
      <add key="Username" value="build" />
      <add key="ClearTextPassword" value="{V}" />
    </qh-nuget>
  </packageSourceCredentials>
</configuration>
""",
    ),
    T(
        "ci/scripts/publish-hl7-lib.ps1",
        "t22_nuget_key",
        True,
        r"""# Publishes Quillon.Hl7.Common to nuget.org (public package, MIT). Run from a clean checkout.
param([string]$Version = (Get-Content .\version.txt))
dotnet pack .\src\Quillon.Hl7.Common -c Release -p:PackageVersion=$Version -o .\out
dotnet nuget push ".\out\Quillon.Hl7.Common.$Version.nupkg" `
    --api-key {V} `
    --source https://api.nuget.org/v3/index.json
""",
    ),
    T(
        "ci/scripts/mirror-vendor-repo.sh",
        "t22_github",
        True,
        r"""#!/usr/bin/env bash
# Mirrors the vendor's private GitHub repo (PACS plugins) into our GitLab every night.
set -euo pipefail
WORK=$(mktemp -d)
git clone --mirror "https://qh-mirror-bot:{V}@github.com/imaging-vendor/qh-pacs-plugins.git" "$WORK/repo"
cd "$WORK/repo"
git push --mirror "https://mirror:${GITLAB_MIRROR_TOKEN}@gitlab.qh.internal/imaging/vendor-pacs-plugins.git"
rm -rf "$WORK"
""",
    ),
    T(
        "ci/logs/build-20240311.4.log",
        "t22_redacted",
        False,
        r"""2024-03-11T08:14:02.1187Z ##[section]Starting: NuGetAuthenticate
2024-03-11T08:14:03.5521Z Setting up the credential provider to use the identity 'Quillon Build Service' for feeds in your organization/collection starting with:
2024-03-11T08:14:03.5522Z   https://pkgs.dev.azure.com/quillonhealth/
2024-03-11T08:14:05.0012Z ##[section]Starting: helm upgrade
2024-03-11T08:14:05.0104Z helm upgrade --install fhir-gateway ./chart --set image.tag=20240311.4 --set fhir.clientSecret={V}
2024-03-11T08:14:09.4410Z Release "fhir-gateway" has been upgraded. Happy Helming!
2024-03-11T08:14:09.4511Z SQL password: {V2}
2024-03-11T08:14:09.5000Z ##[section]Finishing: helm upgrade
""",
    ),
    T(
        "ci/git/commit-log.txt",
        "t22_git_sha",
        False,
        r"""commit {V}
Author: Tone Berg <tone.berg@quillonhealth.no>
Date:   Mon Mar 11 09:02:44 2024 +0100

    mirth: move ehrDbPassword to the configuration map (INT-2409)

commit {V2}
Author: Jonas Weber <jonas.weber@klinikum-quillon.de>
Date:   Fri Mar 8 16:20:11 2024 +0100

    orthanc: rotate pacs_router password, remove it from autorouting.py

commit {V3}
Author: Lucía Moreno <lucia.moreno@quillonhealth.es>
Date:   Thu Mar 7 11:45:02 2024 +0100

    docs: redact the PACS handover table (SYS-3381)
""",
    ),
]

# ====================================================================== docs, runbooks, handovers, chat
TEMPLATES += [
    T(
        "docs/runbooks/de/mirth-neustart.md",
        "t22_any_pw",
        True,
        r"""# Runbook: Mirth Connect neu starten (Klinikum, Standort DUS)

**Gilt für:** mirth-dus01.klinikum-quillon.de
**Bereitschaft:** Integrationsteam, Tel. intern 4711

## Symptome
- Kanäle `ADT_in` und `ORU_out` stehen auf *Stopped* oder die Queue wächst über 500 Nachrichten.

## Schritte
1. Auf der Admin-Konsole anmelden (https://mirth-dus01.klinikum-quillon.de:8443).
   Benutzer ist `admin`, das Passwort lautet `{V}` (bis zur Umstellung auf Keycloak-SSO).
2. Alle Kanäle stoppen, dann den Dienst neu starten:
   ```
   sudo systemctl restart mcservice
   ```
3. Datenbank prüfen: `psql -h pg-dus01 -U mirth -d mirthdb` (Passwort: `{V2}`).
4. Kanäle wieder starten, Queue beobachten.

## Eskalation
Bei Fehlern im Kanal `ORU_out` das Labor (Hr. Schäfer) informieren.
""",
    ),
    T(
        "docs/runbooks/nb/orthanc-feilsoking.md",
        "t22_redacted",
        False,
        r"""# Feilsøking: Orthanc Bergen

## Innlogging
Admin-brukeren heter `admin`. Passordet ligger i Key Vault (`kv-qh-prod-weu`, hemmelighet
`orthanc-bgo-admin`) og skal **ikke** skrives inn her. Eksempel fra forrige hendelse:

```
$ curl -u admin:{V} https://orthanc-bergen.qh.internal:8042/system
```

Passordet til PostgreSQL-brukeren `orthanc`: {V2}

## Vanlige feil
- *"Unknown resource"*: studien er allerede flyttet til PACS.
- Disken full: sjekk `df -h /var/lib/orthanc` og kjør opprydding (se egen rutine).
""",
    ),
    T(
        "docs/handover/es/entrega-pacs-proveedor.md",
        "t22_pw",
        True,
        r"""# Acta de entrega - PACS Hospital Quillon Madrid (proveedor: ImagenSalud S.L.)

Fecha: 2024-02-19
Responsable QH: Lucía Moreno (Sistemas)

## Accesos entregados
| Sistema | URL / host | Usuario | Contraseña |
|---|---|---|---|
| Consola PACS | https://pacs-mad.quillonhealth.es/admin | qh_admin | {V} |
| Base de datos | pg-pacs-mad.qh.internal:5432 | pacs | {V2} |
| Worklist (MWL) | mwl-mad.qh.internal:11112 | mwl_feed | {V3} |

Las contraseñas deben cambiarse tras la entrega (ticket SYS-3381).

## Pendiente
- Certificado TLS definitivo para el puerto DICOM 2762.
- Integración con Keycloak (realm `clinical`).
""",
    ),
    T(
        "docs/handover/en/vendor-handover-lis.md",
        "t22_role_word",
        False,
        r"""# Vendor handover: LIS upgrade (test environment)

The vendor's installation guide uses these generic values; they are **not** our accounts:

- Username: `user`
- Password: `{V}`
- Database user: `lisadmin`, password: `{V2}`

For our environments the credentials are provisioned by the integration team and stored in
Key Vault (`kv-qh-integration`). Ask in #integrasjon if you need access.
""",
    ),
    T(
        "docs/chat/slack-export/integrasjon/2024-03-12.json",
        "t22_any_pw",
        True,
        r"""[
    {
        "type": "message",
        "user": "U04QH7K2M",
        "text": "Noen som vet hvorfor ORU-kanalen står? Køen er på 1200 nå",
        "ts": "1710236102.118229",
        "user_profile": {"real_name": "Tone Berg", "display_name": "tone"}
    },
    {
        "type": "message",
        "user": "U03QH9X1P",
        "text": "DB-passordet ble rotert i går. Nytt passord for hl7_engine er {V} , oppdaterer configmap nå",
        "ts": "1710236188.224910",
        "user_profile": {"real_name": "Jonas Lie", "display_name": "jonas"}
    },
    {
        "type": "message",
        "user": "U04QH7K2M",
        "text": "takk! kan du legge det i Key Vault også, og slette meldingen etterpå? :pray:",
        "ts": "1710236230.551200",
        "user_profile": {"real_name": "Tone Berg", "display_name": "tone"}
    }
]
""",
    ),
    T(
        "docs/chat/teams-export/radiologie-de.txt",
        "t22_i18n",
        False,
        r"""[11.03.2024 09:12] Jonas Weber: Die Anmeldung am PACS-Viewer klappt bei mir nicht mehr
[11.03.2024 09:13] Jonas Weber: Meldung: "{V}"
[11.03.2024 09:15] Anna Schmidt: Das ist das neue SSO. Bitte mit dem Klinikum-Konto anmelden, nicht mehr mit dem lokalen Benutzer.
[11.03.2024 09:16] Jonas Weber: Ah ok, und im Portal steht "{V2}"
[11.03.2024 09:18] Anna Schmidt: Dann einmal über "Passwort vergessen?" zurücksetzen, das geht jetzt über das AD.
""",
    ),
    T(
        "docs/oncall/ldap-lookup.md",
        "t22_pw",
        True,
        r"""# On-call: checking an account in AD from a Linux jump host

```bash
ldapsearch -H ldaps://dc01.quillon.local -x \
  -D "CN=svc-linux-bind,OU=Service Accounts,DC=quillon,DC=local" \
  -w '{V}' \
  -b "OU=Staff,DC=quillon,DC=local" "(sAMAccountName=karnor)" memberOf lockoutTime
```

If `lockoutTime` is non-zero the account is locked; unlock it in ADUC or with
`Unlock-ADAccount karnor` from adm01.
""",
    ),
    T(
        "docs/oncall/ldap-lookup-interactive.md",
        "t22_placeholder",
        False,
        r"""# On-call: checking an account in AD (interactive bind)

Prefer `-W` so the password is prompted for and does not end up in shell history:

```bash
ldapsearch -H ldaps://dc01.quillon.local -x -W \
  -D "CN=svc-linux-bind,OU=Service Accounts,DC=quillon,DC=local" \
  -b "OU=Staff,DC=quillon,DC=local" "(sAMAccountName=karnor)"
```

In scripts, read it from the file the Ansible role writes (`/etc/qh/ldap-bind.pw`), e.g.
`-y /etc/qh/ldap-bind.pw`, never `-w {V}`.
""",
    ),
    T(
        "docs/integrations/logic-apps-referrals.md",
        "t22_logicapp_url",
        True,
        r"""# Referral notifications via Logic Apps

The Mirth channel `Referral_Out_HTTP` also posts a short JSON to the Logic App
`la-qh-referral-notify`, which e-mails the receiving clinic. The trigger URL (contains the SAS
signature; regenerate the access key in the portal if it leaks):

```
{V}
```

Payload: `{"referralId": "...", "clinic": "...", "priority": "haster|vanlig"}`
""",
    ),
    T(
        "docs/integrations/slack-alerts.md",
        "t22_slack_webhook",
        True,
        r"""# Alerts to Slack (#dw-alerts)

Airflow failure callbacks post to Slack through an incoming webhook:

```python
SLACK_WEBHOOK = "{V}"
```

The same hook is used by the nightly backup check on dw-util01 (`/etc/cron.d/qh-backup-check`).
""",
    ),
    T(
        "docs/integrations/vault-migration.md",
        "t22_vault_token",
        True,
        r"""# Migrating Mirth secrets to Vault (pilot)

Pilot Vault: https://vault-pilot.qh.internal:8200 (KV v2 at `kv/`).

Temporary token for the migration script (policy `mirth-migrate`, TTL 30 days):

    export VAULT_ADDR=https://vault-pilot.qh.internal:8200
    export VAULT_TOKEN={V}
    ./migrate-configmap.sh appdata/configurationMap.properties kv/mirth/prod

After the migration, revoke with `vault token revoke -self`.
""",
    ),
    T(
        "docs/monitoring/datadog-agent.yaml",
        "t22_datadog",
        True,
        r"""# /etc/datadog-agent/datadog.yaml on the integration VMs (EU site)
api_key: {V}
site: datadoghq.eu
hostname_fqdn: true
tags:
  - env:prod
  - team:integration
  - site:bgo
logs_enabled: true
process_config:
  process_collection:
    enabled: true
""",
    ),
    T(
        "docs/postmortems/2024-02-pacs-outage.md",
        "t22_example_pw",
        False,
        r"""# Postmortem: PACS viewer outage, 2024-02-14

## Summary
The OHIF viewer could not reach dcm4chee for 47 minutes after a certificate renewal.

## Reproduction (lab)
We reproduced it with a throwaway stack on documentation hosts:

```
curl -u demo:{V} https://pacs.example.test/dcm4chee-arc/aets/DCM4CHEE/rs/studies
DATABASE_URL=postgres://pacs:{V2}@db.example.invalid:5432/pacsdb
```

## Action items
- Monitor certificate expiry for pacs01 (owner: imaging ops).
- Document the renewal procedure in the nb runbook.
""",
    ),
    T(
        "docs/security/password-policy.md",
        "t22_small_int",
        False,
        r"""# Quillon Health - password policy (excerpt)

| Account type | Minimum length | Rotation (days) |
|---|---|---|
| Staff (AD) | {V} | none (MFA required) |
| Service accounts | 24 | {V2} |
| Break-glass | 20 | after every use |

Passwords must not contain the user name, "Quillon" or the site name. Vendor default passwords
must be changed before a system is connected to the clinical network.
""",
    ),
    T(
        "docs/security/ssh-host-fingerprints.md",
        "t22_fingerprint",
        False,
        r"""# SSH host key fingerprints (verify on first connect)

| Host | Type | Fingerprint (SHA256, hex) |
|---|---|---|
| jump01.qh.internal | ed25519 | {V} |
| sftp-archive.qh.internal | ed25519 | {V2} |
| gitlab.qh.internal | ed25519 | {V3} |
""",
    ),
    T(
        "docs/handover/nb/overlevering-lab-bridge.md",
        "t22_hex64",
        True,
        r"""# Overlevering: lab-bridge (fra leverandør til drift)

Dato: 2024-01-30. Deltakere: drift BGO, leverandør (LabConnect AS), integrasjonsteamet.

## Tilgang
- Tjenesten kjører på `lab-int01.qh.internal` som systemd-tjenesten `lab-bridge`.
- Webhooks fra POCT-serveren signeres med HMAC-SHA256. Delt hemmelighet: `{V}`
  (må legges inn likt i POCT-serverens oppsett og i `/etc/lab-bridge/env`).

## Kjente feil
- Sysmex sender av og til dobbel ETX; bridge ignorerer dette.
""",
    ),
    T(
        "docs/chat/slack-export/portal-dev/2024-01-09.json",
        "t22_crc_bad",
        False,
        r"""[
    {
        "type": "message",
        "user": "U05QH2B8L",
        "text": "skanneren i CI klaget på en token i README, men den er jo ugyldig? `{V}`",
        "ts": "1704797001.001100"
    },
    {
        "type": "message",
        "user": "U03QH9X1P",
        "text": "ja, det er eksempelet fra kurset, sjekksummen stemmer ikke. Kan merkes som falsk positiv",
        "ts": "1704797090.004500"
    }
]
""",
    ),
]

# ====================================================================== further look-alikes and leftovers
TEMPLATES += [
    T(
        "ehr-integration/fhir-server/src/main/resources/application-jwt.yaml",
        "t22_pubkey",
        False,
        r"""# Offline token verification: realm public keys (Realm settings - Keys - RS256 - Public key)
qh:
  security:
    realms:
      clinical:
        issuer: https://sso.quillonhealth.no/realms/clinical
        public-key: |
          {IV}
      portal:
        issuer: https://sso.quillonhealth.no/realms/portal
        public-key: |
          {IV2}
""",
    ),
    T(
        "ehr-integration/hl7-sender/conf/client-key.enc.pem",
        "t22_enc_pkcs8",
        False,
        r"""{V}
""",
    ),
    T(
        "imaging/orthanc-oslo/tls/orthanc-oslo.key",
        "t22_enc_legacy",
        False,
        r"""{V}
""",
    ),
    T(
        "ehr-integration/mirth-bridge/src/main/resources/application.properties",
        "t22_jasypt",
        False,
        r"""# Encrypted with jasypt (PBEWITHHMACSHA512ANDAES_256); the master password is JASYPT_ENCRYPTOR_PASSWORD
spring.datasource.url=jdbc:sqlserver://sql-ehr02.qh.internal:1433;databaseName=EhrStaging;encrypt=true
spring.datasource.username=mirth_bridge
spring.datasource.password={V}
qh.sftp.host=sftp-archive.qh.internal
qh.sftp.user=lis_archive
qh.sftp.password={V2}
qh.smtp.password={V3}
""",
    ),
    T(
        "infrastructure/monitoring/prometheus/web-config.yml",
        "t22_bcrypt",
        False,
        r"""# Basic auth for the Prometheus UI on mon01 (bcrypt hashes, generated with htpasswd -nBC 12)
tls_server_config:
  cert_file: /etc/prometheus/tls/mon01.crt
  key_file: /etc/prometheus/tls/mon01.key
basic_auth_users:
  grafana: {V}
  oncall: {V2}
  vendor-support: {V3}
""",
    ),
    T(
        "imaging/vendor-installers/SHA256SUMS",
        "t22_sha256",
        False,
        r"""{V}  dcm4chee-arc-5.31.2-psql.zip
{V2}  orthanc-1.12.3-linux-x64.tar.gz
{V3}  dcm4che-5.31.2-bin.zip
{V4}  OHIF-Viewer-3.8.0.tgz
""",
    ),
    T(
        "infrastructure/k8s/fhir/deployment.yaml",
        "t22_digest",
        False,
        r"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: fhir-gateway
  namespace: fhir
spec:
  replicas: 3
  selector:
    matchLabels: {app: fhir-gateway}
  template:
    metadata:
      labels: {app: fhir-gateway}
    spec:
      initContainers:
        - name: migrate
          image: qhacrprod.azurecr.io/fhir-migrate@{V}
      containers:
        - name: gateway
          image: qhacrprod.azurecr.io/fhir-gateway@{V2}
          envFrom:
            - secretRef: {name: hapi-fhir-db}
        - name: otel
          image: otel/opentelemetry-collector-contrib@{V3}
""",
    ),
    T(
        "ehr-integration/Quillon.Fhir.Gateway/appsettings.Staging.json",
        "t22_ai_conn",
        False,
        r"""{
  "ApplicationInsights": {
    "ConnectionString": "{V}"
  },
  "Telemetry": {
    "PortalConnectionString": "{V2}",
    "SamplingPercentage": 25
  }
}
""",
    ),
    T(
        "ehr-integration/engine/identifier-systems.yaml",
        "t22_oid",
        False,
        r"""# Identifier systems used in PID-3 / FHIR Identifier.system (Norwegian OIDs under 2.16.578.1.12.4.1)
systems:
  fnr: urn:oid:2.16.578.1.12.4.1.4.1
  dnr: urn:oid:2.16.578.1.12.4.1.4.2
  qh-mrn-bgo: urn:oid:{V}
  qh-mrn-osl: urn:oid:{V2}
  qh-specimen: urn:oid:{V3}
  qh-accession: urn:oid:{V4}
""",
    ),
    T(
        "ci/azure-devops/release-notes-2024.03.md",
        "t22_build_id",
        False,
        r"""# FHIR gateway release 2024.03

| Build | Commit | Notes |
|---|---|---|
| 20240311.4 | {V} | Key Vault references for all connection strings |
| 20240307.2 | {V2} | Retry policy for Service Bus |
| 20240301.1 | {V3} | HAPI 7.0 client |
""",
    ),
    T(
        "identity/ad/exports/service-accounts.csv",
        "t22_sid",
        False,
        r"""SamAccountName;ObjectSid;PasswordLastSet;PasswordNeverExpires;Description
svc-keycloak;{V};2024-01-15;True;Keycloak LDAP bind
svc-linux-bind;{V2};2023-11-02;True;sssd bind
svc-adsync;{V3};2024-02-20;False;AD to Keycloak sync
svc-ansible;{V4};2024-03-01;False;WinRM for Ansible
""",
    ),
    T(
        "patient-portal/functions/appointment-sync/local.settings.prod.json",
        "t22_ref_kv",
        False,
        r"""{
  "IsEncrypted": false,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
    "AzureWebJobsStorage": "{V}",
    "PortalDb": "{V2}",
    "FhirClientSecret": "{V3}",
    "ServiceBusConnection": "{V4}"
  }
}
""",
    ),
    T(
        "infrastructure/helm/mirth/templates/secret.yaml",
        "t22_ref_helm",
        False,
        r"""{{- if not .Values.mirth.existingSecret }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "mirth.fullname" . }}
  labels: {{- include "mirth.labels" . | nindent 4 }}
type: Opaque
data:
  admin-password: {V}
  db-password: {V2}
  keystore-password: {V3}
{{- end }}
""",
    ),
    T(
        "ehr-integration/Quillon.Fhir.Gateway/Program.cs",
        "t22_ref_csharp",
        False,
        r"""using Azure.Identity;
using Quillon.Fhir.Gateway.Auth;

var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddAzureKeyVault(new Uri("https://kv-qh-prod-weu.vault.azure.net/"), new DefaultAzureCredential());

var ehrConnection = {V};
var clientSecret = {V2};
var auditConnection = {V3};

builder.Services.AddSingleton(new GatewaySecrets(ehrConnection, clientSecret, auditConnection));
builder.Services.AddHttpClient<FhirClientFactory>();
var app = builder.Build();
app.MapGet("/health", () => Results.Ok("ok"));
app.Run();
""",
    ),
    T(
        "identity/keycloak/themes/quillon/login/messages/messages_nb.properties",
        "t22_i18n",
        False,
        r"""# Quillon login theme - norsk bokmål
loginTitle=Logg inn i Quillon Health
usernameOrEmail=Brukernavn eller e-post
password=Passord
invalidUserMessage={V}
invalidPasswordMinLengthMessage={V2}
expiredPasswordMessage={V3}
forgotPassword={V4}
otpHelp={V5}
""",
    ),
    T(
        "lab-integration/lab-bridge/README.md",
        "t22_placeholder",
        False,
        r"""# lab-bridge

Local run against the lab test VM:

```bash
export LIS_DB_PASSWORD='{V}'
export POCT_PASSWORD='{V2}'
export POCT_HMAC_SECRET='{V3}'
python -m lab_bridge --config config/analyzers.yaml
```

Ask the lab systems team for the test values; production values are in Key Vault
(`kv-qh-integration`, secrets `lis-db-password`, `poct-password`, `poct-hmac`).
Set the webhook secret in the POCT server to `{V4}` only in the sandbox.
""",
    ),
    T(
        "patient-portal/video-visit/config/production.yaml",
        "t22_hex32",
        True,
        r"""# Video consultations (vendor: MedVid). Webhooks are signed with the api_secret.
vendor:
  base_url: https://api.medvid.eu/v3
  account_id: quillon-health
  api_secret: {V}
rooms:
  default_duration_minutes: 20
  waiting_room_text:
    nb: Legen kommer straks.
    es: El médico le atenderá en breve.
""",
    ),
    T(
        "patient-portal/deploy/helm/values-prod.yaml",
        "t22_b64_secret",
        True,
        r"""backend:
  replicaCount: 4
  image:
    repository: qhacrprod.azurecr.io/portal-backend
  env:
    SIGNED_URL_HMAC_KEY: "{V}"
    RESULTS_PDF_BUCKET: results-pdf
    DJANGO_SETTINGS_MODULE: quillon_portal.settings.production
""",
    ),
    T(
        "lab-integration/device-gateway/tls/device-gw-client.key",
        "t22_ec_pem",
        True,
        r"""{V}
""",
    ),
    T(
        "data-warehouse/research/bigquery-export/sa-key.json",
        "t22_json_key",
        True,
        r"""{
  "type": "service_account",
  "project_id": "qh-research-readmission",
  "private_key_id": "3f2a9c1d7e5b4a6c8d0e1f2a3b4c5d6e7f8a9b0c",
  "private_key": "{V}",
  "client_email": "dw-export@qh-research-readmission.iam.gserviceaccount.com",
  "client_id": "104728365019283746501",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs"
}
""",
    ),
    T(
        "docs/security/secret-scanning-allowlist.md",
        "t22_doc_example",
        False,
        r"""# Secret scanning: documented example values

These values come from vendor documentation and appear in our docs and tests on purpose.
They are public examples and grant nothing; the pipeline allowlists them:

| Value | Source |
|---|---|
| `{V}` | vendor documentation |
| `{V2}` | vendor documentation |
| `{V3}` | vendor documentation |

Anything else that looks like a key is treated as real: rotate first, then ask.
""",
    ),
]
